"""The HTML every page is made of: escaping, links, times, tables and the page frame.

Every piece of text that reaches a page goes through :func:`esc` (or :func:`attr`) exactly
once, here or in :mod:`.pages`; nothing is marked up by string concatenation of unescaped
values. The frame carries no script: the server's Content-Security-Policy forbids scripts
anyway, so even a value that slipped through could not run.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from ...core.text import duration_text
from ...core.timestamps import from_text

# Characters HTML does not allow even escaped (C0 controls but tab/newline/CR, lone
# surrogates, U+FFFE/U+FFFF): shown as U+FFFD, so that a hostile id cannot break the page.
_NOT_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")

#: The inspector's own styles (scripts: none). Class names are prefixed ``cw-`` so that they
#: never meet the styles of the timeline's inline SVG, which apply to the whole document.
STYLE = """
body { font-family: system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif;
       margin: 0; color: #24292f; background: #f6f8fa; font-size: 14px; }
a { color: #0969da; }
header.cw-top { background: #24292f; color: #ffffff; padding: 10px 24px; display: flex;
                gap: 20px; align-items: baseline; flex-wrap: wrap; }
header.cw-top a { color: #ffffff; text-decoration: none; font-weight: 600; }
header.cw-top a.cw-here { text-decoration: underline; }
header.cw-top .cw-store { color: #c9d1d9; font-size: 12px; margin-left: auto; }
main { padding: 16px 24px 40px; max-width: 1500px; }
h1 { font-size: 20px; margin: 8px 0 6px; word-break: break-all; }
h2 { font-size: 16px; margin: 24px 0 8px; }
table.cw-table { border-collapse: collapse; background: #ffffff; width: 100%;
                 font-size: 13px; }
table.cw-table th, table.cw-table td { border: 1px solid #d0d7de; padding: 4px 8px;
                                       text-align: left; vertical-align: top;
                                       overflow-wrap: break-word; }
.cw-long { overflow-wrap: anywhere; }
table.cw-table th { background: #eaeef2; font-weight: 600; white-space: nowrap; }
table.cw-table td.cw-attempts { background: #f6f8fa; }
dl.cw-facts { display: grid; grid-template-columns: max-content auto; gap: 4px 16px;
              background: #ffffff; border: 1px solid #d0d7de; padding: 10px 14px; }
dl.cw-facts dt { font-weight: 600; }
dl.cw-facts dd { margin: 0; overflow-wrap: anywhere; }
.cw-id { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
         font-size: 12px; }
.cw-when, .cw-code, .cw-badge, a.cw-id { white-space: nowrap; }
.cw-ago { color: #57606a; font-size: 12px; }
.cw-sentence { background: #ffffff; border-left: 4px solid #0969da; padding: 8px 12px;
               margin: 8px 0; }
.cw-badge { display: inline-block; border-radius: 4px; padding: 1px 8px; color: #ffffff;
            font-weight: 600; font-size: 12px; background: #6e7781; }
.cw-active, .cw-dispatched { background: #1f6feb; }
.cw-waiting { background: #bf8700; }
.cw-completed, .cw-succeeded { background: #1a7f37; }
.cw-stopped, .cw-failed, .cw-cancelled, .cw-lease_expired { background: #cf222e; }
.cw-suppressed { background: #8250df; }
.cw-pending { background: #6e7781; }
form.cw-filters { display: flex; gap: 12px; flex-wrap: wrap; align-items: end;
                  background: #ffffff; border: 1px solid #d0d7de; padding: 10px 14px;
                  margin-bottom: 12px; }
form.cw-filters label { display: flex; flex-direction: column; font-size: 12px;
                        font-weight: 600; gap: 2px; }
form.cw-filters input, form.cw-filters select { font-size: 13px; padding: 3px 6px; }
nav.cw-pager { margin: 10px 0; display: flex; gap: 16px; }
.cw-empty { color: #57606a; font-style: italic; }
.cw-timeline { overflow-x: auto; background: #ffffff; border: 1px solid #d0d7de; }
footer.cw-foot { color: #57606a; font-size: 12px; padding: 0 24px 24px; }
"""


def esc(value: object) -> str:
    """``value`` as text safe inside HTML text and attribute values (``None`` as ``-``)."""
    text = "-" if value is None else str(value)
    return html.escape(_NOT_TEXT.sub("\ufffd", text), quote=True)


def path_of(*segments: str) -> str:
    """A path of the inspector from raw segments, each percent-encoded (``/`` included)."""
    return "/" + "/".join(quote(segment, safe="") for segment in segments)


def url_of(path: str, query: Mapping[str, object]) -> str:
    """``path`` with the query parameters that are not None or empty."""
    kept = {k: str(v) for k, v in query.items() if v is not None and v != ""}
    return path + ("?" + urlencode(kept) if kept else "")


def link(href: str, text: object, *, title: object = None, css: str | None = None) -> str:
    """An ``<a>`` element; ``href`` is escaped as an attribute, ``text`` as text."""
    extra = "" if title is None else f' title="{esc(title)}"'
    if css is not None:
        extra += f' class="{esc(css)}"'
    return f'<a href="{esc(href)}"{extra}>{esc(text)}</a>'


def short_id(value: str) -> str:
    """The last 12 characters of an id: the random part of a time-ordered UUID, so ids made
    in the same millisecond still look different."""
    return value if len(value) <= 12 else value[-12:]


def id_link(href: str, value: str) -> str:
    """A link to a record shown by its short id, the full id as its tooltip."""
    return link(href, short_id(value), title=value, css="cw-id")


def badge(value: object) -> str:
    """A coloured state or status badge."""
    text = esc(value)
    return f'<span class="cw-badge cw-{text}">{text}</span>'


def when(value: str | datetime | None, now: datetime) -> str:
    """An instant as ``2026-01-05 09:30:00`` with how far it is from ``now``."""
    if value is None:
        return "-"
    try:
        at = from_text(value) if isinstance(value, str) else value
    except ValueError:
        return esc(value)
    seconds = (at - now).total_seconds()
    if abs(seconds) < 1:
        relative = "now"
    elif seconds > 0:
        relative = f"in {duration_text(seconds)}"
    else:
        relative = f"{duration_text(seconds)} ago"
    shown = at.strftime("%Y-%m-%d %H:%M:%S")
    return (
        f'<time class="cw-when" datetime="{esc(at.isoformat())}">{esc(shown)}</time> '
        f'<span class="cw-ago">({esc(relative)})</span>'
    )


#: A name longer than this may break anywhere in a table cell (a hostile or generated one
#: must not widen the page); shorter ones never break.
LONG = 24


def name(value: object) -> str:
    """A host's name (tenant, recipient, key, step, channel) for a table cell."""
    text = "-" if value is None else str(value)
    return long_text(text) if len(text) > LONG else esc(text)


def long_text(value: object) -> str:
    """Text that may break anywhere to fit its cell."""
    return f'<span class="cw-long">{esc(value)}</span>'


def code(value: object) -> str:
    """A word of the machine's vocabulary (a reason, a state): never broken across lines."""
    return f'<span class="cw-code">{esc(value)}</span>'


def context_text(context: Any) -> str:
    """A trace context as ``key=value, …`` (sorted), or ``-``; a damaged one (not an
    object) as its text."""
    if not isinstance(context, Mapping):
        return str(context)
    return ", ".join(f"{k}={v}" for k, v in sorted(context.items())) or "-"


def table(head: Sequence[str], rows: Iterable[Sequence[str]], *, empty: str) -> str:
    """A table of cells that are already HTML; ``empty`` is said when there are no rows."""
    body = ["<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows]
    if not body:
        return f'<p class="cw-empty">{esc(empty)}</p>'
    header = "".join(f"<th>{esc(name)}</th>" for name in head)
    return (
        f'<table class="cw-table"><thead><tr>{header}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def facts(pairs: Iterable[tuple[str, str]]) -> str:
    """A list of ``name: value`` facts (values already HTML)."""
    items = "".join(f"<dt>{esc(name)}</dt><dd>{value}</dd>" for name, value in pairs)
    return f'<dl class="cw-facts">{items}</dl>'


def sentence(label: str, text: object) -> str:
    """One sentence for people, with its label (``Why``, ``Next``)."""
    return f'<p class="cw-sentence"><strong>{esc(label)}:</strong> {esc(text)}</p>'


#: The pages of the top bar: (path, label).
NAVIGATION = (("/", "Runs"), ("/outbox", "Outbox"), ("/due", "Due"))


def frame(
    *,
    title: str,
    body: str,
    here: str,
    store_label: str,
    scope: str | None,
    now: datetime,
    json_url: str | None,
) -> str:
    """The whole document: the top bar, ``body`` (HTML), and a footer with the time of
    the page and its JSON link."""
    links = " ".join(
        link(path, label, css="cw-here" if path == here else None) for path, label in NAVIGATION
    )
    where = f"{store_label} · read-only"
    if scope is not None:
        where += f" · tenant {scope} only"
    foot = f"As of {now.strftime('%Y-%m-%d %H:%M:%S')} UTC (the store's clock)."
    if json_url is not None:
        foot = f"{esc(foot)} {link(json_url, 'This page as JSON')}"
    else:
        foot = esc(foot)
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            '<head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            '<meta name="referrer" content="no-referrer">',
            f"<title>{esc(title)} · chimeway-lite</title>",
            f"<style>{STYLE}</style>",
            "</head>",
            "<body>",
            f'<header class="cw-top"><span>chimeway-lite</span> {links}'
            f'<span class="cw-store">{esc(where)}</span></header>',
            f"<main>{body}</main>",
            f'<footer class="cw-foot">{foot}</footer>',
            "</body></html>",
            "",
        ]
    )
