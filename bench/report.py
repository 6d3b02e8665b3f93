"""Turning measurements into the printed table, ``latest.json`` and ``latest.png``."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear between closest ranks; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def rnd(value: float, digits: int = 1) -> float | None:
    """Rounded, or None (JSON null) for NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return round(value, digits)


def per_second(times: Sequence[float], origin: float) -> list[tuple[float, int]]:
    """Completions per second over one run, in whole seconds from its first completion.

    The x value is the bin's middle, in seconds since ``origin``. The last,
    partial, second is left out.
    """
    if not times:
        return []
    first = min(times)
    counts: dict[int, int] = {}
    for t in times:
        second = int(t - first)
        counts[second] = counts.get(second, 0) + 1
    last = max(counts)
    if last > 1:
        del counts[last]
        last -= 1
    return [(first - origin + s + 0.5, counts.get(s, 0)) for s in range(last + 1)]


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"
    else:
        text = f"{value:,}" if isinstance(value, int) else str(value)
    return f"{text} {unit}".rstrip()


def _verdict(ok: bool | None) -> str:
    return "" if ok is None else ("PASS" if ok else "FAIL")


def table(r: dict[str, Any]) -> str:
    """The human-readable summary printed at the end of a run."""
    t = r["targets"]
    window = r["window_s"]
    rows: list[tuple[str, str, str, str]] = [
        ("/healthz saturation", _fmt(r["healthz_rps"], "req/s"), "", ""),
        (
            "NEW_MESSAGE saturation",
            _fmt(r["webhook_rps"], "req/s"),
            "",
            "",
        ),
        (
            "  ratio to /healthz",
            _fmt(r["webhook_to_healthz_ratio"]),
            ">= 0.20",
            _verdict(t["ratio"]),
        ),
        (
            "  latency p50 / p99",
            f"{_fmt(r['webhook_p50_ms'])} / {_fmt(r['webhook_p99_ms'], 'ms')}",
            "",
            "",
        ),
        (
            "  messages starting a group",
            _fmt(r["saturation"]["webhook"]["new_group_share"]),
            "",
            "",
        ),
        (
            "NEW_CONVERSATION (pool)",
            _fmt(r["new_conversation_rps"], "req/s"),
            "",
            "",
        ),
        (
            "Half load (NEW_MESSAGE, open loop)",
            f"{_fmt(r['half_load_rps'], 'req/s')} (target {_fmt(r['half_load_target_rps'])})",
            "",
            "",
        ),
        (
            "  latency p50 / p99",
            f"{_fmt(r['half_load_p50_ms'])} / {_fmt(r['half_load_p99_ms'], 'ms')}",
            "p99 < 50 ms",
            _verdict(t["half_load_p99"]),
        ),
        (
            "Conversations (locust)",
            f"{_fmt(r['conversations_rps'], 'req/s')} (target {_fmt(r['conversations_target_rps'])}"
            f" = {r['conversations_share']:g} x saturation)",
            "",
            "",
        ),
        ("  conversations played", _fmt(r["conversations_played"]), "", ""),
        (
            "  NEW_MESSAGE p50 / p99",
            f"{_fmt(r['conversations_p50_ms'])} / {_fmt(r['conversations_p99_ms'], 'ms')}",
            "",
            "",
        ),
        (
            "  all events p99 / errors",
            f"{_fmt(r['conversations_all_p99_ms'], 'ms')} / {r['conversations_errors']}",
            "",
            "",
        ),
        (
            "Reply delay p50 / p99",
            f"{_fmt(r['reply_delay_p50_s'])} / {_fmt(r['reply_delay_p99_s'], 's')}",
            f"p99 <= {window + 1:g} s",
            _verdict(t["reply_delay_p99"]),
        ),
        (
            "  min / max",
            f"{_fmt(r['reply_delay_min_s'])} / {_fmt(r['reply_delay_max_s'], 's')}",
            f"min >= {window:g} s",
            _verdict(t["reply_delay_min"]),
        ),
        ("  groups measured", _fmt(r["reply_delay_groups"]), "", ""),
        ("Lost", _fmt(r["lost"]), "0", _verdict(t["lost"])),
        ("Duplicated", _fmt(r["duplicated"]), "0", _verdict(t["duplicated"])),
        (
            "Messages / groups / convs",
            f"{r['messages']:,} / {r['groups']:,} / {r['conversations']:,}",
            "",
            "",
        ),
        (
            "RSS web+worker start/end",
            f"{_fmt(r['rss_start_mb'])} / {_fmt(r['rss_end_mb'], 'MB')}",
            "flat (600 s soak)",
            "",
        ),
    ]
    width = [max(len(row[i]) for row in rows) for i in range(4)]
    head = ("measure", "value", "target", "")
    width = [max(w, len(h)) for w, h in zip(width, head, strict=True)]
    line = "  ".join("-" * w for w in width)
    out = ["  ".join(h.ljust(w) for h, w in zip(head, width, strict=True)), line]
    for row in rows:
        out.append("  ".join(c.ljust(w) for c, w in zip(row, width, strict=True)).rstrip())
    m = r["machine"]
    out.append(line)
    out.append(
        f"{m['cpu_count']} x {m['cpu_model']}, Python {m['python']}, commit {r['git_commit']}"
    )
    return "\n".join(out)


