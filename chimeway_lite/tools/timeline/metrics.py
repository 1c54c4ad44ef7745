"""How wide a line of text is, without a browser: a fixed table of advance widths.

The timeline sets its text in DejaVu Sans (the family Debian's and most Linux desktops
ship; Bitstream Vera Sans has the same metrics), falling back to the generic sans-serif
face, and its ids in DejaVu Sans Mono. To lay labels out without overlaps it must know how
wide each one is: the table below holds, for every character it knows, the advance width in
thousandths of an em, measured in Chromium — the larger of DejaVu Sans and Liberation Sans
(Arial's metrics, the usual sans-serif fallback), so that a line is never wider on screen
than :func:`text_width` says. A character outside the table counts as a full em (1.25 em for
wide East Asian characters and anything outside the Basic Multilingual Plane), which is
wider than any of its glyphs in these faces.

:func:`fit` cuts a line to a width (ending in ``…``); :func:`wrap` breaks a sentence into
lines of a width, cutting words that are longer than a line.
"""

from __future__ import annotations

import unicodedata

#: The families of the picture's text, as CSS ``font-family`` values.
SANS = "'DejaVu Sans', 'Bitstream Vera Sans', sans-serif"
MONO = "'DejaVu Sans Mono', 'Bitstream Vera Sans Mono', monospace"

#: How far a line's box reaches above its baseline and below it, in ems. DejaVu Sans's own
#: are 0.928 and 0.236, but a browser that draws a picture scaled down rounds the font size
#: it lays out at, and its boxes grow up to about 1.33 em: the layout leaves room for that.
ASCENT = 1.0
DESCENT = 0.35

#: The advance of every DejaVu Sans Mono character (Liberation Mono's is 0.600 em).
_MONO = 603
_UNKNOWN = 1000
_WIDE = 1250
#: A margin on every measured line, for kerning and rounding in the browser.
_SLACK = 1.02

# The widths, in thousandths of an em, of U+0020..U+007E and U+00A0..U+017F, then of a few
# marks the picture uses itself (ellipsis, arrows, dashes, almost-equal).
# fmt: off
#: U+0020..U+007E, regular.
_ASCII_REGULAR = (
    318, 401, 460, 838, 637, 951, 780, 275, 391, 391, 500, 838, 318, 361, 318, 337,
    637, 637, 637, 637, 637, 637, 637, 637, 637, 637, 337, 337, 838, 838, 838, 557,
    1016, 685, 687, 723, 771, 667, 611, 778, 752, 295, 500, 667, 558, 863, 749, 788,
    667, 788, 723, 667, 611, 732, 685, 989, 686, 667, 686, 391, 337, 391, 838, 557,
    500, 613, 635, 550, 635, 616, 353, 635, 634, 278, 278, 580, 278, 975, 634, 612,
    635, 635, 412, 521, 393, 634, 592, 818, 592, 592, 525, 637, 337, 637, 838,
)

#: U+0020..U+007E, bold.
_ASCII_BOLD = (
    349, 457, 521, 838, 696, 1002, 873, 307, 458, 458, 523, 838, 380, 416, 380, 366,
    696, 696, 696, 696, 696, 696, 696, 696, 696, 696, 400, 400, 838, 838, 838, 611,
    1000, 774, 763, 734, 831, 684, 684, 821, 837, 373, 557, 775, 638, 996, 837, 851,
    733, 851, 771, 721, 683, 813, 774, 1104, 771, 725, 726, 458, 366, 458, 838, 557,
    500, 675, 716, 593, 716, 679, 436, 716, 712, 343, 343, 666, 343, 1042, 712, 688,
    716, 716, 494, 596, 479, 712, 652, 924, 646, 652, 583, 712, 366, 712, 838,
)

#: U+00A0..U+017F, regular.
_LATIN_REGULAR = (
    318, 401, 637, 637, 637, 637, 337, 557, 500, 1000, 472, 612, 838, 0, 1000, 553,
    500, 838, 401, 401, 500, 637, 637, 318, 500, 401, 472, 612, 970, 970, 970, 611,
    685, 685, 685, 685, 685, 685, 1000, 723, 667, 667, 667, 667, 295, 295, 295, 295,
    775, 749, 788, 788, 788, 788, 788, 838, 788, 732, 732, 732, 732, 667, 667, 630,
    613, 613, 613, 613, 613, 613, 982, 550, 616, 616, 616, 616, 278, 278, 278, 278,
    612, 634, 612, 612, 612, 612, 612, 838, 612, 634, 634, 634, 634, 592, 635, 592,
    685, 613, 685, 613, 685, 613, 723, 550, 723, 550, 723, 550, 723, 550, 771, 635,
    775, 635, 667, 616, 667, 616, 667, 616, 667, 616, 667, 616, 778, 635, 778, 635,
    778, 635, 778, 635, 752, 634, 917, 695, 295, 278, 295, 278, 295, 278, 295, 278,
    295, 278, 735, 556, 500, 278, 667, 580, 580, 558, 278, 558, 278, 558, 375, 558,
    342, 563, 285, 749, 634, 749, 634, 749, 634, 814, 749, 634, 788, 612, 788, 612,
    788, 612, 1070, 1023, 723, 412, 723, 412, 723, 412, 667, 521, 667, 521, 667, 521,
    667, 521, 611, 393, 611, 393, 611, 393, 732, 634, 732, 634, 732, 634, 732, 634,
    732, 634, 732, 634, 989, 818, 667, 592, 667, 686, 525, 686, 525, 686, 525, 353,
)

