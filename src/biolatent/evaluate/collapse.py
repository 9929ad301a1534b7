"""Representation collapse check: are the embeddings of different samples still different?

A self-supervised run can "succeed" (finite loss, weights written) while mapping every sample to nearly the
same vector (complete collapse) or onto very few directions (dimensional collapse; Jing, Vincent, LeCun &
Tian 2022, ICLR, "Understanding dimensional collapse in contrastive self-supervised learning"). Three
label-free signals, computed on the embeddings of (a sample of) the training data:

* effective rank of the embedding matrix (Roy & Vetterli 2007, EUSIPCO, "The effective rank: a measure of
  effective dimensionality"): ``exp`` of the entropy of the normalised singular values, uncentred, so that
  identical embeddings give 1;
* the fraction of near-constant dimensions (SD below ``1e-3`` of the mean SD of all dimensions, or below
  ``1e-6``);
* the smallest and the mean cosine similarity over all pairs of distinct samples.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MAX_SAMPLES = 2000  # embeddings checked (a seeded random subset above this)
MIN_EFFECTIVE_RANK = 1.5
MAX_NEAR_CONSTANT_FRACTION = 0.9
MAX_MEAN_COSINE = 0.99
RELATIVE_SD = 1e-3
ABSOLUTE_SD = 1e-6

GENERIC_CAUSES = (
    "learning rate too high (lower train.lr)",
    "too few epochs or too few samples for the method (raise train.epochs, or try method vae / pca)",
    "views too weak or too strong for this data (the views section)",
)


def collapse_diagnostics(embeddings: np.ndarray, *, max_samples: int = MAX_SAMPLES, seed: int = 0) -> dict:
    """Collapse statistics of (N, D) embeddings -> a JSON-ready dict (floats, ``collapsed`` bool, ``flags``).

    ``flags`` names each threshold crossed: effective rank < 1.5, > 90% near-constant dimensions, mean
    pairwise cosine > 0.99, or non-finite values; ``collapsed`` is true when any is.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or min(x.shape) == 0:
        raise ValueError(f"embeddings must be a non-empty 2-D array, got shape {x.shape}")
    if x.shape[0] > max_samples:
        rows = np.sort(np.random.default_rng(seed).choice(x.shape[0], size=max_samples, replace=False))
        x = x[rows]
    out: dict = {"n_samples": float(x.shape[0]), "dimensions": float(x.shape[1])}
    if not np.isfinite(x).all():
        return {**out, "collapsed": True, "flags": ["non-finite embeddings (training diverged)"]}
    sd = x.std(axis=0)
    near_constant = (sd < RELATIVE_SD * sd.mean()) | (sd < ABSOLUTE_SD)
    min_cosine, mean_cosine = pairwise_cosine(x)
    out.update({
        "effective_rank": effective_rank_or_zero(x),
        "near_constant_fraction": float(near_constant.mean()),
        "mean_sd": float(sd.mean()),
        "min_cosine": min_cosine,
        "mean_cosine": mean_cosine,
    })
    flags = []
    if out["effective_rank"] < MIN_EFFECTIVE_RANK:
        flags.append(f"effective rank {out['effective_rank']:.2f} < {MIN_EFFECTIVE_RANK}")
    if out["near_constant_fraction"] > MAX_NEAR_CONSTANT_FRACTION:
        flags.append(f"{out['near_constant_fraction']:.0%} of dimensions near-constant "
                     f"(> {MAX_NEAR_CONSTANT_FRACTION:.0%})")
    if mean_cosine > MAX_MEAN_COSINE:
        flags.append(f"mean pairwise cosine {mean_cosine:.4f} > {MAX_MEAN_COSINE}")
    return {**out, "collapsed": bool(flags), "flags": flags}


def effective_rank_or_zero(x: np.ndarray) -> float:
    """Roy & Vetterli's effective rank (``evaluate.quality``), 0 for an all-zero matrix."""
    from biolatent.evaluate.quality import effective_rank

    return effective_rank(x) if np.abs(x).max() > 0 else 0.0


def pairwise_cosine(x: np.ndarray) -> tuple[float, float]:
    """Smallest and mean cosine similarity over pairs of distinct rows (zero rows count as cosine 1 with
    everything: they carry no direction); one row gives (1, 1)."""
    n = x.shape[0]
    if n < 2:
        return 1.0, 1.0
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    unit = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    cosine = unit @ unit.T
    zero = norms[:, 0] == 0
    cosine[zero, :] = 1.0
    cosine[:, zero] = 1.0
    off_diagonal = cosine[~np.eye(n, dtype=bool)]
    return float(np.clip(off_diagonal.min(), -1, 1)), float(np.clip(off_diagonal.mean(), -1, 1))


def collapse_warning(diagnostics: dict, causes: Sequence[str] = ()) -> str:
    """The console text for a collapsed embedding: what was measured and the likely causes, most likely first."""
    lines = [
        "!" * 78,
        "WARNING: REPRESENTATION COLLAPSE: the embeddings of different samples are nearly identical",
        "  " + "; ".join(diagnostics["flags"]),
        "  downstream probes and clusters on these embeddings are meaningless. Likely causes:",
        *(f"  - {cause}" for cause in [*causes, *GENERIC_CAUSES]),
        "!" * 78,
    ]
    return "\n".join(lines)