def write_json(path: Path, result: dict[str, Any]) -> None:
    path.write_text(json.dumps(result, indent=2, sort_keys=False) + "\n")


def write_png(
    path: Path,
    *,
    result: dict[str, Any],
    delays: Sequence[float],
    throughput: dict[str, list[list[tuple[float, int]]]],
    phases: Sequence[tuple[str, float, float]],
    rss: Sequence[dict[str, float]],
) -> None:
    """Reply-delay histogram and CDF, throughput over time, RSS over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    window = float(result["window_s"])
    fig, axes = plt.subplots(3, 1, figsize=(11, 12), constrained_layout=True)
    fig.suptitle(
        f"Parley bench, {result['started_at']}, commit {result['git_commit']}: "
        f"NEW_MESSAGE/healthz = {_fmt(result['webhook_to_healthz_ratio'])}"
    )

    ax = axes[0]
    if delays:
        low = min(min(delays), window) - 0.5
        top = max(max(delays), window + 1.5)
        step = max(0.02, (top - low) / 200)
        bins = [low + i * step for i in range(int((top - low) / step) + 2)]
        ax.hist(delays, bins=bins, color="#4c72b0", alpha=0.8, label="groups")
        ax2 = ax.twinx()
        ordered = sorted(delays)
        ys = [(i + 1) / len(ordered) for i in range(len(ordered))]
        ax2.plot(ordered, ys, color="#dd8452", label="CDF")
        ax2.set_ylim(0, 1.02)
        ax2.set_ylabel("cumulative fraction")
    ax.axvline(window, color="green", linestyle="--", label=f"window ({window:g} s)")
    ax.axvline(window + 1, color="red", linestyle="--", label=f"window + 1 s ({window + 1:g} s)")
    ax.set_title(
        f"Reply delay, last message to reply commit ({len(delays)} groups closed by the window): "
        f"p50 {_fmt(result['reply_delay_p50_s'])} s, p99 {_fmt(result['reply_delay_p99_s'])} s, "
        f"max {_fmt(result['reply_delay_max_s'])} s"
    )
    ax.set_xlabel("seconds")
    ax.set_ylabel("groups")
    ax.legend(loc="upper left")

    ax = axes[1]
    colours = ["#4c72b0", "#dd8452", "#55a868", "#c44e52"]
    for (name, segments), colour in zip(throughput.items(), colours, strict=False):
        label: str | None = name
        for points in segments:
            if points:
                xs, ys = [p[0] for p in points], [p[1] for p in points]
                ax.plot(xs, ys, label=label, linewidth=1, color=colour)
                label = None
    for i, (name, start, end) in enumerate(phases):
        ax.axvspan(start, end, alpha=0.06 if i % 2 else 0.12, color="grey", linewidth=0)
        ax.text(
            start,
            0.01,
            name,
            rotation=90,
            va="bottom",
            fontsize=7,
            transform=ax.get_xaxis_transform(),
        )
    ax.set_title("Throughput (completed requests per second)")
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("req/s")
    ax.legend(loc="upper right")

    ax = axes[2]
    if rss:
        ts = [p["t"] for p in rss]
        for key in ("web", "worker", "scheduler"):
            if key in rss[0]:
                ax.plot(ts, [p[key] for p in rss], label=key)
    ax.set_title("RSS (sum over the process tree)")
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("MB")
    ax.legend(loc="upper left")

    fig.savefig(path, dpi=100)
    plt.close(fig)
