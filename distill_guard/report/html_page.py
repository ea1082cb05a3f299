"""A self-contained HTML page: tables, the drift plot embedded as data, preformatted detail sections."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence

Table = tuple[str, Sequence[dict[str, str]]]  # (heading, rows); an empty heading draws none


def _table(heading: str, rows: Sequence[dict[str, str]]) -> str:
    columns = list(rows[0]) if rows else []
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(row[c])}</td>" for c in columns) + "</tr>" for row in rows)
    title = f"<h2>{html.escape(heading)}</h2>" if heading else ""
    return f"{title}<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>\n"


def render_html(
    *,
    title: str,
    tables: Sequence[Table],
    png: bytes | None,
    sections: Sequence[tuple[str, str]],
    missing_plot: str = "",
) -> str:
    """The page's text; `png` None shows `missing_plot` (why there is no image) in its place."""
    if png is not None:
        image = base64.b64encode(png).decode("ascii")
        plot = f'<img alt="drift over steps" src="data:image/png;base64,{image}">'
    else:
        plot = f"<p><em>{html.escape(missing_plot)}</em></p>"
    details = "".join(f"<h2>{html.escape(name)}</h2><pre>{html.escape(text)}</pre>" for name, text in sections)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:60rem;margin:2rem auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}}pre{{background:#f6f6f6;padding:.8rem;
overflow-x:auto}}</style></head>
<body><h1>{html.escape(title)}</h1>
{"".join(_table(heading, rows) for heading, rows in tables)}<h2>Drift over steps</h2>{plot}
{details}</body></html>
"""
