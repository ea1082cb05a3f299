"""The report of one guarded run, from its audit log: HTML (with the plot), PNG, Markdown, JSON.

Everything is rendered in memory first and each file is then written atomically, so a failure
leaves no half-written report. Without matplotlib the PNG is left out and the HTML and Markdown
say so; the numbers (tables, JSON) never depend on it.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill_guard.atomic_files import write_atomically
from distill_guard.report.history import ProbeTrace, RunHistory
from distill_guard.report.html_page import render_html
from distill_guard.report.plot import INSTALL_HINT, drift_png, plot_available

REPORT_NAMES = {"html": "report.html", "png": "report.png", "markdown": "report.md", "json": "report.json"}


def _number(value: float | None, fmt: str = "+.4f") -> str:
    return "n/a" if value is None else format(value, fmt)


def run_rows(history: RunHistory) -> list[dict[str, str]]:
    return [
        {"": "status", "value": history.status()},
        {"": "policy", "value": history.policy or "n/a"},
        {"": "policy sha256", "value": history.policy_sha256 or "n/a"},
        {"": "provenance", "value": history.provenance},
        {"": "last step", "value": str(history.last_step) if history.last_step is not None else "n/a"},
        {"": "run id", "value": ", ".join(history.run_ids)},
    ]


def probe_rows(history: RunHistory) -> list[dict[str, str]]:
    def row(trace: ProbeTrace) -> dict[str, str]:
        return {
            "probe": trace.probe,
            "evaluations": str(len(trace.steps) - 1),
            "last drift": _number(trace.drifts[-1]),
            "limit (drift)": _number(trace.last_limit),
            "first breach": str(trace.first_breach) if trace.first_breach is not None else "none",
            "halted at": str(trace.halted_at) if trace.halted_at is not None else "-",
        }

    return [row(t) for t in history.traces]


def detail_sections(history: RunHistory) -> list[tuple[str, str]]:
    decisions = "\n".join(str(d) for d in history.decisions) or "no provenance decision recorded"
    halt = json.dumps(history.halt, indent=2) if history.halt else "no halt"
    sections = [("Provenance decisions", decisions), ("Halt record", halt)]
    if history.quarantined:
        sections.append(("Quarantined checkpoints", "\n".join(history.quarantined)))
    return sections


_MARKDOWN_ACTIVE = str.maketrans({c: "\\" + c for c in "\\|[]`*_"} | {"\n": " ", "\r": " "})


def _md_cell(text: str) -> str:
    """Text from the audit log as inert Markdown: no raw HTML (a PR comment or a model card renders
    it), no links, code spans or table breaks; it reads back as the same characters."""
    return html.escape(text, quote=False).translate(_MARKDOWN_ACTIVE)


def _md_table(rows: list[dict[str, str]]) -> list[str]:
    if not rows:
        return ["(none)"]
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    return lines + ["| " + " | ".join(_md_cell(row[c]) for c in columns) + " |" for row in rows]


def render_markdown(history: RunHistory, *, png: str | None, missing_plot: str) -> str:
    """Markdown for a pull request comment or a model card's body (no front matter of its own)."""
    lines = [f"## distill-guard: {_md_cell(history.status())}", ""]
    lines += [*_md_table(run_rows(history)), "", "### Probes", "", *_md_table(probe_rows(history)), ""]
    lines += [f"![drift over steps]({png})" if png else f"_{missing_plot}_", ""]
    lines += ["### Provenance decisions", ""]
    lines += [f"- {_md_cell(str(d))}" for d in history.decisions] or ["- none recorded"]
    if history.halt:
        lines += ["", "### Halt record", "", "```json", json.dumps(history.halt, indent=2), "```"]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    png: Path | None
    markdown: Path
    json: Path

    def to_json(self) -> dict[str, Any]:
        return {key: str(value) if value else None for key, value in vars(self).items()}


def write_run_report(history: RunHistory, out_dir: Path) -> ReportFiles:
    """Render every file in memory, then write each atomically into `out_dir`."""
    missing_plot = f"No drift plot: {INSTALL_HINT}." if history.traces else "No probe evaluation was recorded."
    png = None
    if history.traces and plot_available():
        png = drift_png([(t.probe, [t]) for t in history.traces], title=history.status())
    title = f"distill-guard report: {history.policy or 'run'}"
    page = render_html(
        title=title,
        tables=[("Run", run_rows(history)), ("Probes", probe_rows(history))],
        png=png,
        sections=detail_sections(history),
        missing_plot=missing_plot,
    )
    files = ReportFiles(
        html=out_dir / REPORT_NAMES["html"],
        png=out_dir / REPORT_NAMES["png"] if png is not None else None,
        markdown=out_dir / REPORT_NAMES["markdown"],
        json=out_dir / REPORT_NAMES["json"],
    )
    markdown = render_markdown(history, png=REPORT_NAMES["png"] if png is not None else None, missing_plot=missing_plot)
    summary = history.to_json() | {"files": files.to_json()}
    if files.png is not None and png is not None:
        write_atomically(files.png, png)
    else:
        (out_dir / REPORT_NAMES["png"]).unlink(missing_ok=True)  # a plot from an earlier report would be stale
    write_atomically(files.html, page)
    write_atomically(files.markdown, markdown)
    write_atomically(files.json, json.dumps(summary, indent=2) + "\n")
    return files
