"""The demo's report: drift of each guarded run over its steps, as a PNG and a self-contained HTML page.

The curves are read back from each run's audit log (`probes` events), so the report shows exactly
what the guard recorded, not a second computation of it.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProbeTrace:
    """One probe's evaluations in one run: steps, drifts, and the drift at which it breaches."""

    run: str
    probe: str
    steps: tuple[int, ...]
    drifts: tuple[float, ...]
    drift_limit: float | None
    halted_at: int | None


def read_trace(run: str, audit_log: Path, probe: str, *, halted_at: int | None) -> ProbeTrace:
    """Collect `probe`'s reports from a run's JSONL audit log, in step order."""
    steps: list[int] = [0]  # the baseline itself: drift 0 before the first update
    drifts: list[float] = [0.0]
    limit: float | None = None
    for line in audit_log.read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        if event.get("event") != "probes":
            continue
        for report in event["reports"]:
            if report["probe"] == probe and report["drift"] is not None:
                steps.append(int(report["step"]))
                drifts.append(float(report["drift"]))
                if report["limit"] is not None and report["baseline"] is not None:
                    limit = float(report["limit"]) - float(report["baseline"])
    return ProbeTrace(run, probe, tuple(steps), tuple(drifts), limit, halted_at)


def plot_drift(traces: list[ProbeTrace], png: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7.5, 4.0), dpi=110)
    for trace in traces:
        (line,) = axes.plot(trace.steps, trace.drifts, marker="o", markersize=3, label=trace.run)
        if trace.halted_at is not None and trace.halted_at in trace.steps:
            drift = trace.drifts[trace.steps.index(trace.halted_at)]
            axes.plot([trace.halted_at], [drift], marker="X", markersize=12, color=line.get_color())
            axes.annotate(
                f"halted at step {trace.halted_at}",
                (trace.halted_at, drift),
                xytext=(8, -4),
                textcoords="offset points",
            )
    limits = {t.drift_limit for t in traces if t.drift_limit is not None}
    for limit in limits:
        axes.axhline(limit, color="crimson", linestyle="--", linewidth=1, label=f"threshold (+{limit:.2f})")
    axes.axhline(0.0, color="grey", linewidth=0.8)
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("probe score - baseline")
    axes.set_title("Trait drift seen by the guard")
    axes.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png)
    plt.close(figure)
    return png


def write_html(
    path: Path, *, title: str, rows: list[dict[str, str]], png: Path, sections: list[tuple[str, str]]
) -> Path:
    """One page: the summary table, the drift plot (embedded), and preformatted detail sections."""
    columns = list(rows[0]) if rows else []
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(row[c])}</td>" for c in columns) + "</tr>" for row in rows)
    image = base64.b64encode(png.read_bytes()).decode("ascii")
    details = "".join(f"<h2>{html.escape(name)}</h2><pre>{html.escape(text)}</pre>" for name, text in sections)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:60rem;margin:2rem auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}}pre{{background:#f6f6f6;padding:.8rem;
overflow-x:auto}}</style></head>
<body><h1>{html.escape(title)}</h1>
<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
<h2>Drift over steps</h2><img alt="drift over steps" src="data:image/png;base64,{image}">
{details}</body></html>
"""
    path.write_text(page, encoding="utf-8")
    return path
