"""Small SVG charts for the admin pages, drawn on the server (no JavaScript, no library).

Two shapes are enough for the dashboard:

- :func:`daily_bars`: one vertical bar per day (credits charged per day), with a y axis on
  "nice" integer ticks and a date under every few bars;
- :func:`share_bars`: one horizontal bar per row (first-reply targets met per plan), the met
  part filled and the missed part hatched, with "met / total" and the percentage beside it.

Every chart is an ``<svg role="img">`` with a ``<title>`` and a ``<desc>`` that states the
figures in words, and a ``<title>`` on each bar (the browser's tooltip), so it reads without
colour or a mouse. Text is XML-escaped here; the result is safe to insert into a page as is.
Colours come from CSS custom properties of the page (``--chart-bar``, ...), each with a
fallback, so the charts follow the page's light and dark themes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from html import escape

__all__ = ["Share", "daily_bars", "nice_ticks", "share_bars"]

#: The fonts of the page (the SVG is inline, so it inherits them; this is the fallback).
_FONT = "system-ui, sans-serif"


@dataclass(frozen=True, slots=True)
class Share:
    """One row of :func:`share_bars`: how many targets were ``met``, ``missed``, still ``open``."""

    label: str
    met: int
    missed: int
    open: int = 0

    @property
    def total(self) -> int:
        return self.met + self.missed + self.open

    @property
    def percent(self) -> int | None:
        """Targets met as a whole percentage of those decided (met or missed), rounded half
        up; ``None`` when none is decided yet."""
        decided = self.met + self.missed
        if decided <= 0:
            return None
        return (200 * self.met + decided) // (2 * decided)


def nice_ticks(top: int, *, count: int = 4) -> list[int]:
    """Integer tick values from 0 covering ``top``, on steps of 1, 2 or 5 times a power of 10.

    >>> nice_ticks(0)
    [0, 1]
    >>> nice_ticks(47)
    [0, 20, 40, 60]
    """
    if top <= 0:
        return [0, 1]
    rough = max(1, -(-top // count))  # ceil(top / count)
    magnitude = 1
    while magnitude * 10 <= rough:
        magnitude *= 10
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= rough)
    last = -(-top // step) * step
    return list(range(0, last + 1, step))


def daily_bars(
    days: Sequence[tuple[date, int]],
    *,
    title: str,
    unit: str = "credits",
    width: int = 640,
    height: int = 220,
) -> str:
    """A bar per day; ``days`` in date order, every day present (zeros included).

    :param title: the chart's accessible name.
    :param unit: what the values count, for the description and the tooltips.
    """
    left, right, top, bottom = 44, 8, 10, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    total = sum(value for _, value in days)
    ticks = nice_ticks(max((value for _, value in days), default=0))
    scale = plot_h / ticks[-1]
    if days:
        desc = (
            f"{total} {unit} in {len(days)} days, "
            f"{days[0][0].isoformat()} to {days[-1][0].isoformat()}; "
            f"highest {max(v for _, v in days)} on "
            f"{max(days, key=lambda d: d[1])[0].isoformat()}."
        )
    else:
        desc = "No days to show."
    parts = [_open(width, height, title, desc)]
    for tick in ticks:
        y = top + plot_h - tick * scale
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="var(--chart-grid, #d0d7de)" stroke-width="1"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="var(--chart-text, #57606a)">{tick}</text>'
        )
    if days:
        slot = plot_w / len(days)
        bar = max(1.0, slot * 0.7)
        # A date label every few bars, so labels never overlap (about 70 px apart).
        every = max(1, round(70 / slot))
        for index, (day, value) in enumerate(days):
            x = left + index * slot + (slot - bar) / 2
            h = value * scale
            label = escape(f"{day.isoformat()}: {value} {unit}")
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="var(--chart-bar, #0b5cad)">'
                f"<title>{label}</title></rect>"
            )
            if index % every == 0:
                cx = left + index * slot + slot / 2
                parts.append(
                    f'<text x="{cx:.1f}" y="{height - 10}" text-anchor="middle" font-size="11" '
                    f'fill="var(--chart-text, #57606a)">{day.strftime("%d %b")}</text>'
                )
    parts.append("</svg>")
    return "".join(parts)


def share_bars(rows: Sequence[Share], *, title: str, width: int = 640, row_height: int = 28) -> str:
    """A horizontal bar per row, split into met (filled), missed (hatched) and open (outlined)
    parts in proportion, with "met of decided" and the percentage beside it.

    :param title: the chart's accessible name.
    :raises ValueError: a row with a negative count.
    """
    for row in rows:
        if min(row.met, row.missed, row.open) < 0:
            raise ValueError(f"{row.label}: counts must not be negative")
    # Room for the longest label at about 7 px a character (12 px text), within limits.
    label_w = min(240, max(60, 7 * max((len(row.label) for row in rows), default=0)))
    figures_w, gap = 170, 8
    bar_w = width - label_w - figures_w - 2 * gap
    height = max(1, len(rows)) * row_height + 8
    desc = "; ".join(_share_words(row) for row in rows) or "No plans to show."
    parts = [
        _open(width, height, title, desc),
        '<defs><pattern id="care-missed" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="6" height="6" '
        'fill="var(--chart-missed-bg, #fbeae5)"/><line x1="0" y1="0" x2="0" y2="6" '
        'stroke="var(--chart-missed, #cf222e)" stroke-width="2"/></pattern></defs>',
    ]
    for index, row in enumerate(rows):
        y = 4 + index * row_height
        bar_h = row_height - 10
        text_y = y + bar_h / 2 + 4
        label = escape(row.label)
        parts.append(
            f'<text x="{label_w}" y="{text_y:.1f}" text-anchor="end" font-size="12" '
            f'fill="var(--chart-text, #57606a)">{label}</text>'
        )
        x = float(label_w + gap)
        parts.append(
            f'<rect x="{x:.1f}" y="{y}" width="{bar_w}" height="{bar_h}" fill="none" '
            f'stroke="var(--chart-grid, #d0d7de)"/>'
        )
        segments = (
            ("met", row.met, 'fill="var(--chart-ok, #1a7f37)"'),
            ("missed", row.missed, 'fill="url(#care-missed)"'),
            ("open", row.open, 'fill="var(--chart-grid, #d0d7de)"'),
        )
        for name, count, paint in segments:
            if not count:
                continue
            w = bar_w * count / row.total
            parts.append(
                f'<rect class="{name}" x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" '
                f"{paint}><title>{label}: {count} {name}</title></rect>"
            )
            x += w
        figures = f"{row.met} of {row.met + row.missed} met" if row.total else "no tickets"
        if row.percent is not None:
            figures += f" · {row.percent}%"
        if row.open:
            figures += f" · {row.open} open"
        parts.append(
            f'<text x="{label_w + gap + bar_w + gap}" y="{text_y:.1f}" font-size="12" '
            f'fill="var(--chart-text, #57606a)">{escape(figures)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _share_words(row: Share) -> str:
    words = f"{row.label}: {row.met} met, {row.missed} missed, {row.open} open"
    return words + (f" ({row.percent}% met)" if row.percent is not None else "")


def _open(width: int, height: int, title: str, desc: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {width} {height}" '
        f'width="100%" preserveAspectRatio="xMinYMin meet" font-family="{_FONT}" '
        f'class="chart"><title>{escape(title)}</title><desc>{escape(desc)}</desc>'
    )
