"""A small document model: sections (a paragraph, tables, a figure, bullet notes) rendered to Markdown and to a
self-contained HTML page, with cells that carry a note (a difference) and a verdict (a CSS class). The study
report and `tether report` both write through it."""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field


@dataclass
class Cell:
    """One table cell: its value, an optional second line (a difference) and its verdict (a CSS class)."""

    text: str
    note: str = ""
    verdict: str = ""


@dataclass
class Table:
    head: list[str]
    rows: list[list[Cell | str]]


@dataclass
class Section:
    title: str
    text: str = ""
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    figure: tuple[str, str, bytes] | None = None  # (file name, caption, PNG bytes)
    level: int = 2


def _md_cell(cell: Cell | str) -> str:
    text = cell if isinstance(cell, str) else cell.text + (f" ({cell.note})" if cell.note else "")
    return text.replace("|", "\\|")


def markdown_table(table: Table) -> str:
    rows = ["| " + " | ".join(table.head) + " |", "|---" * len(table.head) + "|"]
    rows += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
    return "\n".join(rows)


def html_table(table: Table) -> str:
    def td(cell):
        if isinstance(cell, str):
            return f"<td{_num(cell)}>{html.escape(cell)}</td>"
        css = cell.verdict.replace(" ", "-")
        text = html.escape(cell.text)
        if cell.verdict and not cell.note:  # a verdict cell of its own (the claims table) takes its colour
            text = f"<span class='{css}'>{text}</span>"
        note = cell.note and f"<br><small class='{css}'>{html.escape(cell.note)}</small>"
        return f"<td{_num(cell.text)}>{text}{note}</td>"

    head = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in table.head) + "</tr>"
    body = "".join("<tr>" + "".join(td(c) for c in row) + "</tr>" for row in table.rows)
    return f"<div class='scroll'><table>{head}{body}</table></div>"


def _num(text: str) -> str:
    """A class attribute that right-aligns a cell holding a number (or a dash for a missing one)."""
    return " class='num'" if re.fullmatch(r"[-+–]?[\d.]*( ± [\d.]+)?", text.strip()) else ""


def _md_inline(text: str) -> str:
    """The little Markdown the sections use (**bold**, `code`) as HTML."""
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def render_markdown(section: Section) -> str:
    parts = [f"{'#' * section.level} {section.title}"]
    parts += [section.text] if section.text else []
    parts += [markdown_table(t) for t in section.tables]
    parts += ["\n".join(f"- {n}" for n in section.notes)] if section.notes else []
    if section.figure:
        name, caption, _ = section.figure
        parts.append(f"![{caption}](figures/{name})\n\n*{caption}*")
    return "\n\n".join(parts)


def render_html(section: Section) -> str:
    parts = [f"<h{section.level}>{_md_inline(section.title)}</h{section.level}>"]
    parts += [f"<p>{_md_inline(section.text)}</p>"] if section.text else []
    parts += [html_table(t) for t in section.tables]
    if section.notes:
        parts.append("<ul>" + "".join(f"<li>{_md_inline(n)}</li>" for n in section.notes) + "</ul>")
    if section.figure:
        _, caption, png = section.figure
        data = base64.b64encode(png).decode()
        parts.append(
            f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{_md_inline(caption)}</figcaption></figure>"
        )
    return "".join(parts)


STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222;"
    "line-height:1.4}"
    ".scroll{overflow-x:auto;margin:0.6em 0}"
    "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:4px 8px;"
    "text-align:left;vertical-align:top}th{background:#f3f3f3}td.num{text-align:right}"
    "td:first-child{font-weight:600;white-space:nowrap}small{color:#555;white-space:nowrap}"
    ".helps,.SSL-better{color:#1a7f37;font-weight:600}.hurts,.SSL-worse{color:#c62828;font-weight:600}"
    "img{max-width:100%}figure{margin:1em 0}figcaption{font-size:13px;color:#444;max-width:900px}"
    "pre{background:#f6f6f6;padding:0.8em;font-size:12px}"
)
