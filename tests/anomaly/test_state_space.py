"""The selective state-space (Mamba S6) block against an independent numpy recurrence, and the MAAT-style
gated branch of the Anomaly Transformer (weights, causality, detection on a noisy sine)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from biolatent.anomaly.detectors.anomaly_transformer import AnomalyTransformerDetector
from biolatent.anomaly.series import point_scores, sliding_windows, window_features
from biolatent.models.anomaly_transformer import AnomalyTransformer
from biolatent.models.state_space import SelectiveStateSpace, selective_scan


def numpy_scan(x, delta, a, b, c, d):
    """Zero-order-hold A, Euler B: one explicit loop per batch element, channel and state entry."""
    batch, length, channels = x.shape
    y = np.zeros_like(x)
    for i in range(batch):
        for e in range(channels):
            h = np.zeros(a.shape[1])
            for t in range(length):
                h = np.exp(delta[i, t, e] * a[e]) * h + delta[i, t, e] * b[i, t] * x[i, t, e]
                y[i, t, e] = c[i, t] @ h + d[e] * x[i, t, e]
    return y


def test_selective_scan_equals_the_numpy_recurrence():
    rng = np.random.default_rng(0)
    shapes = {"x": (2, 7, 3), "delta": (2, 7, 3), "b": (2, 7, 4), "c": (2, 7, 4)}
    arrays = {k: rng.normal(size=s) for k, s in shapes.items()}
    arrays["delta"] = np.abs(arrays["delta"]) * 0.5
    a, d = -np.abs(rng.normal(size=(3, 4))) - 0.1, rng.normal(size=3)
    ours = selective_scan(*(torch.tensor(arrays[k]) for k in ("x", "delta")), torch.tensor(a),
                          torch.tensor(arrays["b"]), torch.tensor(arrays["c"]), torch.tensor(d))
    expected = numpy_scan(arrays["x"], arrays["delta"], a, arrays["b"], arrays["c"], d)
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-10, atol=1e-12)


def test_block_is_causal_and_keeps_the_shape():
    torch.manual_seed(0)
    block = SelectiveStateSpace(8, d_state=4)
    u = torch.randn(2, 12, 8)
    changed = u.clone()
    changed[:, 9:] += 5.0  # the future
    out, out_changed = block(u), block(changed)
    assert out.shape == u.shape
    torch.testing.assert_close(out[:, :9], out_changed[:, :9])  # outputs before t=9 do not see t >= 9
    assert not torch.allclose(out[:, 9:], out_changed[:, 9:])


def test_gated_branch_is_part_of_the_model_and_trains():
    torch.manual_seed(0)
    plain = AnomalyTransformer(1, d_model=8, n_layers=1, n_heads=2)
    gated = AnomalyTransformer(1, d_model=8, n_layers=1, n_heads=2, ssm_branch=True, d_state=4)
    extra = set(gated.state_dict()) - set(plain.state_dict())
    assert any(k.startswith("ssm.") for k in extra) and {"gate.weight", "gate.bias"} <= extra
    x = torch.randn(3, 16, 1)
    output = gated(x)
    output.reconstruction.pow(2).mean().backward()
    assert gated.ssm.a_log.grad is not None and gated.gate.weight.grad.abs().sum() > 0


def sine(n, rng, phase=0.0):
    t = np.arange(n)
    return np.sin(2 * np.pi * t / 25 + phase) + 0.05 * rng.normal(size=n)


@pytest.mark.slow
def test_maat_style_detector_detects_an_injected_anomaly_and_round_trips(tmp_path):
    size, rng = 32, np.random.default_rng(0)
    healthy, test = sine(600, rng), sine(300, rng, phase=1.0)
    labels = np.zeros(test.size, bool)
    labels[140:160] = True
    test[140:160] *= 3.0
    mean, scale = healthy.mean(), healthy.std()
    detector = AnomalyTransformerDetector(epochs=4, batch_size=32, seed=0, ssm_branch=True, d_state=4)
    detector.fit(window_features(sliding_windows(healthy, size), mean, scale))
    features = window_features(sliding_windows(test, size), mean, scale)
    scores = detector.score(features)
    assert roc_auc_score(labels, point_scores(scores, test.size, size)) > 0.8  # chance is 0.5
    detector.save(tmp_path)
    from biolatent.anomaly.detectors import load_detector

    np.testing.assert_array_equal(load_detector(tmp_path).score(features), scores)
    with pytest.raises(Exception, match="ssm_branch must be true or false"):
        AnomalyTransformerDetector(ssm_branch="yes")
