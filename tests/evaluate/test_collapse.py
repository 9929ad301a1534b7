"""Collapse diagnostics against hand computations on known matrices."""

import numpy as np
import pytest

from biolatent.evaluate.collapse import collapse_diagnostics, collapse_warning, pairwise_cosine


def test_diagnostics_match_an_independent_computation() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 6)) + 2.0
    x[:, 5] = 3.0 + 1e-9 * rng.normal(size=30)  # a near-constant dimension (SD below 1e-6)
    out = collapse_diagnostics(x)
    s = np.linalg.svd(x, compute_uv=False)  # Roy & Vetterli 2007 by hand: exp(entropy of s / sum(s))
    p = s / s.sum()
    assert out["effective_rank"] == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-10)
    assert out["near_constant_fraction"] == pytest.approx(1 / 6)
    cos = [x[i] @ x[j] / np.linalg.norm(x[i]) / np.linalg.norm(x[j]) for i in range(30) for j in range(30) if i != j]
    assert out["min_cosine"] == pytest.approx(min(cos)) and out["mean_cosine"] == pytest.approx(np.mean(cos))
    assert out["collapsed"] is False and out["flags"] == []


def test_known_matrix_effective_rank() -> None:
    # orthogonal rows of equal norm: 3 equal singular values -> effective rank exactly 3, cosines 0
    x = np.diag([2.0, 2.0, 2.0, 0.0])[:3]
    out = collapse_diagnostics(x)
    assert out["effective_rank"] == pytest.approx(3.0) and out["mean_cosine"] == pytest.approx(0.0)


def test_identical_embeddings_are_flagged() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=16) + 7e-5 * rng.normal(size=(57, 16))  # the issue: per-dimension SD about 7e-5
    out = collapse_diagnostics(x)
    assert out["collapsed"] is True
    assert out["effective_rank"] < 1.01 and out["min_cosine"] > 0.9999
    assert any("effective rank" in f for f in out["flags"]) and any("cosine" in f for f in out["flags"])
    text = collapse_warning(out, ["continuous input not standardised"])
    assert "REPRESENTATION COLLAPSE" in text and "continuous input not standardised" in text
    assert text.index("continuous input") < text.index("learning rate")  # the run's own cause first


def test_dead_dimensions_flagged_even_when_the_rest_varies() -> None:
    rng = np.random.default_rng(2)
    x = np.zeros((40, 20))
    x[:, 0] = rng.normal(size=40)
    out = collapse_diagnostics(x)
    assert out["near_constant_fraction"] == pytest.approx(0.95) and out["collapsed"] is True


def test_zero_and_non_finite_embeddings_are_collapsed() -> None:
    assert collapse_diagnostics(np.zeros((5, 3)))["effective_rank"] == 0.0
    assert collapse_diagnostics(np.zeros((5, 3)))["collapsed"] is True
    bad = np.ones((5, 3))
    bad[0, 0] = np.nan
    assert collapse_diagnostics(bad)["collapsed"] is True
    assert pairwise_cosine(np.ones((1, 3))) == (1.0, 1.0)


def test_large_sets_are_subsampled_reproducibly() -> None:
    x = np.random.default_rng(3).normal(size=(300, 4))
    a, b = collapse_diagnostics(x, max_samples=100, seed=5), collapse_diagnostics(x, max_samples=100, seed=5)
    assert a == b and a["n_samples"] == 100.0
