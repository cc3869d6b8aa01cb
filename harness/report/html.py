"""One self-contained HTML page: inline CSS and base64 PNGs, no script, nothing fetched when opened."""

from __future__ import annotations

import base64
from html import escape

from harness.report.build import Report

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1280px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
header { border-bottom: 1px solid #ccc; margin-bottom: 1.5em; }
header dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.2em 1em; font-size: 0.9em; }
header dt { font-weight: 600; } header dd { margin: 0; font-family: monospace; word-break: break-all; }
section { margin: 2.5em 0; } figure { margin: 0; } figure img { max-width: 100%; display: block; margin: 0.6em 0; }
figcaption { font-size: 0.9em; color: #333; max-width: 95ch; }
.note { color: #666; font-style: italic; } .outside { font-size: 0.85em; color: #7a4b00; }
details { margin: 0.4em 0; } summary { cursor: pointer; font-weight: 600; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; font-size: 0.8em; white-space: pre-wrap; }
table { border-collapse: collapse; font-size: 0.85em; } td, th { border: 1px solid #ddd; padding: 0.15em 0.5em; }
"""


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def render(report: Report) -> str:
    runs = "".join(f"<tr><td>{escape(r['run_id'])}</td><td>{escape(r['started_at'])}</td><td>{escape(r['status'])}</td>"
                   f"<td>{escape(r['jobs'])}</td><td>{escape(r['harness_version'])}</td><td><code>{escape(r['argv'])}</code></td></tr>"
                   for r in report.runs)
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>harness report</title>", f"<style>{CSS}</style></head><body>",
        "<header><h1>harness report</h1><dl>",
        f"<dt>harness version</dt><dd>{escape(report.version)}</dd>",
        f"<dt>created (UTC)</dt><dd>{escape(report.created)}</dd>",
        f"<dt>command</dt><dd>{escape(report.command)}</dd>",
        f"<dt>database</dt><dd>{escape(report.db)}</dd>",
        f"<dt>registry digest</dt><dd>sha256 {escape(report.registry_digest)} (entries table: every registry entry "
        "the stored jobs used, with its arguments and meta)</dd>",
        "</dl><details><summary>runs</summary><table><tr><th>run id</th><th>started</th><th>status</th><th>jobs kept</th>"
        f"<th>version</th><th>command</th></tr>{runs}</table></details></header>",
    ]
    for i, sec in enumerate(report.sections, 1):
        parts.append(f'<section id="{escape(sec.key)}"><h2>Figure {i}. {escape(sec.title)}</h2>')
        if sec.note:
            parts.append(f'<p class="note">Omitted: {escape(sec.note)}.</p></section>')
            continue
        parts.append("<figure>")
        parts.extend(_img(p.png(), f"figure {i}: {p.label}") for p in sec.plots)
        # captions are written by the figure modules (trusted, with <code>/<b> markup); values inside are numbers/names
        parts.append(f"<figcaption><b>Figure {i}.</b> {sec.caption}</figcaption>")
        if sec.outside:
            parts.append('<p class="outside">Read outside the database: ' + "; ".join(escape(o) for o in sec.outside) + ".</p>")
        parts.append("</figure></section>")
    parts.append("<footer><h2>SQL behind every figure</h2>")
    parts.append("<details><summary>header (runs, registry digest)</summary><pre>"
                 + escape("\n\n".join(report.header_sql)) + "</pre></details>")
    for i, sec in enumerate(report.sections, 1):
        parts.append(f"<details><summary>Figure {i}: {escape(sec.title)}</summary><pre>"
                     + escape("\n\n".join(sec.sql)) + "</pre></details>")
    parts.append("</footer></body></html>")
    return "\n".join(parts)
