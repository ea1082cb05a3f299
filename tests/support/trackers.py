"""Read back what transformers' real reporting callbacks wrote: TensorBoard event files, an MLflow file store,
an offline W&B run file."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path


def tensorboard_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag of the one event file under `folder`, as (step, value) pairs in write order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    [events] = folder.rglob("events.out.tfevents.*")
    accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
    accumulator.Reload()
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def mlflow_metrics(experiment_name: str) -> dict[str, list[tuple[int, float]]]:
    """Every metric of the one run in `experiment_name` (current tracking URI), as (step, value) pairs by step."""
    import mlflow
    from mlflow.tracking import MlflowClient

    experiment = mlflow.get_experiment_by_name(experiment_name)
    assert experiment is not None, "the MLflow callback never started a run"
    [run] = mlflow.search_runs(experiment_ids=[experiment.experiment_id], output_format="list")
    client = MlflowClient()
    return {
        key: sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
        for key in run.data.metrics
    }


def wandb_records(run_file: Path) -> Iterator[object]:
    """The records of an offline W&B run file: a LevelDB-style log of protobuf `Record`s.

    wandb ships no reader for its own files, so the framing (7-byte file header, 32 KiB blocks,
    chunks of checksum, length, type) is read here and each record parsed with wandb's protobuf.
    """
    from wandb.proto import wandb_internal_pb2

    raw = run_file.read_bytes()
    assert raw[:4] == b":W&B", f"{run_file} is not a W&B run file"
    block, pos, pending = 32768, 7, b""
    while pos + 7 <= len(raw):
        room = block - pos % block
        if room < 7:  # a block's tail too short for a header is padding
            pos += room
            continue
        _, length, kind = struct.unpack("<IHB", raw[pos : pos + 7])
        pending += raw[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def wandb_history(wandb_dir: Path) -> list[dict[str, object]]:
    """The rows `wandb.log` wrote into the one offline run under `wandb_dir`, in order."""
    (run_file,) = wandb_dir.glob("wandb/offline-run-*/run-*.wandb")
    return [
        {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in r.history.item}
        for r in wandb_records(run_file)
        if r.WhichOneof("record_type") == "history"
    ]