#: U+00A0..U+017F, bold.
_LATIN_BOLD = (
    349, 457, 696, 696, 637, 696, 366, 557, 500, 1000, 564, 646, 838, 0, 1000, 553,
    500, 838, 438, 438, 500, 736, 637, 380, 500, 438, 564, 646, 1036, 1036, 1036, 611,
    774, 774, 774, 774, 774, 774, 1085, 734, 684, 684, 684, 684, 373, 373, 373, 373,
    838, 837, 851, 851, 851, 851, 851, 838, 851, 813, 813, 813, 813, 725, 738, 720,
    675, 675, 675, 675, 675, 675, 1048, 593, 679, 679, 679, 679, 343, 343, 343, 343,
    688, 712, 688, 688, 688, 688, 688, 838, 688, 712, 712, 712, 712, 652, 716, 652,
    774, 675, 774, 675, 774, 675, 734, 593, 734, 593, 734, 593, 734, 593, 831, 719,
    838, 716, 684, 679, 684, 679, 684, 679, 684, 679, 684, 679, 821, 716, 821, 716,
    821, 716, 821, 716, 837, 712, 974, 791, 373, 343, 373, 343, 373, 343, 373, 343,
    373, 343, 785, 686, 557, 343, 775, 666, 666, 638, 343, 638, 343, 638, 480, 638,
    557, 643, 372, 837, 712, 837, 712, 837, 712, 983, 837, 712, 851, 688, 851, 688,
    851, 688, 1167, 1095, 771, 494, 771, 494, 771, 494, 721, 596, 721, 596, 721, 596,
    721, 596, 683, 479, 683, 480, 683, 479, 813, 712, 813, 712, 813, 712, 813, 712,
    813, 712, 813, 712, 1104, 924, 725, 652, 725, 726, 583, 726, 583, 726, 583, 436,
)

_EXTRA_REGULAR = {
    "\u2026": 1000, "\u2192": 1000, "\u2190": 1000, "\u2013": 557, "\u2014": 1000, "\u2248": 838,
}
_EXTRA_BOLD = {
    "\u2026": 1000, "\u2192": 1000, "\u2190": 1000, "\u2013": 557, "\u2014": 1000, "\u2248": 838,
}
# fmt: on


def _table(ascii_widths: tuple[int, ...], latin_widths: tuple[int, ...]) -> dict[str, int]:
    table = {chr(0x20 + i): w for i, w in enumerate(ascii_widths)}
    table.update({chr(0xA0 + i): w for i, w in enumerate(latin_widths)})
    return table


_WIDTHS = {
    False: {**_table(_ASCII_REGULAR, _LATIN_REGULAR), **_EXTRA_REGULAR},
    True: {**_table(_ASCII_BOLD, _LATIN_BOLD), **_EXTRA_BOLD},
}


def _fallback(char: str) -> int:
    if ord(char) > 0xFFFF or unicodedata.east_asian_width(char) in ("W", "F"):
        return _WIDE
    return _UNKNOWN


def char_width(char: str, *, bold: bool = False, mono: bool = False) -> int:
    """The advance of ``char`` in thousandths of an em."""
    if mono and char in _WIDTHS[False]:
        return _MONO
    return _WIDTHS[bold].get(char) or _fallback(char)


def text_width(text: str, size: float, *, bold: bool = False, mono: bool = False) -> float:
    """The width of ``text`` set at ``size`` pixels, in pixels (an upper bound)."""
    table = _WIDTHS[bold]
    if mono:
        units = sum(_MONO if c in table else _fallback(c) for c in text)
    else:
        units = sum(table.get(c) or _fallback(c) for c in text)
    return units * size / 1000 * _SLACK


def fit(text: str, width: float, size: float, *, bold: bool = False, mono: bool = False) -> str:
    """``text`` if it fits in ``width`` pixels, else its longest head that fits with ``…``."""
    if text_width(text, size, bold=bold, mono=mono) <= width + 1e-6:
        return text
    head = text
    while head and text_width(head + "…", size, bold=bold, mono=mono) > width:
        head = head[:-1]
    return head.rstrip() + "…"


def wrap(
    text: str, width: float, size: float, *, bold: bool = False, max_lines: int | None = None
) -> list[str]:
    """``text`` broken into lines no wider than ``width`` pixels, at spaces; a word longer
    than a line is cut. With ``max_lines``, the last line kept ends in ``…`` when text was
    left out."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}" if line else word
        if text_width(candidate, size, bold=bold) <= width:
            line = candidate
            continue
        if text_width(word, size, bold=bold) <= width:
            lines.append(line)
            line = word
            continue
        # A word longer than a line: cut it, its head on the line begun.
        while text_width(candidate, size, bold=bold) > width:
            cut = len(candidate)
            while cut > 1 and text_width(candidate[:cut], size, bold=bold) > width:
                cut -= 1
            lines.append(candidate[:cut].rstrip())
            candidate = candidate[cut:].lstrip()
        line = candidate
    if line:
        lines.append(line)
    if max_lines is not None and len(lines) > max_lines:
        kept = lines[:max_lines]
        # The next line's words did not fit after the last kept one: fit() cuts and marks it.
        kept[-1] = fit(f"{kept[-1]} {lines[max_lines]}", width, size, bold=bold)
        return kept
    return lines or [""]
