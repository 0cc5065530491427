#!/usr/bin/env python3
"""The chart and the Markdown table of a bench/run.py result file.

python3 bench/chart.py [bench/latest.json [out.png]]    # redraw without re-running
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

COLORS = {"a": "#1f77b4", "b": "#ff7f0e", "c": "#7f7f7f"}


def _fmt(value: float | None, unit: str = " s") -> str:
    return "n/a" if value is None else f"{value:.2f}{unit}"


def _pair(stat: dict[str, Any]) -> str:
    if not stat["measured"]:
        return "n/a"
    return f"{stat['median_s']:.2f} / {stat['max_s']:.2f} s ({stat['measured']})"


def cpu_cell(throughput: dict[str, Any]) -> str:
    cost = throughput.get("cpu_us_per_request")
    if cost is None:
        return "n/a"
    return f"{cost:.0f} µs ({throughput['cpu_efficiency_to_static']:.2f})"


def table(results: dict[str, Any]) -> str:
    """The README table: one row per figure, one column per variant."""
    v = results["variants"]
    keys = ["a", "b", "c"]
    rows: list[tuple[str, list[str]]] = []

    def start(k: str) -> str:
        s = v[k]["start_to_first"]
        if not s["measured"]:
            return f"never within {s['timeout_s']:.0f} s ({s['trials']} trials)"
        missed = s["trials"] - s["measured"]
        return f"{s['median_s']:.2f} / {s['max_s']:.2f} s" + (f", {missed} never served" if missed else "")

    def errors(load: dict[str, Any]) -> str:
        return f"{load['errors']} of {load['requests']}"

    def burst(k: str, field: str, unit: str = "") -> str:
        b = v[k].get("burst")
        if not b or b.get(field) is None:
            return "n/a"
        return f"{b[field]:.2f} s" if unit else str(b[field])

    rows.append(
        (
            f"start → first request served, median / max ({v['a']['start_to_first']['trials']} trials)",
            [start(k) for k in keys],
        )
    )
    rows.append(
        (
            "kill → last request received, backend that stops accepting on SIGTERM, median / max (n)",
            [_pair(v[k]["kill_to_last_sigterm"]) for k in keys],
        )
    )
    rows.append(
        (
            "kill → last request received, backend that serves through a 2 s grace period, median / max (n)",
            [_pair(v[k]["kill_to_last_grace"]) for k in keys],
        )
    )
    reps = v["a"]["scale_down"]["reps"]
    rows.append(
        (
            f"scale-down 4 → 1 under load ({reps}×): errors (non-2xx + connection) of requests",
            [errors(v[k]["scale_down"]) for k in keys],
        )
    )
    rows.append(
        (
            "… requests over 1 s / slowest request",
            [f"{v[k]['scale_down']['over_1s']} / {v[k]['scale_down']['slowest_s']:.2f} s" for k in keys],
        )
    )
    rows.append(
        (
            "… stale keep-alive retries (retried once, not errors)",
            [str(v[k]["scale_down"]["stale_keepalive_retries"]) for k in keys],
        )
    )
    rows.append(
        (
            "errors during the 2 → 1 stops with a 2 s grace period (of requests) / slowest",
            [f"{errors(v[k]['grace_trials_load'])} / {v[k]['grace_trials_load']['slowest_s']:.2f} s" for k in keys],
        )
    )
    rows.append(
        (
            "errors during the 1 → 2 → 1 trials (of requests) / slowest",
            [f"{errors(v[k]['web_trials_load'])} / {v[k]['web_trials_load']['slowest_s']:.2f} s" for k in keys],
        )
    )
    rows.append(
        (
            "reloads for scale 1 → 20 (one command) / for 20 → 1",
            [f"{burst(k, 'reloads_1_to_20')} / {burst(k, 'reloads_20_to_1')}" if k == "a" else "n/a" for k in keys],
        )
    )

    def split(k: str) -> str:
        trials = v[k]["raw"]["web_trials"]
        wrote = [t["start_to_wrote_s"] for t in trials if t.get("start_to_wrote_s") is not None]
        reloaded = [t["start_to_reloaded_s"] for t in trials if t.get("start_to_reloaded_s") is not None]
        if not wrote or not reloaded:
            return "n/a"
        return f"{statistics.median(wrote):.2f} / {statistics.median(reloaded):.2f} s"

    def disabled(k: str) -> str:
        trials = v[k]["raw"]["web_trials"]
        if k != "a":
            return "n/a"
        hit = [t for t in trials if t.get("start_to_server_disabled_s") is not None]
        late = [t["start_to_first_s"] for t in hit if t["start_to_first_s"] is not None]
        return f"{len(hit)} of {len(trials)}" + (
            f" (first request after {', '.join(f'{x:.2f}' for x in late)} s)" if late else ""
        )

    rows.insert(
        1,
        (
            "… of which start → upstream file written / → reload done (median, from the proxy's log)",
            [split(k) for k in keys],
        ),
    )
    rows.insert(
        2,
        (
            "… trials where nginx disabled the new server after a refused connect (its port was not open yet)",
            [disabled(k) for k in keys],
        ),
    )

    def burst_load(k: str) -> str:
        b = v[k].get("burst")
        if not b:
            return "n/a"
        up, down = b["load_1_to_20"], b["load_20_to_1"]
        return (
            f"{up['non_2xx'] + up['connection_errors']} of {up['requests']}, {up['slowest_s']:.2f} s / "
            f"{down['non_2xx'] + down['connection_errors']} of {down['requests']}, {down['slowest_s']:.2f} s"
        )

    rows.append(
        (
            "errors (of requests), slowest request: during scale 1 → 20 / during 20 → 1",
            [burst_load(k) for k in keys],
        )
    )
    rows.append(
        (
            "all 20 served, after the last replica's start",
            [burst(k, "all_served_after_last_start_s", "s") if k != "c" else "never" for k in keys],
        )
    )
    wrk = f"wrk -t2 -c32 -d{results['plan']['wrk_seconds']}s ×{results['plan']['wrk_reps']}"
    for kind, what in (
        ("demo", "the demo backend (Python)"),
        ("fast", "a fast backend (nginx `return 200`)"),
    ):
        rows.append(
            (
                f"throughput, {wrk}, 2 replicas of {what}: median req/s (ratio to c)",
                [
                    f"{v[k]['throughput'][kind]['median_rps']:.0f} ({v[k]['throughput'][kind]['ratio_to_static']:.2f}"
                    + (
                        f"; rounds {min(v[k]['throughput'][kind]['round_ratios']):.2f}–"
                        f"{max(v[k]['throughput'][kind]['round_ratios']):.2f})"
                        if k != "c" and v[k]["throughput"][kind].get("round_ratios")
                        else ")"
                    )
                    + (f", {v[k]['throughput'][kind]['errors']} errors" if v[k]["throughput"][kind]["errors"] else "")
                    for k in keys
                ],
            )
        )
        rows.append(
            (
                f"… proxy container's CPU per request, {what}: median µs (c's divided by it)",
                [cpu_cell(v[k]["throughput"][kind]) for k in keys],
            )
        )
    head = "| | " + " | ".join(f"({k}) {v[k]['label']}" for k in keys) + " |"
    lines = [head, "|---|" + "---|" * len(keys)]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows]
    return "\n".join(lines)


def draw(results: dict[str, Any], path: Path) -> None:
    """Six panels of the key numbers, the three variants side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    v = results["variants"]
    keys = ["a", "b", "c"]
    m = results["machine"]
    fig, axes = plt.subplots(2, 3, figsize=(17, 10.5))
    fig.suptitle(
        f"dynamic-nginx (a) vs plain nginx with the DNS workaround (b) and with a static proxy_pass (c)\n"
        f"{results['date'][:10]}, {m['cores']} cores (noisy), Docker {m['docker']}, {m['compose']}",
        fontsize=13,
    )

    def bars(
        ax: Any,
        values: list[float | None],
        labels: list[str],
        offset: float = 0.0,
        width: float = 0.7,
        hatch: str = "",
    ) -> None:
        for i, (k, value) in enumerate(zip(keys, values, strict=True)):
            if value is None:
                continue
            ax.bar(
                i + offset,
                value,
                width,
                color=COLORS[k],
                hatch=hatch,
                alpha=0.55 if hatch else 1.0,
                edgecolor="black",
                linewidth=0.5,
            )
            ax.text(i + offset, max(value, 0), labels[i], ha="center", va="bottom", fontsize=9)

    def kinds(ax: Any, solid: str, hatched: str, hatch: str, loc: str = "upper left") -> None:
        ax.legend(
            handles=[
                Patch(facecolor="white", edgecolor="black", label=solid),
                Patch(facecolor="white", edgecolor="black", hatch=hatch, label=hatched),
            ]
            + [h for h in ax.get_legend_handles_labels()[0]],
            fontsize=8,
            loc=loc,
        )

    ax = axes[0][0]
    s = [v[k]["start_to_first"] for k in keys]
    timeout = s[0]["timeout_s"]
    measured = [x["max_s"] for x in s if x["measured"]]
    top = max([1.0, *measured]) * 1.8  # room for the legend above the bars
    for i, x in enumerate(s):
        if not x["measured"]:
            ax.bar(i, top * 0.55, 0.7, color="white", edgecolor=COLORS[keys[i]], hatch="xx", linewidth=1)
            ax.text(
                i,
                top * 0.3,
                f"never served\nwithin {timeout:.0f} s\n({x['trials']} trials)",
                ha="center",
                va="center",
                fontsize=9,
                backgroundcolor="white",
            )
    bars(ax, [x["median_s"] for x in s], [_fmt(x["median_s"], "") for x in s], -0.18, 0.36)
    bars(ax, [x["max_s"] for x in s], [_fmt(x["max_s"], "") for x in s], 0.18, 0.36, hatch="//")
    ax.axhline(0.3, color="green", linestyle="--", linewidth=1, label="target median ≤ 0.3 s")
    ax.axhline(0.6, color="red", linestyle=":", linewidth=1, label="target max ≤ 0.6 s")
    ax.set_ylim(0, top)
    ax.set_title(f"new replica: start → first request served\n({s[0]['trials']} trials of scale 1 → 2)")
    ax.set_ylabel("seconds")
    kinds(ax, "median", "max", "//")

    ax = axes[0][1]
    term = [v[k]["kill_to_last_sigterm"] for k in keys]
    grace = [v[k]["kill_to_last_grace"] for k in keys]
    bars(ax, [x["median_s"] for x in term], [_fmt(x["median_s"], "") for x in term], -0.18, 0.36)
    bars(ax, [x["median_s"] for x in grace], [_fmt(x["median_s"], "") for x in grace], 0.18, 0.36, hatch="..")
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_ylim(min(-0.1, ax.get_ylim()[0]), max(2.5, ax.get_ylim()[1] * 1.1))
    ax.set_title("stopped replica: kill → last request it answered\n(median)")
    ax.set_ylabel("seconds")
    kinds(ax, "backend stops accepting on SIGTERM", "backend serves through a 2 s grace", "..")

    ax = axes[0][2]
    sd = [v[k]["scale_down"] for k in keys]
    bars(ax, [x["errors"] for x in sd], [str(x["errors"]) for x in sd], -0.18, 0.36)
    bars(
        ax,
        [x["stale_keepalive_retries"] for x in sd],
        [str(x["stale_keepalive_retries"]) for x in sd],
        0.18,
        0.36,
        hatch="xx",
    )
    ax.set_ylim(0, max(5, *(x["errors"] for x in sd), *(x["stale_keepalive_retries"] for x in sd)) * 1.3)
    ax.set_title(f"scale-down 4 → 1 under load\n({sd[0]['reps']} runs, 4 keep-alive clients)")
    ax.set_ylabel("requests")
    kinds(ax, "errors (non-2xx + connection)", "stale keep-alive retries (not errors)", "xx")

    ax = axes[1][0]
    bars(ax, [x["slowest_s"] for x in sd], [f"{x['slowest_s']:.2f}" for x in sd])
    ax.axhline(1.0, color="red", linestyle=":", linewidth=1, label="target: none over 1 s")
    ax.set_ylim(0, max(1.3, *(x["slowest_s"] for x in sd)) * 1.2)
    ax.set_title("scale-down 4 → 1 under load\nslowest request")
    ax.set_ylabel("seconds")
    ax.legend(fontsize=8, loc="upper left")

    ax = axes[1][1]
    burst = v["a"].get("burst") or {}
    up, down = burst.get("reloads_1_to_20"), burst.get("reloads_20_to_1")
    ax.bar([0, 1], [up or 0, down or 0], 0.5, color=COLORS["a"], edgecolor="black", linewidth=0.5)
    for x, value in ((0, up), (1, down)):
        ax.text(x, value or 0, str(value), ha="center", va="bottom", fontsize=9)
    ax.axhline(3, color="red", linestyle=":", linewidth=1, label="target ≤ 3 for 1 → 20")
    ax.set_xticks([0, 1], ["(a) scale 1 → 20", "(a) scale 20 → 1"])
    ax.set_ylim(0, max(5, up or 0, down or 0) * 1.3)
    ax.set_title("nginx reloads per burst (one compose command)\n(b) and (c) never reload")
    ax.set_ylabel("reloads")
    ax.legend(fontsize=8, loc="upper right")

    ax = axes[1][2]
    demo = [v[k]["throughput"]["demo"] for k in keys]
    fast = [v[k]["throughput"]["fast"] for k in keys]
    bars(ax, [t["ratio_to_static"] for t in demo], [f"{t['ratio_to_static']:.2f}" for t in demo], -0.18, 0.36)
    bars(
        ax,
        [t["ratio_to_static"] for t in fast],
        [f"{t['ratio_to_static']:.2f}" for t in fast],
        0.18,
        0.36,
        hatch="//",
    )
    for i, (d, f) in enumerate(zip(demo, fast, strict=True)):
        for offset, t in ((-0.18, d), (0.18, f)):
            ax.text(
                i + offset,
                0.05,
                f"{t['median_rps']:.0f} req/s",
                rotation=90,
                ha="center",
                va="bottom",
                fontsize=8,
            )
    rounds = [r for t in demo[:2] + fast[:2] for r in t.get("round_ratios", [])]
    spread = f"{min(rounds):.2f}–{max(rounds):.2f}" if rounds else "n/a"
    ax.axhline(0.97, color="red", linestyle=":", linewidth=1, label="target ≥ 0.97")
    ax.set_ylim(0, max(1.5, max(t["ratio_to_static"] for t in demo + fast) * 1.35))
    ax.set_title(
        f"throughput (wrk -t2 -c32), 2 replicas, ratio to (c)\n"
        f"median of {results['plan']['wrk_reps']} rounds (per-round ratios of (a), (b): {spread})"
    )
    kinds(ax, "demo backend (Python)", "fast backend (nginx)", "//", loc="upper right")

    for row in axes:
        for ax in row:
            if ax is not axes[1][1]:
                ax.set_xticks(range(len(keys)), [f"({k})" for k in keys])
            ax.grid(axis="y", alpha=0.3)
            ax.title.set_fontsize(11)
    fig.legend(
        handles=[Patch(color=COLORS[k], label=f"({k}) {v[k]['label']}") for k in keys],
        loc="lower center",
        ncol=3,
        fontsize=11,
        frameon=False,
    )
    fig.tight_layout(rect=(0, 0.04, 1, 0.95))
    fig.savefig(path, dpi=85)
    plt.close(fig)


def main() -> int:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("latest.json")
    target = Path(sys.argv[2]) if len(sys.argv) > 2 else source.with_suffix(".png")
    results = json.loads(source.read_text())
    draw(results, target)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
