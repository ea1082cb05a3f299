"""The shipped dashboard read back through Grafana's own schema (`grafana-foundation-sdk`, generated from
Grafana's dashboard schema; Grafana itself cannot be installed here): every field we wrote survives the
round trip, every unit is one Grafana knows, probability probes are shown as percentages in 0-1 and every
other probe (activation, custom kinds) as plain numbers, never clipped, and halts are annotated."""

from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import units
from grafana_foundation_sdk.models.dashboard import Dashboard

from distill_guard.bundled import data_path

PROBE_SERIES = ("distill_guard_probe_score", "distill_guard_probe_drift{", "distill_guard_probe_baseline")


def shipped() -> dict[str, Any]:
    return json.loads(data_path("grafana", "dashboard.json").read_text("utf-8"))


def lost_in(written: Any, read_back: Any, path: str = "") -> list[str]:
    """Every field of `written` that `read_back` lacks or changed (fields the schema adds are fine)."""
    if isinstance(written, dict):
        if not isinstance(read_back, dict):
            return [path]
        return [
            p
            for k, v in written.items()
            for p in ([f"{path}.{k}"] if k not in read_back else lost_in(v, read_back[k], f"{path}.{k}"))
        ]
    if isinstance(written, list):
        if not isinstance(read_back, list) or len(written) != len(read_back):
            return [path]
        return [
            p for i, (w, r) in enumerate(zip(written, read_back, strict=True)) for p in lost_in(w, r, f"{path}[{i}]")
        ]
    return [] if written == read_back else [f"{path}: {written!r} became {read_back!r}"]


def test_the_dashboard_survives_a_round_trip_through_grafanas_schema() -> None:
    written = shipped()
    read_back = json.loads(json.dumps(Dashboard.from_json(written), cls=JSONEncoder))
    assert lost_in(written, read_back) == []


def test_every_unit_is_a_grafana_unit() -> None:
    known = {value for name, value in vars(units).items() if not name.startswith("_") and isinstance(value, str)}
    used = {p["fieldConfig"]["defaults"].get("unit") for p in shipped()["panels"]} - {None}
    assert used and used <= known


def test_probe_panels_take_the_unit_of_their_scale() -> None:
    probe_panels = [p for p in shipped()["panels"] if any(s in t["expr"] for t in p["targets"] for s in PROBE_SERIES)]
    scales = {}
    for panel in probe_panels:
        selected = {'scale="probability"' in t["expr"] or 'scale="score"' in t["expr"] for t in panel["targets"]}
        assert selected == {True}, f"{panel['title']}: every probe query must select one scale"
        (scale,) = {"probability" if 'scale="probability"' in t["expr"] else "score" for t in panel["targets"]}
        scales.setdefault(scale, []).append(panel["title"])
        defaults = panel["fieldConfig"]["defaults"]
        if scale == "probability":
            assert defaults["unit"] == units.PercentUnit, panel["title"]
        else:
            assert defaults["unit"] == units.NoUnit and "min" not in defaults and "max" not in defaults, panel["title"]
    assert len(scales["probability"]) == len(scales["score"]) == 2


def test_halts_are_annotated_on_the_time_panels() -> None:
    (halts,) = [a for a in shipped()["annotations"]["list"] if a["name"] == "Halts"]
    assert halts["enable"] and "distill_guard_halted" in halts["expr"] and halts["expr"].endswith("== 1")
