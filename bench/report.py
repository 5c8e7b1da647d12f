"""Turn the runs into figures: medians with min-max, targets, fractions of the ceilings;
a markdown table, and PNG plots (matplotlib, imported only when plotting)."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Figure:
    name: str
    unit: str
    median: float
    low: float
    high: float
    n: int
    target: str = ""
    met: bool | None = None
    ceiling: str = ""

    def row(self) -> str:
        spread = "" if self.n < 2 else f" ({_fmt(self.low)}-{_fmt(self.high)})"
        met = {None: "", True: "met", False: "**missed**"}[self.met]
        return (
            f"| {self.name} | {_fmt(self.median)}{spread} {self.unit} | {self.n} | "
            f"{self.target} | {met} | {self.ceiling} |"
        )


def _fmt(v: float) -> str:
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def figure(
    name: str,
    unit: str,
    runs: Sequence[Any],
    get: Callable[[Any], float],
    *,
    target: float | None = None,
    at_most: bool = False,
    ceilings: Sequence[tuple[str, float]] = (),
) -> Figure:
    values = [float(get(r)) for r in runs]
    med = statistics.median(values)
    met = None
    text = ""
    if target is not None:
        met = med <= target if at_most else med >= target
        text = f"{'≤' if at_most else '≥'} {_fmt(target)}"
    ceiling = ", ".join(
        f"{100 * med / c:.0f}% of {label} ({_fmt(c)})" for label, c in ceilings if c
    )
    return Figure(name, unit, med, min(values), max(values), len(values), text, met, ceiling)


def markdown(figures: Sequence[Figure]) -> str:
    head = (
        "| figure | median (min-max) | runs | target | | fraction of ceiling |\n"
        "| --- | --- | --- | --- | --- | --- |"
    )
    return "\n".join([head, *(f.row() for f in figures)]) + "\n"


def _engine_title(engine: str) -> str:
    """ "postgresql-2-workers" -> "PostgreSQL, 2 workers"."""
    name, _, workers = engine.partition("-")
    title = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[name]
    return f"{title}, {workers.replace('-', ' ')}" if workers else title


def _pull_rates_by_size(ax: Any, figures: dict[str, Figure], sizes: list[Any]) -> None:
    """Grouped bars per database size: the raw pull, the SDK end to end, the SDK's writes."""
    series = [
        ("raw HTTP pull", "raw_pull", "tab:blue"),
        ("SDK pull + apply", "replica_rate", "tab:cyan"),
        ("SDK apply alone", "apply_rate", "tab:green"),
    ]
    width = 0.27
    for j, (label, key, color) in enumerate(series):
        figs = [figures[f"{key}_{s}"] for s in sizes]
        xs = [i + (j - 1) * width for i in range(len(sizes))]
        ax.bar(
            xs,
            [f.median for f in figs],
            width,
            color=color,
            label=label,
            yerr=[[f.median - f.low for f in figs], [f.high - f.median for f in figs]],
            capsize=3,
        )
    ax.set_xticks(range(len(sizes)), [f"{int(s):,} records" for s in sizes], fontsize=8)


def plots(
    results: dict[str, Any], figures: dict[str, Figure], out: Path, engine: str = "sqlite"
) -> list[Path]:
    """``perf-push.png`` and ``perf-pull.png`` (``perf-*-postgresql.png`` on PostgreSQL,
    ``perf-*-postgresql-2-workers.png`` with ``--workers 2``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    paths = []

    def bar(ax: Any, labels: list[str], keys: list[str], colors: list[str]) -> None:
        figs = [figures[k] for k in keys]
        meds = [f.median for f in figs]
        err = [[f.median - f.low for f in figs], [f.high - f.median for f in figs]]
        ax.bar(labels, meds, yerr=err, capsize=4, color=colors)
        for i, m in enumerate(meds):
            ax.text(i, m, f"{m:,.0f}", ha="center", va="bottom", fontsize=8)

    # push throughput against ceilings and target, and push latency
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    bar(
        ax1,
        ["push storm", "conflict mix", "many devices", "bare ASGI\nceiling", "raw SQLite\nceiling"],
        ["push_ops", "conflict_ops", "many_ops", "ceiling_bare", "ceiling_sqlite"],
        ["tab:blue", "tab:blue", "tab:blue", "tab:gray", "tab:gray"],
    )
    target = 25_000 if engine == "sqlite" else 10_000
    ax1.axhline(target, color="tab:red", linestyle="--", label=f"target {target:,} ops/s")
    ax1.set_yscale("log")
    ax1.set_ylabel("ops/s (median, min-max; log)")
    ax1.set_title(f"Push throughput, {_engine_title(engine)}, batches of 500")
    ax1.legend(fontsize=8)
    ax1.tick_params(axis="x", labelsize=8)
    width = 0.25
    for j, q in enumerate(("p50", "p95", "p99")):
        vals = [figures[f"{s}_{q}"].median for s in ("push", "conflict", "many")]
        ax2.bar([i + (j - 1) * width for i in range(3)], vals, width, label=q)
    ax2.set_xticks(
        range(3),
        ["push storm\n(500/req)", "conflict mix\n(500/req)", "many devices\n(20/req)"],
        fontsize=8,
    )
    ax2.set_ylabel("push request latency, ms (median of runs)")
    ax2.set_title("Push latency")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    suffix = "" if engine == "sqlite" else f"-{engine}"
    paths.append(out / f"perf-push{suffix}.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    # pull: rates against targets, and incremental cost by database size
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.8))
    by_size = [s for s in results.get("pulls_by_size", {}) if f"raw_pull_{s}" in figures]
    if by_size:
        _pull_rates_by_size(ax1, figures, by_size)
    else:
        bar(
            ax1,
            ["server pull\n(records/s)", "SDK pull + apply\n(records/s)"],
            ["pull_rate", "apply_rate"],
            ["tab:blue", "tab:green"],
        )
    ax1.axhline(100_000, color="tab:red", linestyle="--", label="pull target 100,000/s")
    ax1.axhline(50_000, color="tab:orange", linestyle="--", label="apply target 50,000/s")
    ax1.set_yscale("log")
    ax1.set_ylabel("records/s (log)")
    ax1.set_title("Initial pull of everything by a new device")
    ax1.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3)
    sizes = results["incremental"]
    labels = [f"{int(s):,}" for s in sizes]
    ms = [statistics.median(r["ms"] for r in runs) for runs in sizes.values()]
    kb = [statistics.median(r["bytes"] for r in runs) / 1024 for runs in sizes.values()]
    ax2.bar(labels, ms, color="tab:blue", label="time, ms")
    ax2.set_xlabel("records in the database")
    ax2.set_ylabel("incremental pull of 10 changes, ms")
    ax2.set_title("Incremental pull: cost follows changes, not size?")
    twin = ax2.twinx()
    twin.plot(labels, kb, "o-", color="tab:red", label="bytes on the wire, KB")
    twin.axhline(3, color="tab:red", linestyle=":", label="3 KB target")
    twin.set_ylim(0, max(4.0, max(kb) * 1.3))
    twin.set_ylabel("KB per pull (request + response)")
    twin.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    paths.append(out / f"perf-pull{suffix}.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths
