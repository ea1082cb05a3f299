"""Drift curves as a PNG: one panel per probe, each run's drift with the limit it was held to and a
marker where the guard halted. matplotlib is optional (the `report` extra): `plot_available` says
whether it can be drawn, so a caller can leave the image out and say so."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

from distill_guard.report.history import ProbeTrace

Panel = tuple[str, Sequence[ProbeTrace]]
INSTALL_HINT = "install matplotlib (pip install 'distill-guard[report]') for the drift plot"


def plot_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def drift_png(panels: Sequence[Panel], *, title: str) -> bytes:
    """The panels side by side (one row), as PNG bytes; raises ImportError without matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Probe names are text, never mathtext: '$x^$' would crash the drawing, '$\\alpha$' would show a glyph.
    with matplotlib.rc_context({"text.parse_math": False}):
        figure, axes_row = plt.subplots(1, len(panels), figsize=(7.5 * len(panels), 4.0), dpi=110, squeeze=False)
        for axes, (heading, traces) in zip(axes_row[0], panels, strict=True):
            _draw_panel(axes, heading, traces)
        figure.suptitle(title)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", metadata={"Title": title, "Description": describe(panels)})
        plt.close(figure)
    return buffer.getvalue()


def describe(panels: Sequence[Panel]) -> str:
    """The plot in words, stored in the PNG's Description (for screen readers and scripts)."""
    parts = []
    for heading, traces in panels:
        for trace in traces:
            limit = "none" if trace.last_limit is None else f"+{trace.last_limit:.4g}"
            halt = f", halted at step {trace.halted_at}" if trace.halted_at is not None else ""
            parts.append(f"{heading} / {trace.label}: {len(trace.steps) - 1} evaluations, drift limit {limit}{halt}")
    return "; ".join(parts)


def _draw_panel(axes: Any, heading: str, traces: Sequence[ProbeTrace]) -> None:
    from matplotlib.ticker import MaxNLocator

    constant_limits: set[float] = set()
    for trace in traces:
        drifts = [math.nan if d is None else d for d in trace.drifts]
        (line,) = axes.plot(trace.steps, drifts, marker="o", markersize=3, label=trace.label)
        limits = {limit for limit in trace.drift_limits if limit is not None}
        if len(limits) == 1:
            constant_limits |= limits
        elif limits:  # a limit that moved during the run: drawn as it was at each evaluation
            values = [math.nan if limit is None else limit for limit in trace.drift_limits]
            axes.step(
                trace.steps,
                values,
                where="post",
                color=line.get_color(),
                linestyle="--",
                linewidth=1,
                label=f"{trace.label}: limit",
            )
        if trace.halted_at is not None and trace.halted_at in trace.steps:
            drift = drifts[trace.steps.index(trace.halted_at)]
            axes.plot([trace.halted_at], [drift], marker="X", markersize=12, color=line.get_color())
            axes.annotate(
                f"halted at step {trace.halted_at}",
                (trace.halted_at, drift),
                xytext=(8, -4),
                textcoords="offset points",
            )
    for limit in sorted(constant_limits):
        axes.axhline(limit, color="crimson", linestyle="--", linewidth=1, label=f"limit (+{limit:.3g})")
    axes.axhline(0.0, color="grey", linewidth=0.8)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("probe score - baseline")
    axes.set_title(heading)
    axes.legend(loc="upper left", fontsize=8)
