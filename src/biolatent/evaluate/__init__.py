"""Label efficiency: do self-supervised features reach supervised performance with few labels?

Splits (fixed test set, stratified label subsets), probes on frozen embeddings (linear, kNN), metrics with
95% Student-t intervals over seeds, the sweep itself (``efficiency.tsv``), representation quality
(effective rank) and plots.
"""

from biolatent.evaluate.efficiency import (
    SUMMARY_COLUMNS,
    headline,
    pca_features,
    run_label_efficiency,
    summarise,
    write_efficiency,
)
from biolatent.evaluate.metrics import METRICS, classification_metrics, mean_ci
from biolatent.evaluate.probes import PROBES, KnnProbe, LinearProbe
from biolatent.evaluate.quality import effective_rank, singular_spectrum
from biolatent.evaluate.splits import holdout_split, label_subset, prepare_labels

__all__ = [
    "METRICS",
    "PROBES",
    "SUMMARY_COLUMNS",
    "KnnProbe",
    "LinearProbe",
    "classification_metrics",
    "effective_rank",
    "headline",
    "holdout_split",
    "label_subset",
    "mean_ci",
    "pca_features",
    "prepare_labels",
    "run_label_efficiency",
    "singular_spectrum",
    "summarise",
    "write_efficiency",
]
