"""Latent phenotypes: rank-INT against its definition, residuals against statsmodels, PCA/ICA properties."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats

from biolatent.data.paired import match_ids
from biolatent.discover.phenotypes import inverse_normal_transform, latent_phenotypes
from biolatent.errors import DataError


def test_rank_int_equals_blom_formula_with_average_ties():
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.integers(0, 10, 300), rng.exponential(size=300)]).astype(float)
    out = inverse_normal_transform(x)
    n = x.shape[0]
    for j in range(2):
        expected = stats.norm.ppf((stats.rankdata(x[:, j]) - 3 / 8) / (n + 1 / 4))
        np.testing.assert_allclose(out[:, j], expected, rtol=0, atol=1e-12)
    tied = x[:, 0] == x[0, 0]
    assert np.ptp(out[tied, 0]) == 0  # ties share one value


def test_rank_int_output_has_normal_quantiles_whatever_the_input():
    x = np.random.default_rng(1).lognormal(sigma=2.0, size=4000)  # very skewed
    z = inverse_normal_transform(x)
    assert abs(z.mean()) < 1e-3 and abs(z.std() - 1) < 0.02
    np.testing.assert_allclose(np.quantile(z, [0.025, 0.25, 0.5, 0.75, 0.975]),
                               stats.norm.ppf([0.025, 0.25, 0.5, 0.75, 0.975]), atol=0.02)
    assert stats.kstest(z, "norm").pvalue > 0.9


def test_rank_int_ignores_missing_values():
    x = np.array([3.0, np.nan, 1.0, 2.0])
    out = inverse_normal_transform(x)
    assert np.isnan(out[1])
    np.testing.assert_allclose(out[[0, 2, 3]], stats.norm.ppf((np.array([3, 1, 2]) - 3 / 8) / (3 + 1 / 4)))


def _data(n: int = 200, d: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    ids = [f"s{i}" for i in range(n)]
    covariates = pd.DataFrame({
        "age": rng.normal(50, 10, n),
        "sex": rng.choice(["F", "M"], n),
        "batch": rng.choice(["a", "b", "c"], n),
    }, index=ids)
    effect = np.column_stack([covariates["age"], covariates["sex"] == "M", covariates["batch"] == "c"]).astype(float)
    embeddings = effect @ rng.normal(size=(3, d)) + rng.normal(size=(n, d))
    return embeddings, ids, covariates


def test_residuals_equal_statsmodels_ols_and_samples_missing_covariates_are_dropped():
    embeddings, ids, covariates = _data()
    covariates.loc["s3", "age"] = np.nan
    table = covariates.drop(index="s7").sample(frac=1.0, random_state=0)  # other order, one sample absent
    table.loc["extra"] = [1.0, "F", "a"]
    out = latent_phenotypes(embeddings, ids, decorrelate="none", covariates=table, inverse_normal=False)
    kept = [s for s in ids if s not in {"s3", "s7"}]
    assert list(out.index) == kept and out.index.name == "id"
    assert out.attrs["n_dropped_missing_covariates"] == 2 and out.attrs["n_input"] == 200
    frame = covariates.loc[kept].copy()
    for j in range(embeddings.shape[1]):
        frame["y"] = embeddings[[ids.index(s) for s in kept], j]
        resid = smf.ols("y ~ age + C(sex) + C(batch)", data=frame).fit().resid
        np.testing.assert_allclose(out[f"Z{j}"].to_numpy(), resid.to_numpy(), atol=1e-8)
    design = np.column_stack([np.ones(len(kept)), frame["age"], pd.get_dummies(frame[["sex", "batch"]], dtype=float)])
    assert np.abs(design.T @ out.to_numpy()).max() < 1e-6


def test_pca_phenotypes_are_uncorrelated_ordered_and_orthogonal_to_covariates():
    embeddings, ids, covariates = _data(d=6)
    embeddings[:, 1] += 2 * embeddings[:, 0]  # correlated input dimensions
    assert abs(np.corrcoef(embeddings, rowvar=False)[0, 1]) > 0.5
    out = latent_phenotypes(embeddings, ids, decorrelate="pca", n_components=4, covariates=covariates,
                            inverse_normal=False)
    assert list(out.columns) == ["Z0", "Z1", "Z2", "Z3"]
    corr = np.corrcoef(out.to_numpy(), rowvar=False)
    np.testing.assert_allclose(corr, np.eye(4), atol=1e-10)
    variances = out.var().to_numpy()
    assert np.all(np.diff(variances) <= 0)
    ratios = out.attrs["explained_variance_ratio"]
    assert len(ratios) == 4 and ratios == sorted(ratios, reverse=True)
    for column in ("age",):
        assert np.abs(np.corrcoef(covariates[column], out.to_numpy(), rowvar=False)[0, 1:]).max() < 1e-10


def test_pca_then_rank_int_gives_normal_scores_per_component():
    embeddings, ids, _ = _data(n=500)
    out = latent_phenotypes(embeddings, ids)  # defaults: pca, all components, rank-INT
    assert out.shape == (500, 4)
    expected = stats.norm.ppf((np.arange(1, 501) - 3 / 8) / (500 + 1 / 4))
    for column in out.columns:
        np.testing.assert_allclose(np.sort(out[column].to_numpy()), expected, atol=1e-12)


def test_ica_recovers_independent_sources_deterministically():
    rng = np.random.default_rng(3)
    sources = np.column_stack([rng.uniform(-1, 1, 1000), rng.laplace(size=1000), rng.exponential(size=1000)])
    mixed = sources @ rng.normal(size=(3, 3))
    ids = range(1000)
    out = latent_phenotypes(mixed, ids, decorrelate="ica", inverse_normal=False, seed=1)
    corr = np.abs(np.corrcoef(sources, out.to_numpy(), rowvar=False)[:3, 3:])
    assert np.all(corr.max(axis=1) > 0.98)  # each source found (up to order and sign)
    again = latent_phenotypes(mixed, ids, decorrelate="ica", inverse_normal=False, seed=1)
    pd.testing.assert_frame_equal(out, again)
    assert list(out.index[:2]) == ["0", "1"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"sample_ids": ["a"] * 5}, "duplicated sample id"),
    ({"sample_ids": ["a", "b"]}, "2 sample ids for 5"),
    ({"decorrelate": "pca", "n_components": 9}, "n_components must be between 1 and 3"),
    ({"decorrelate": "none", "n_components": 2}, "n_components needs"),
    ({"decorrelate": "svd"}, "unknown decorrelation"),
    ({"covariates": pd.DataFrame({"age": [1.0]}, index=["zz"])}, "no sample has every covariate"),
])
def test_bad_input_raises_one_line_data_error(kwargs, message):
    embeddings = np.random.default_rng(0).normal(size=(5, 3))
    args = {"sample_ids": list("abcde"), **kwargs}
    with pytest.raises(DataError, match=message) as info:
        latent_phenotypes(embeddings, **args)
    assert "\n" not in str(info.value)


def test_match_ids_keeps_genotype_order_and_reports_the_rest():
    common, report = match_ids(["c", "a", 7, "x"], ["7", "b", "a", "c", "d"])
    assert common == ["7", "a", "c"]
    assert report["n_matched"] == 3 and report["n_only_phenotypes"] == 1 and report["n_only_genotypes"] == 2
    assert report["examples"]["only_phenotypes"] == ["x"] and report["examples"]["only_genotypes"] == ["b", "d"]


def test_match_ids_refuses_no_overlap_and_duplicates():
    with pytest.raises(DataError, match="no sample id in common"):
        match_ids(["a", "b"], ["1_a", "1_b"])
    with pytest.raises(DataError, match="duplicated genotype sample id 'b'"):
        match_ids(["a"], ["a", "b", "b"])
