"""A picture where one beats numbers: core diversity metrics over generations, as a PNG
embedded in markdown metadata (Dagster has no image metadata type; a data URI renders)."""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:  # matplotlib is imported when a chart is drawn, never at import time
    from matplotlib.figure import Figure

CORE = ("distinct_2", "rare_type_coverage", "compression_ratio", "js_distance_to_human")


def diversity_chart_png(history: pl.DataFrame, corpus: str = "generated") -> bytes | None:
    """Each core metric relative to the first generation, one line per metric."""
    rows = history.filter((pl.col("corpus") == corpus) & pl.col("metric").is_in(CORE) & pl.col("current").is_not_null())
    if rows["generation"].n_unique() < 1 if rows.height else True:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.2), dpi=100)
    for metric in CORE:
        m = rows.filter(pl.col("metric") == metric).sort("generation")
        if m.height == 0:
            continue
        base = m["current"][0] or 1.0
        ax.plot(
            m["generation"].to_list(), [100 * (v / base - 1) for v in m["current"].to_list()], marker="o", label=metric
        )
    alerts = history.filter(
        (pl.col("corpus") == corpus) & (pl.col("metric") == "DIVERSITY_LOSS") & (pl.col("status") == "alert")
    )["generation"].to_list()
    for g in alerts:
        ax.axvline(g, color="red", alpha=0.25, linewidth=6)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xlabel("generation")
    ax.set_ylabel("% change vs first generation")
    ax.set_title(f"diversity of the {corpus} corpus" + (" (red: DIVERSITY_LOSS)" if alerts else ""))
    ax.legend(fontsize=7, loc="best")
    return figure_png(fig)


def figure_png(fig: Figure) -> bytes:
    """The figure as PNG bytes, laid out; the figure is closed (charts are drawn per run)."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def chart_markdown(
    png: bytes | None, alt: str = "diversity over generations", empty: str = "_no generations to chart yet_"
) -> str:
    if not png:
        return empty
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def calibration_chart_png(per_family: pl.DataFrame, min_accuracy: float) -> bytes | None:
    """The judge's agreement with the verifiers per family, with 95% Wilson intervals and the
    trust threshold: where the bars fall under the line, the judge does not decide alone."""
    if per_family.height == 0:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from synth_assets.core.stats import wilson

    fams = per_family["family"].to_list()
    acc = per_family["accuracy"].to_list()
    n = per_family["rows"].to_list()
    lo_hi = [wilson(round(a * k), k) for a, k in zip(acc, n)]
    fig, ax = plt.subplots(figsize=(6.4, 3.2), dpi=100)
    ax.bar(
        range(len(fams)),
        acc,
        yerr=[[a - lo for a, (lo, _hi) in zip(acc, lo_hi)], [hi - a for a, (_lo, hi) in zip(acc, lo_hi)]],
        capsize=3,
        color="steelblue",
    )
    ax.axhline(min_accuracy, color="red", linewidth=1, label=f"min_accuracy {min_accuracy}")
    ax.axhline(0.5, color="grey", linewidth=0.8, linestyle=":", label="a coin")
    ax.set_xticks(range(len(fams)), [f"{f}\n(n={k})" for f, k in zip(fams, n)], fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("agreement with the verifier")
    ax.set_title("AI judge vs programmatic verdicts, per family")
    ax.legend(fontsize=7, loc="lower right")
    return figure_png(fig)


def loss_chart_png(curve: list[dict]) -> bytes | None:
    """Train and validation loss per epoch (a model card's small chart), or None without points."""
    series = {
        key: [(c["epoch"], c[key]) for c in curve if c.get(key) is not None and c.get("epoch") is not None]
        for key in ("train_loss", "validation_loss")
    }
    if not any(series.values()):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3), dpi=100)
    for key, pts in series.items():
        if pts:
            ax.plot(*zip(*pts), marker="o", label=key.replace("_", " "))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (target tokens)")
    ax.legend()
    return figure_png(fig)


def frontier_chart_png(history: pl.DataFrame) -> bytes | None:
    """Each model's greedy pass rate by level, one panel per family: the capability frontier
    moving from model to model (a later model's line above and to the right of its parent's)."""
    rows = history.filter(pl.col("greedy_rate").is_not_null() & (pl.col("level") > 0))
    if rows.height == 0:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = sorted(rows["base_family"].unique().to_list())
    fig, axes = plt.subplots(1, len(families), figsize=(3.2 * len(families) + 0.4, 3.0), dpi=100, squeeze=False)
    for ax, family in zip(axes[0], families):
        part = rows.filter(pl.col("base_family") == family)
        for (model,), m in part.group_by("model_id", maintain_order=True):
            m = m.sort("level")
            ax.plot(m["level"].to_list(), m["greedy_rate"].to_list(), marker="o", label=str(model)[:16])
        ax.set_title(family, fontsize=9)
        ax.set_xlabel("level")
        ax.set_ylim(0, 1.05)
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[0][0].set_ylabel("greedy pass rate")
    axes[0][-1].legend(fontsize=7, loc="best")
    return figure_png(fig)
