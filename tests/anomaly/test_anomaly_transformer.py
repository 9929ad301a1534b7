"""Anomaly Transformer (Xu et al. 2022): prior/series associations, association discrepancy and anomaly criterion
against independent numpy/scipy computations, the minimax detach pattern, weights-only persistence, a tiny
end-to-end detection of an injected anomaly, and one-line errors."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from scipy.special import rel_entr
from sklearn.metrics import roc_auc_score

from biolatent.anomaly.detectors.anomaly_transformer import AnomalyTransformerDetector
from biolatent.anomaly.series import point_scores, sliding_windows, window_features
from biolatent.anomaly.series_models.anomaly_transformer import (
    anomaly_criterion,
    association_discrepancy,
    minimax_losses,
)
from biolatent.errors import ConfigError, DataError
from biolatent.models.anomaly_transformer import AnomalyTransformer, gaussian_prior, sigma_from_logits


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: one thread avoids oversubscribing a shared CPU (results do not depend on it)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def sine(n: int, rng: np.random.Generator, phase: float = 0.0) -> np.ndarray:
    return np.sin(2 * np.pi * np.arange(n) / 20 + phase) + 0.1 * rng.normal(size=n)


def healthy_features(n: int = 120, size: int = 8) -> np.ndarray:
    values = sine(n, np.random.default_rng(1))
    return window_features(sliding_windows(values, size), values.mean(), values.std())


def test_prior_association_is_a_row_normalised_gaussian_kernel():
    sigma = np.random.default_rng(0).uniform(0.3, 5.0, size=(2, 3, 7))
    prior = gaussian_prior(torch.tensor(sigma)).numpy()
    distance = np.abs(np.arange(7)[:, None] - np.arange(7)[None, :])
    s = sigma[..., None]
    kernel = np.exp(-distance**2 / (2 * s**2)) / (np.sqrt(2 * np.pi) * s)
    np.testing.assert_allclose(prior, kernel / kernel.sum(-1, keepdims=True), rtol=1e-10)
    np.testing.assert_allclose(prior.sum(-1), 1.0, rtol=1e-12)
    assert prior[0, 0, 3].argmax() == 3  # centred on the query position

    scales = sigma_from_logits(torch.linspace(-20, 20, 41))
    assert scales.min() > 0 and scales.max() <= 3 ** (1 + 1e-5) - 1 + 1e-6 and (scales.diff() >= 0).all()


def test_model_associations_are_distributions_with_the_expected_shapes():
    torch.manual_seed(0)
    out = AnomalyTransformer(1, d_model=16, n_layers=3, n_heads=2)(torch.randn(4, 10, 1))
    assert out.reconstruction.shape == (4, 10, 1)
    assert out.series.shape == out.priors.shape == (3, 4, 2, 10, 10)
    for association in (out.series, out.priors):
        torch.testing.assert_close(association.sum(-1), torch.ones(3, 4, 2, 10))
        assert (association >= 0).all()


def test_association_discrepancy_equals_numpy_symmetrised_kl():
    rng = np.random.default_rng(0)
    p, q = rng.dirichlet(np.ones(5), size=(2, 3, 4, 5)), rng.dirichlet(np.ones(5), size=(2, 3, 4, 5))  # (L,B,H,N,N)
    expected = (rel_entr(p, q).sum(-1) + rel_entr(q, p).sum(-1)).mean(axis=(0, 2))  # (B, N)
    got = association_discrepancy(torch.tensor(p), torch.tensor(q), eps=0.0).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    np.testing.assert_allclose(association_discrepancy(torch.tensor(p), torch.tensor(p)).numpy(), 0.0, atol=1e-12)
    one_hot = torch.eye(5, dtype=torch.float64).expand(1, 1, 1, 5, 5)  # a prior that underflowed to zeros
    assert torch.isfinite(association_discrepancy(one_hot, torch.tensor(q[:1, :1, :1]))).all()


def test_anomaly_criterion_is_softmax_of_minus_discrepancy_times_error():
    assdis = torch.tensor([[0.0, np.log(2.0), np.log(4.0)], [1.0, 1.0, 1.0]], dtype=torch.float64)
    error = torch.tensor([[7.0, 14.0, 28.0], [3.0, 6.0, 9.0]], dtype=torch.float64)
    # row 1: softmax(-assdis) = (4, 2, 1) / 7; row 2: uniform 1/3
    torch.testing.assert_close(anomaly_criterion(assdis, error),
                               torch.tensor([[4.0, 4.0, 4.0], [1.0, 2.0, 3.0]], dtype=torch.float64))


def test_minimax_moves_the_prior_in_the_minimise_phase_and_the_series_in_the_maximise_phase():
    torch.manual_seed(0)
    model = AnomalyTransformer(1, d_model=16, n_layers=2, n_heads=2)
    x = torch.randn(3, 10, 1)
    out = model(x)
    minimise, maximise = minimax_losses(x, out, k=3.0)
    reconstruction = torch.nn.functional.mse_loss(out.reconstruction, x)
    last = model.layers[-1].attention
    weights = [last.sigma.weight, last.query.weight]  # the last prior feeds no reconstruction; the query does
    g_min = torch.autograd.grad(minimise, weights, retain_graph=True, allow_unused=True)
    g_max = torch.autograd.grad(maximise, weights, retain_graph=True, allow_unused=True)
    g_rec = torch.autograd.grad(reconstruction, weights, retain_graph=True, allow_unused=True)
    assert g_rec[0] is None  # the prior only enters through the discrepancy
    assert g_min[0] is not None and g_min[0].abs().sum() > 0  # minimise: the prior learns
    assert g_max[0] is None  # maximise: the prior is detached
    torch.testing.assert_close(g_min[1], g_rec[1])  # minimise: the series association is detached
    assert (g_max[1] - g_rec[1]).abs().sum() > 1e-6  # maximise: the series association learns


def test_hyper_parameters_are_keyword_only_and_stored_for_rebuilding():
    signature = inspect.signature(AnomalyTransformerDetector.__init__)
    names = [p for p in signature.parameters if p != "self"]
    assert names == ["d_model", "n_layers", "n_heads", "epochs", "batch_size", "lr", "k", "seed", "ssm_branch",
                     "d_state"]
    assert all(signature.parameters[p].kind is inspect.Parameter.KEYWORD_ONLY for p in names)
    assert set(AnomalyTransformerDetector(epochs=2).params) == set(names)
    with pytest.raises(TypeError):
        AnomalyTransformerDetector(32)


def test_save_restore_round_trip_and_seeded_determinism(tmp_path):
    from safetensors.numpy import load_file

    from biolatent.rundir import read_json

    x = healthy_features()
    params = {"d_model": 16, "n_layers": 1, "n_heads": 2, "epochs": 2, "batch_size": 32, "seed": 3}
    state = torch.get_rng_state()
    detector = AnomalyTransformerDetector(**params).fit(x)
    assert torch.equal(torch.get_rng_state(), state)  # the global torch RNG is left as it was
    windows = detector.point_scores(x)
    scores = detector.score(x)
    assert windows.shape == (x.shape[0], 8) and np.isfinite(windows).all() and (windows >= 0).all()
    np.testing.assert_array_equal(scores, windows.max(axis=1))
    np.testing.assert_array_equal(AnomalyTransformerDetector(**params).fit(x).score(x), scores)
    assert not np.allclose(AnomalyTransformerDetector(**{**params, "seed": 4}).fit(x).score(x), scores)

    detector.save(tmp_path)
    assert not list(tmp_path.glob("*.pkl"))
    meta = read_json(tmp_path / "detector.json")
    rebuilt = AnomalyTransformerDetector(**meta["params"])
    rebuilt.n_features = meta["n_features"]
    rebuilt.restore(load_file(str(tmp_path / "detector.safetensors")))
    np.testing.assert_array_equal(rebuilt.score(x), scores)

    other = AnomalyTransformerDetector(**{**params, "d_model": 8})
    with pytest.raises(DataError, match="do not fit the hyper-parameters"):
        other.restore(detector.arrays())


def test_detects_an_injected_anomaly_in_a_noisy_sine():
    size, rng = 32, np.random.default_rng(0)
    healthy, test = sine(600, rng), sine(300, rng, phase=1.0)
    labels = np.zeros(test.size, bool)
    labels[140:160] = True
    test[140:160] *= 3.0  # an amplitude burst
    mean, scale = healthy.mean(), healthy.std()
    detector = AnomalyTransformerDetector(epochs=5, batch_size=32, seed=0)
    detector.fit(window_features(sliding_windows(healthy, size), mean, scale))
    features = window_features(sliding_windows(test, size), mean, scale)

    windows = detector.point_scores(features)  # (n_windows, size): each point's own criterion, averaged over windows
    total, count = np.zeros(test.size), np.zeros(test.size)
    for start, row in enumerate(windows):
        total[start:start + size] += row
        count[start:start + size] += 1
    pipeline = point_scores(detector.score(features), test.size, size)  # as `biolatent anomaly` scores points
    # seeds 0-9 of the model gave 0.88-0.98 (own criterion) and 0.87-0.98 (pipeline); chance is 0.5
    assert roc_auc_score(labels, total / count) > 0.8
    assert roc_auc_score(labels, pipeline) > 0.8


def test_bad_input_and_parameters_are_one_line_errors():
    x = healthy_features()
    cases = [(np.where(np.arange(x.size).reshape(x.shape) == 5, np.nan, x), "NaN"),
             (x[:, :6], "6 features are not window features"),
             (np.c_[x[:, :8], x[:, 8:] + 1.0], "not the first differences")]
    for bad, message in cases:
        with pytest.raises(DataError, match=message) as error:
            AnomalyTransformerDetector(epochs=1).fit(bad)
        assert "\n" not in str(error.value)
    detector = AnomalyTransformerDetector(d_model=8, n_layers=1, n_heads=2, epochs=1).fit(x)
    with pytest.raises(DataError, match="13 features, the detector was fitted on 15"):
        detector.score(x[:, :13])
    with pytest.raises(DataError, match="score\\(\\) before fit\\(\\)"):
        AnomalyTransformerDetector().score(x)
    with pytest.raises(ConfigError, match="divisible by n_heads"):
        AnomalyTransformerDetector(d_model=30, n_heads=4)
    with pytest.raises(ConfigError, match="epochs must be a positive integer"):
        AnomalyTransformerDetector(epochs=0)
