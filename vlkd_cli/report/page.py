"""The report's `index.html`: every figure embedded (base64 PNG), so the one file can be mailed or archived."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

STYLE = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}h2{margin-top:1.6em}figure{margin:1em 0}"
         "img{max-width:100%;border:1px solid #ddd}figcaption{color:#555;font-size:90%}")


@dataclass(frozen=True)
class Entry:
    section: str  # heading the figure is listed under
    title: str
    png: Path  # the figure's file (also embedded)
    caption: str = ""


def index_html(title: str, entries: list[Entry], sources: list[str]) -> str:
    """The page: a heading per section, each figure as an embedded image with its caption and file name."""
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
             "<p>From: " + ", ".join(f"<code>{html.escape(s)}</code>" for s in sources) + "</p>"]  # fmt: skip
    for section in dict.fromkeys(e.section for e in entries):
        parts.append(f"<h2>{html.escape(section)}</h2>")
        for entry in (e for e in entries if e.section == section):
            data = base64.b64encode(entry.png.read_bytes()).decode()
            caption = html.escape(entry.caption + (" " if entry.caption else "") + f"({entry.png.name})")
            parts.append(f"<figure><img alt='{html.escape(entry.title)}' src='data:image/png;base64,{data}'>"
                         f"<figcaption>{caption}</figcaption></figure>")  # fmt: skip
    parts.append("</body></html>\n")
    return "\n".join(parts)
