"""Server-rendered SVG charts: geometry computed here, drawn by templates/approvals/_charts.html.

No script and no inline style: bars and lines carry classes that app.css colours, each chart
has a title and a description for screen readers, and every bar a <title> with its figure.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from approvals.selectors.analytics import Bucket, DurationStats

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 12, 34  # room for the axes' labels
MAX_X_LABELS = 8


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 5 × 10^k at or above value (at least 1)."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= value)


@dataclass
class Rect:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str


@dataclass
class Label:
    x: float
    y: float
    text: str
    anchor: str = "middle"


@dataclass
class Chart:
    title: str
    description: str
    width: int = WIDTH
    height: int = HEIGHT
    plot_left: float = LEFT  # where gridlines start and end
    plot_right: float = WIDTH - RIGHT
    bars: list[Rect] = field(default_factory=list)
    gridlines: list[Label] = field(default_factory=list)  # a line across at y, labelled on the left
    labels: list[Label] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)  # (css class, what it means)
    empty: bool = False


def _y_axis(chart: Chart, largest: float) -> Callable[[float], float]:
    """Gridlines at a round step (whole numbers: these are counts) up to at least `largest`;
    returns the function from a value to its y."""
    step = nice_ceiling(largest / 4)
    top = step * max(math.ceil(largest / step), 1)
    plot_height = chart.height - TOP - BOTTOM

    def y(value: float) -> float:
        return chart.height - BOTTOM - plot_height * value / top

    for i in range(round(top / step) + 1):
        chart.gridlines.append(Label(LEFT - 6, y(i * step), f"{i * step:g}", anchor="end"))
    return y


def throughput_chart(buckets: Sequence[Bucket], unit: str) -> Chart:
    """Per day or week: requests submitted beside requests decided (approved under rejected)."""
    chart = Chart(
        title=f"Requests submitted and decided per {unit}",
        description=(
            f"{sum(b.submitted for b in buckets)} submitted and {sum(b.decided for b in buckets)} decided "
            f"over {len(buckets)} {unit}s."
        ),
        legend=[("bar-submitted", "Submitted"), ("bar-approved", "Approved"), ("bar-rejected", "Rejected")],
    )
    if not buckets:
        chart.empty = True
        return chart
    y = _y_axis(chart, max(max(b.submitted, b.decided) for b in buckets))
    slot = (chart.width - LEFT - RIGHT) / len(buckets)
    bar = max(slot * 0.38, 0.5)
    every = math.ceil(len(buckets) / MAX_X_LABELS)
    for i, b in enumerate(buckets):
        x = LEFT + i * slot + slot * 0.1
        when = b.start.strftime("%d %b") if unit == "day" else f"week of {b.start:%d %b}"
        # Submitted beside decided; on the decided side, rejected stacked on approved.
        for dx, low, high, css, what in (
            (0, 0, b.submitted, "bar-submitted", f"{b.submitted} submitted"),
            (bar, 0, b.approved, "bar-approved", f"{b.approved} approved"),
            (bar, b.approved, b.decided, "bar-rejected", f"{b.rejected} rejected"),
        ):
            if high > low:
                chart.bars.append(Rect(x + dx, y(high), bar, y(low) - y(high), css, f"{when}: {what}"))
        if i % every == 0:
            chart.labels.append(
                Label(LEFT + (i + 0.5) * slot, chart.height - BOTTOM + 18, f"{b.start:%d %b}")
            )
    return chart


def short_duration(value: timedelta | float) -> str:
    """3d 4h, 5h 20m, 12m, 40s: the two largest units."""
    seconds = int(value.total_seconds() if isinstance(value, timedelta) else value)
    if seconds < 60:
        return f"{seconds}s"
    parts: list[str] = []
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size or parts:
            amount, seconds = divmod(seconds, size)
            parts.append(f"{amount}{unit}")
    parts = parts[:2]
    while len(parts) > 1 and parts[-1][0] == "0":
        parts.pop()
    return " ".join(parts)


def durations_chart(rows: Sequence[DurationStats], *, title: str) -> Chart:
    """One row per group: its median as a solid bar over its 90th percentile as a light one."""
    row_height = 30
    chart = Chart(
        title=title,
        description="; ".join(
            f"{r.label}: median {short_duration(r.median)}, 90th percentile {short_duration(r.p90)} "
            f"({r.count} decided)"
            for r in rows
        ),
        height=TOP + BOTTOM + row_height * max(len(rows), 1),
        legend=[("bar-median", "Median"), ("bar-p90", "90th percentile")],
    )
    if not rows:
        chart.empty = True
        return chart
    label_width = 170
    top = max(r.p90.total_seconds() for r in rows) or 1
    plot_width = chart.width - label_width - RIGHT - 60
    for i, r in enumerate(rows):
        y = TOP + i * row_height
        chart.labels.append(Label(label_width - 8, y + 19, r.label[:28], anchor="end"))
        p90 = plot_width * r.p90.total_seconds() / top
        median = plot_width * r.median.total_seconds() / top
        chart.bars.append(
            Rect(
                label_width,
                y + 4,
                max(p90, 1),
                20,
                "bar-p90",
                f"{r.label}: 90th percentile {short_duration(r.p90)}",
            )
        )
        chart.bars.append(
            Rect(
                label_width,
                y + 8,
                max(median, 1),
                12,
                "bar-median",
                f"{r.label}: median {short_duration(r.median)}",
            )
        )
        chart.labels.append(
            Label(
                label_width + max(p90, 1) + 6,
                y + 19,
                f"{short_duration(r.median)} / {short_duration(r.p90)}",
                "start",
            )
        )
    return chart
