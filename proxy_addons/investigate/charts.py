"""Inline SVG charts for the report: no scripts, no fonts or images fetched.

Every bar and cell carries ``data-*`` attributes with its count, and a
``<title>`` for a tooltip, so the numbers stay readable where colour fails
(print, colour blindness) and tests can check them.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

ALLOWED = "#2467a8"
BLOCKED = "#c0392b"
MISUSE = "#8e44ad"
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _svg(width: int, height: int, body: list[str], label: str, cls: str) -> Markup:
    # Safe: every text in ``body`` went through `escape`; numbers are formatted by us.
    return Markup(  # noqa: S704
        f'<svg class="chart {cls}" role="img" aria-label="{escape(label)}" '
        f'viewBox="0 0 {width} {height}" width="100%" xmlns="http://www.w3.org/2000/svg">'
        + "".join(body)
        + "</svg>"
    )


def _text(x: float, y: float, s: str, anchor: str = "start", size: int = 10) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}">'
        f"{escape(s)}</text>"
    )


def daily(days: Sequence[tuple[str, int, int]]) -> Markup:
    """Allowed and blocked per day, side by side: one pair of bars per day of the period."""
    width, height, left, bottom, top = 700, 220, 40, 30, 10
    plot_w, plot_h = width - left - 10, height - bottom - top
    peak = max([max(a, b) for _, a, b in days] or [0]) or 1
    slot = plot_w / max(len(days), 1)
    bar = max(slot * 0.4, 0.5)
    body = [
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 10}" y2="{top + plot_h}" '
        'stroke="#444" stroke-width="0.5"/>',
        _text(left - 4, top + 8, str(peak), "end"),
        _text(left - 4, top + plot_h, "0", "end"),
    ]
    for i, (day, allowed, blocked) in enumerate(days):
        x = left + i * slot
        for j, (kind, n, colour) in enumerate(
            (("allowed", allowed, ALLOWED), ("blocked", blocked, BLOCKED))
        ):
            h = plot_h * n / peak
            body.append(
                f'<rect class="bar {kind}" data-day="{day}" data-count="{n}" '
                f'x="{x + slot * 0.1 + j * bar:.2f}" y="{top + plot_h - h:.2f}" '
                f'width="{bar:.2f}" height="{h:.2f}" fill="{colour}">'
                f"<title>{day}: {n} {kind}</title></rect>"
            )
    if days:
        body.append(_text(left, height - 8, days[0][0]))
        if len(days) > 1:
            body.append(_text(width - 10, height - 8, days[-1][0], "end"))
        # Month marks on long periods, away from the first and last labels.
        for i, (day, _, _) in enumerate(days):
            x = left + i * slot
            if len(days) > 45 and day.endswith("-01") and 70 < x - left < plot_w - 70:
                body.append(
                    f'<line x1="{x:.1f}" y1="{top + plot_h}" x2="{x:.1f}" y2="{top + plot_h + 4}" '
                    'stroke="#444" stroke-width="0.5"/>'
                )
                body.append(_text(x, height - 8, day[:7], "middle", 9))
    return _svg(width, height, body, "Activity per day, allowed and blocked", "daily")


def heatmap(cells: Sequence[Sequence[int]]) -> Markup:
    """Weekday rows (Monday first) by hour-of-day columns; darker is more activity."""
    width, height, left, top, cw, ch = 700, 190, 40, 20, 27.0, 22.0
    peak = max(max(row) for row in cells) or 1
    body = [_text(left + h * cw + cw / 2, top - 6, f"{h:02d}", "middle", 8) for h in range(24)]
    for d, row in enumerate(cells):
        y = top + d * ch
        body.append(_text(left - 6, y + ch * 0.65, WEEKDAYS[d], "end"))
        for h, n in enumerate(row):
            shade = 0.0 if n == 0 else 0.15 + 0.85 * n / peak
            body.append(
                f'<rect class="cell" data-weekday="{d}" data-hour="{h}" data-count="{n}" '
                f'x="{left + h * cw:.1f}" y="{y:.1f}" width="{cw - 1:.1f}" height="{ch - 1:.1f}" '
                f'fill="{ALLOWED}" fill-opacity="{shade:.3f}" stroke="#ccc" stroke-width="0.3">'
                f"<title>{WEEKDAYS[d]} {h:02d}:00–{h:02d}:59: {n}</title></rect>"
            )
            if n:
                colour = "#fff" if shade > 0.55 else "#000"
                body.append(
                    f'<text x="{left + h * cw + (cw - 1) / 2:.1f}" y="{y + ch * 0.65:.1f}" '
                    f'font-size="8" text-anchor="middle" fill="{colour}">{n}</text>'
                )
    return _svg(width, height, body, "Activity by weekday and hour of day", "heatmap")


def hbars(
    rows: Sequence[tuple[str, Sequence[tuple[str, int, str]]]], label: str, cls: str
) -> Markup:
    """Horizontal stacked bars: one row per label, one segment per (kind, count, colour)."""
    width, left, row_h = 700, 190, 20
    height = max(len(rows), 1) * row_h + 10
    peak = max([sum(n for _, n, _ in parts) for _, parts in rows] or [0]) or 1
    plot_w = width - left - 60
    body: list[str] = []
    for i, (name, parts) in enumerate(rows):
        y = 5 + i * row_h
        body.append(_text(left - 6, y + 13, name if len(name) <= 32 else name[:31] + "…", "end"))
        x = float(left)
        for kind, n, colour in parts:
            w = plot_w * n / peak
            body.append(
                f'<rect class="bar {kind}" data-label="{escape(name)}" data-count="{n}" '
                f'x="{x:.2f}" y="{y:.1f}" width="{w:.2f}" height="{row_h - 6}" fill="{colour}">'
                f"<title>{escape(name)}: {n} {kind}</title></rect>"
            )
            x += w
        body.append(_text(x + 4, y + 13, str(sum(n for _, n, _ in parts))))
    return _svg(width, height, body, label, cls)
