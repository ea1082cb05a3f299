"""Read back what transformers' real reporting callbacks wrote: TensorBoard event files, an MLflow file store."""

from __future__ import annotations

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
