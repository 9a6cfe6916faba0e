"""The pipeline chart: readings/s and end-to-end latency per second over the run (PNG)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")  # files only, no display

import matplotlib.pyplot as plt


@dataclass(frozen=True, slots=True)
class Span:
    label: str
    begin_s: float
    end_s: float
    offered_per_s: float | None


@dataclass(frozen=True, slots=True)
class Series:
    seconds: Sequence[float]
    """Seconds since the run began, one per bucket."""
    committed_per_s: Sequence[float]
    """Per second of commit."""
    committed_avg_per_s: Sequence[float]
    """The same, a 5 s moving average."""
    bridged_per_s: Sequence[float | None]
    latency_p50_s: Sequence[float | None]
    """Of the readings published (``ts``) in that second."""
    latency_p99_s: Sequence[float | None]


def draw(series: Series, spans: Sequence[Span], title: str, path: Path) -> None:
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(11, 7), constrained_layout=True)
    colours = ("#dde8f5", "#f6e2d3", "#e3f1dc", "#efe1f3")
    for index, span in enumerate(spans):
        for axis in (top, bottom):
            axis.axvspan(span.begin_s, span.end_s, color=colours[index % len(colours)], zorder=0)
        top.text(
            (span.begin_s + span.end_s) / 2, 1.0, span.label, transform=top.get_xaxis_transform(),
            ha="center", va="bottom", fontsize=8,
        )  # fmt: skip
        if span.offered_per_s:
            top.hlines(
                span.offered_per_s, span.begin_s, span.end_s, colors="grey", linestyles="dashed",
                label="offered" if index == 0 else None,
            )  # fmt: skip
    top.plot(series.seconds, series.bridged_per_s, color="#8c8c8c", lw=0.8, label="into Kafka")
    top.plot(series.seconds, series.committed_per_s, color="#1f5fa8", lw=0.5, alpha=0.35)
    top.plot(
        series.seconds, series.committed_avg_per_s, color="#1f5fa8", lw=1.4,
        label="committed (5 s average; faint: per second)",
    )  # fmt: skip
    top.set_ylabel("readings / s")
    top.set_ylim(bottom=0)
    top.legend(loc="upper left", fontsize=8)
    top.set_title(title, fontsize=10, pad=16)
    bottom.plot(series.seconds, series.latency_p50_s, color="#2a8c3c", lw=1, label="p50")
    bottom.plot(series.seconds, series.latency_p99_s, color="#c23b22", lw=1, label="p99")
    bottom.set_yscale("log")
    bottom.set_ylabel("publish -> commit latency (s)")
    bottom.set_xlabel(
        "seconds since the first stage began (rates: second of commit; latency: of publish)"
    )
    bottom.legend(loc="upper left", fontsize=8)
    bottom.grid(True, which="both", axis="y", alpha=0.3)
    fig.savefig(path, dpi=110)
    plt.close(fig)
