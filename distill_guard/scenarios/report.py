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
    """One probe's evaluations in one run: steps, drifts, and the drift at which it breaches.

    `drifts` are the tested drift: a candidate probe's specific drift (for a panel, of the
    candidate that rose most at that look), else the raw change of the score.
    """

    scenario: str
    run: str
    probe: str
    steps: tuple[int, ...]
    drifts: tuple[float, ...]
    drift_limit: float | None
    halted_at: int | None


def read_trace(scenario: str, run: str, audit_log: Path, probe: str, *, halted_at: int | None) -> ProbeTrace:
    """Collect `probe`'s reports from a run's JSONL audit log, in step order."""
    steps: list[int] = [0]  # the baseline itself: drift 0 before the first update
    drifts: list[float] = [0.0]
    limit: float | None = None
    for line in audit_log.read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        if event.get("event") != "probes":
            continue
        for report in event["reports"]:
            tested = report["drift"] if report.get("specific") is None else report["specific"]
            if report["probe"] == probe and tested is not None:
                steps.append(int(report["step"]))
                drifts.append(float(tested))
                if report["limit"] is not None and report["baseline"] is not None:
                    limit = float(report["limit"]) - float(report["baseline"])
    return ProbeTrace(scenario, run, probe, tuple(steps), tuple(drifts), limit, halted_at)


def plot_drift(traces: list[ProbeTrace], png: Path) -> Path:
    """One panel per scenario, side by side, with each run's tested drift and its halt marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = list(dict.fromkeys(t.scenario for t in traces))
    figure, panels = plt.subplots(1, len(scenarios), figsize=(6.0 * len(scenarios), 4.0), dpi=110, squeeze=False)
    for axes, scenario in zip(panels[0], scenarios, strict=True):
        shown = [t for t in traces if t.scenario == scenario]
        for trace in shown:
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
        for limit in {t.drift_limit for t in shown if t.drift_limit is not None}:
            axes.axhline(limit, color="crimson", linestyle="--", linewidth=1, label=f"threshold (+{limit:.2f})")
        axes.axhline(0.0, color="grey", linewidth=0.8)
        axes.set_xlabel("optimizer step")
        axes.set_ylabel(f"{shown[0].probe}: tested drift")
        axes.set_title(scenario)
        axes.legend(loc="upper left", fontsize=8)
    figure.suptitle("Trait drift seen by the guard")
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
