"""Figures of the evaluation: label-efficiency curves with CI bands, singular spectrum.

``*_figure`` functions return a matplotlib ``Figure`` (no pyplot state, Agg canvas) for the report to
inline; ``plot_*`` save it as a PNG atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from biolatent.errors import DataError
from biolatent.evaluate.quality import effective_rank, singular_spectrum
from biolatent.figures import new_figure, save_figure

METRIC_LABELS = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy",
    "auroc": "AUROC (macro OvR)",
    "f1": "F1 (macro)",
    "pearson_r": "Pearson r",
    "r2": "R² (coefficient of determination)",
    "mean_gene_pearson_r": "mean Pearson r over genes",
}
CLASSIFICATION_PLOT_METRICS = ("balanced_accuracy", "auroc")
REGRESSION_PLOT_METRICS = ("pearson_r", "r2")
R2_FLOOR = -1.0  # r2 panels stop here: a tiny labelled set can score far below 0 and flatten the curves


def _percent(value: float, _pos: object = None) -> str:
    return f"{value * 100:g}%"


def default_plot_metrics(summary: pd.DataFrame) -> tuple[str, ...]:
    """``balanced_accuracy, auroc`` for a classification summary, ``pearson_r, r2`` for a regression one,
    ``mean_gene_pearson_r`` for expression prediction."""
    present = set(summary["metric"])
    if present & set(CLASSIFICATION_PLOT_METRICS):
        return CLASSIFICATION_PLOT_METRICS
    if present == {"mean_gene_pearson_r"}:
        return ("mean_gene_pearson_r",)
    return REGRESSION_PLOT_METRICS


def label_efficiency_figure(summary: pd.DataFrame, metrics: Sequence[str] | None = None) -> Figure:
    """One panel per metric: mean vs label fraction (log x), one line + CI band per representation/probe.

    ``metrics`` defaults to :func:`default_plot_metrics`; each panel's y axis names its metric. An ``r2``
    panel is cut at ``R2_FLOOR`` when some value lies below it (the table keeps the values).
    """
    if summary.empty:
        raise DataError("efficiency summary is empty: nothing to plot")
    if metrics is None:
        metrics = default_plot_metrics(summary)
    metrics = [m for m in metrics if (summary["metric"] == m).any()]
    if not metrics:
        raise DataError("efficiency summary has none of the metrics to plot")
    fractions = np.unique(summary["fraction"].to_numpy(dtype=float))
    figure = new_figure(4.6 * len(metrics) + 1.6, 3.8)
    axes = figure.subplots(1, len(metrics), squeeze=False)[0]
    groups = list(dict.fromkeys(zip(summary["representation"], summary["probe"], strict=True)))
    colours = {group: f"C{i % 10}" for i, group in enumerate(groups)}
    for ax, metric in zip(axes, metrics, strict=True):
        for rep, probe in groups:
            rows = summary[(summary["representation"] == rep) & (summary["probe"] == probe)
                           & (summary["metric"] == metric)].sort_values("fraction")
            if rows.empty:
                continue
            x = rows["fraction"].to_numpy(dtype=float)
            dashed = rep == "supervised"
            ax.plot(x, rows["mean"], marker="o", ms=4, color=colours[(rep, probe)],
                    linestyle="--" if dashed else "-", label=f"{rep} ({probe})")
            ax.fill_between(x, rows["ci_low"].to_numpy(dtype=float), rows["ci_high"].to_numpy(dtype=float),
                            color=colours[(rep, probe)], alpha=0.15, linewidth=0)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator(fractions))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(FuncFormatter(_percent))
        ax.set_xlabel("labelled fraction of the train pool")
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        if metric == "r2":
            _floor_r2(ax, summary[summary["metric"] == metric])
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside right center", fontsize="small", frameon=False)
    return figure


def _floor_r2(ax: object, rows: pd.DataFrame) -> None:
    values = rows[["mean", "ci_low", "ci_high"]].to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    if values.size and values.min() < R2_FLOOR:
        top = max(1.0, float(values.max()))
        ax.set_ylim(R2_FLOOR, top + 0.05 * (top - R2_FLOOR))  # type: ignore[attr-defined]


def plot_label_efficiency(summary: pd.DataFrame, path: str | Path, metrics: Sequence[str] | None = None) -> Path:
    """Save :func:`label_efficiency_figure` as a PNG (atomic)."""
    return save_figure(label_efficiency_figure(summary, metrics), path)


def spectrum_figure(embeddings: np.ndarray) -> Figure:
    """Normalised singular values (log y) with the effective rank in the title."""
    spectrum = singular_spectrum(embeddings)
    rank = effective_rank(embeddings)
    figure = new_figure(5.0, 3.6)
    ax = figure.subplots()
    ax.plot(np.arange(1, spectrum.size + 1), spectrum / spectrum[0], marker=".", color="C0")
    ax.set_yscale("log")
    ax.set_xlabel("component")
    ax.set_ylabel("singular value / largest")
    ax.set_title(f"effective rank {rank:.1f} of {spectrum.size} dimensions")
    ax.grid(alpha=0.3)
    return figure


def plot_spectrum(embeddings: np.ndarray, path: str | Path) -> Path:
    """Save :func:`spectrum_figure` as a PNG (atomic)."""
    return save_figure(spectrum_figure(embeddings), path)


def expression_maps_figure(
    x_px: np.ndarray, y_px: np.ndarray, measured: np.ndarray, predicted: np.ndarray, genes: Sequence[str],
    test_idx: np.ndarray, title: str,
) -> Figure:
    """Measured vs predicted expression on the tissue, one row per gene: every spot's measured value (left;
    the held-out region outlined by its spots in black) and the predicted value of the held-out spots
    (right; training spots in grey). Both panels of a gene share one colour scale."""
    if measured.shape[1] != len(genes) or predicted.shape != (len(test_idx), len(genes)):
        raise DataError(f"maps: {measured.shape[1]} measured genes, predictions {predicted.shape}, {len(genes)} names")
    figure = new_figure(8.0, 3.2 * len(genes))
    axes = figure.subplots(len(genes), 2, squeeze=False)
    others = np.setdiff1d(np.arange(measured.shape[0]), test_idx)
    size = max(2.0, 4000.0 / max(measured.shape[0], 1))
    for row, gene in enumerate(genes):
        low, high = np.percentile(measured[:, row], [1, 99])
        high = high if high > low else low + 1e-6
        left, right = axes[row]
        left.scatter(x_px[test_idx], y_px[test_idx], s=size * 2.2, c="black", linewidths=0)
        image = left.scatter(x_px, y_px, c=measured[:, row], s=size, cmap="viridis", vmin=low, vmax=high,
                             linewidths=0)
        right.scatter(x_px[others], y_px[others], s=size, c="0.85", linewidths=0)
        right.scatter(x_px[test_idx], y_px[test_idx], c=predicted[:, row], s=size, cmap="viridis", vmin=low,
                      vmax=high, linewidths=0)
        left.set_title(f"{gene}: measured")
        right.set_title(f"{gene}: predicted ({title})")
        for ax in (left, right):
            ax.set_aspect("equal")
            ax.invert_yaxis()
            ax.set_xticks([])
            ax.set_yticks([])
        figure.colorbar(image, ax=[left, right], shrink=0.8, label="log-normalised expression")
    return figure


def _robustness_metrics(rows: pd.DataFrame) -> list[str]:
    present = set(rows["metric"])
    wanted = CLASSIFICATION_PLOT_METRICS if present & set(CLASSIFICATION_PLOT_METRICS) else REGRESSION_PLOT_METRICS
    return [m for m in wanted if m in present]


def _groups(rows: pd.DataFrame) -> list[tuple[str, str]]:
    return list(dict.fromkeys(zip(rows["representation"], rows["probe"], strict=True)))


def _bar_panels(rows: pd.DataFrame, title: str, chance: dict[str, float] | None = None) -> Figure:
    """One panel per metric: grouped bars (one per representation/probe) for every ``setting``, 95% CI whiskers."""
    metrics = _robustness_metrics(rows)
    if rows.empty or not metrics:
        raise DataError(f"no {title} results to plot")
    settings = list(dict.fromkeys(rows["setting"].astype(str)))
    groups = _groups(rows)
    width = 0.8 / len(groups)
    figure = new_figure(max(4.6, 0.5 * len(settings) * len(groups) + 1.5) * len(metrics) + 1.6, 3.8)
    axes = figure.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics, strict=True):
        for i, (rep, probe) in enumerate(groups):
            sub = rows[(rows["representation"] == rep) & (rows["probe"] == probe) & (rows["metric"] == metric)]
            by_setting = {str(r.setting): r for r in sub.itertuples()}
            x, means, low, high = [], [], [], []
            for j, setting in enumerate(settings):
                if setting in by_setting:
                    r = by_setting[setting]
                    x.append(j + (i - (len(groups) - 1) / 2) * width)
                    means.append(float(r.mean))
                    low.append(float(r.mean) - float(r.ci_low) if np.isfinite(r.ci_low) else 0.0)
                    high.append(float(r.ci_high) - float(r.mean) if np.isfinite(r.ci_high) else 0.0)
            ax.bar(x, means, width, yerr=[low, high], capsize=2, color=f"C{i % 10}", label=f"{rep} ({probe})",
                   hatch="//" if rep == "supervised" else None, edgecolor="white", linewidth=0.5)
        if chance and metric in chance:
            ax.axhline(chance[metric], color="0.4", linestyle=":", linewidth=1, label="chance")
        ax.set_xticks(range(len(settings)), settings, rotation=30 if len(settings) > 4 else 0)
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        ax.set_title(title)
        if metric == "r2":
            _floor_r2(ax, rows[rows["metric"] == metric])
        ax.grid(alpha=0.3, axis="y")
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside right center", fontsize="small", frameon=False)
    return figure


def cross_site_figure(table: pd.DataFrame) -> Figure:
    """Cross-site transfer (rows of ``robustness.tsv`` with check ``cross_site``): one group of bars per held-out
    site, one bar per representation/probe, 95% CI whiskers; one panel per metric."""
    return _bar_panels(table[table["check"] == "cross_site"], "held-out site")


def site_leakage_figure(table: pd.DataFrame, n_sites: int | None = None) -> Figure:
    """Site leakage (check ``site_leakage``): how well each representation predicts the site; dotted line: chance
    (``1 / n_sites`` balanced accuracy, 0.5 AUROC)."""
    chance = {"auroc": 0.5} | ({"balanced_accuracy": 1.0 / n_sites} if n_sites else {})
    return _bar_panels(table[table["check"] == "site_leakage"], "site predicted from the representation", chance)


def ablation_figure(table: pd.DataFrame) -> Figure:
    """Augmentation ablation (check ``augmentation_ablation``): one group of bars per variant (``all_views``,
    ``no_<family>``), one bar per probe of the SSL embeddings."""
    return _bar_panels(table[table["check"] == "augmentation_ablation"], "pre-training variant")


def label_noise_figure(table: pd.DataFrame) -> Figure:
    """Label-noise degradation (check ``label_noise``): metric vs fraction of training labels flipped, one line and
    95% CI band per representation/probe (supervised dashed); one panel per metric."""
    rows = table[(table["check"] == "label_noise")]
    metrics = _robustness_metrics(rows)
    if rows.empty or not metrics:
        raise DataError("no label-noise results to plot")
    figure = new_figure(4.6 * len(metrics) + 1.6, 3.8)
    axes = figure.subplots(1, len(metrics), squeeze=False)[0]
    groups = _groups(rows)
    for ax, metric in zip(axes, metrics, strict=True):
        for i, (rep, probe) in enumerate(groups):
            sub = rows[(rows["representation"] == rep) & (rows["probe"] == probe) & (rows["metric"] == metric)]
            sub = sub.assign(level=sub["setting"].astype(float)).sort_values("level")
            if sub.empty:
                continue
            x = sub["level"].to_numpy(dtype=float)
            ax.plot(x, sub["mean"], marker="o", ms=4, color=f"C{i % 10}", linestyle="--" if rep == "supervised"
                    else "-", label=f"{rep} ({probe})")
            ax.fill_between(x, sub["ci_low"].to_numpy(dtype=float), sub["ci_high"].to_numpy(dtype=float),
                            color=f"C{i % 10}", alpha=0.15, linewidth=0)
        ax.xaxis.set_major_locator(FixedLocator(np.unique(rows["setting"].astype(float))))
        ax.xaxis.set_major_formatter(FuncFormatter(_percent))
        ax.set_xlabel("training labels flipped")
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside right center", fontsize="small", frameon=False)
    return figure


def integration_figure(summary: pd.DataFrame, batch: str, label: str) -> Figure:
    """Left: batch correction vs bio conservation per representation (mean, bars over the pre-training seeds);
    right: the six metrics per representation. ``summary``: integration.tsv (representation, metric, mean, low,
    high)."""
    from biolatent.evaluate.integration import BATCH_METRICS, BIO_METRICS

    figure = new_figure(10.0, 4.0)
    left, right = figure.subplots(1, 2, width_ratios=[1, 1.6])
    names = list(dict.fromkeys(summary["representation"]))
    table = summary.set_index(["representation", "metric"])
    for index, name in enumerate(names):
        x, y = table.loc[(name, "batch_correction")], table.loc[(name, "bio_conservation")]
        left.errorbar(x["mean"], y["mean"], xerr=[[x["mean"] - x["low"]], [x["high"] - x["mean"]]],
                      yerr=[[y["mean"] - y["low"]], [y["high"] - y["mean"]]], fmt="o", color=f"C{index}", label=name)
    left.set_xlabel(f"batch correction (mixing of {batch!r})")
    left.set_ylabel(f"bio conservation ({label!r})")
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    metrics = [*BATCH_METRICS, *BIO_METRICS]
    width = 0.8 / max(1, len(names))
    for index, name in enumerate(names):
        values = [float(table.loc[(name, metric), "mean"]) for metric in metrics]
        right.bar(np.arange(len(metrics)) + (index - (len(names) - 1) / 2) * width, values, width, color=f"C{index}",
                  label=name)
    right.set_xticks(np.arange(len(metrics)), metrics, rotation=30)
    right.set_ylim(0, 1)
    right.set_ylabel("score (higher is better)")
    right.grid(alpha=0.3, axis="y")
    return figure


def plot_integration(summary: pd.DataFrame, path: str | Path, batch: str, label: str) -> Path:
    """Save :func:`integration_figure` as a PNG (atomic)."""
    return save_figure(integration_figure(summary, batch, label), path)
