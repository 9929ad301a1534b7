import math

import numpy as np
import pytest
import torch

from biolatent.build import method_data_kwargs, method_injected
from biolatent.config import validate_kwargs
from biolatent.data.samples import DataInfo
from biolatent.errors import ConfigError, DataError
from biolatent.methods.clip import CLIP, clip_loss, retrieval_predict
from biolatent.models.resnet import ResNetEncoder

GENES = 10
INFO = DataInfo(modality="spatial", channels=3, image_size=16, spatial_dims=2, n_features=GENES, is_counts=True)


def _clip(**kw) -> CLIP:
    torch.manual_seed(0)
    encoder = ResNetEncoder(3, 2, widths=(8, 16), blocks=(1, 1))
    kw = {"n_genes": GENES, "embed_dim": 16, "expression_hidden": (32,), "expression_dropout": 0.0} | kw
    return CLIP(encoder, **kw)


def _clip_reference(img: np.ndarray, expr: np.ndarray, scale: float) -> float:
    """Radford et al. 2021: mean of the image->expression and expression->image cross-entropies, written out."""
    n = img.shape[0]

    def cos(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.dot(a, b)) / (math.sqrt(float(np.dot(a, a))) * math.sqrt(float(np.dot(b, b))))

    s = [[scale * cos(img[i], expr[j]) for j in range(n)] for i in range(n)]
    image_side = sum(-math.log(math.exp(s[i][i]) / sum(math.exp(s[i][j]) for j in range(n))) for i in range(n))
    expr_side = sum(-math.log(math.exp(s[j][j]) / sum(math.exp(s[i][j]) for i in range(n))) for j in range(n))
    return (image_side / n + expr_side / n) / 2


@pytest.mark.parametrize("scale", [1.0, 14.3, 100.0])
def test_clip_loss_matches_double_loop(scale: float) -> None:
    rng = np.random.default_rng(3)
    img, expr = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
    loss, logits, targets = clip_loss(torch.tensor(img), torch.tensor(expr), torch.tensor(scale, dtype=torch.float64))
    assert loss.item() == pytest.approx(_clip_reference(img, expr, scale), rel=1e-9)
    assert logits.shape == (6, 6) and targets.tolist() == list(range(6))


def _paired_spots(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Tiles of one random colour (+ noise) each; expression counts a fixed non-linear function of the colour."""
    gen = torch.Generator().manual_seed(seed)
    colour = torch.rand(n, 3, generator=gen)
    tiles = (colour[:, :, None, None] + 0.05 * torch.randn(n, 3, 16, 16, generator=gen)).clamp(0, 1)
    weights = torch.randn(GENES, 3, generator=torch.Generator().manual_seed(99))
    counts = torch.round(30 * torch.exp(2 * colour @ weights.T))
    return tiles, counts


def test_temperature_is_learned_and_clipped() -> None:
    method = _clip(temperature_init=0.5)
    tiles, counts = _paired_spots(16, seed=1)
    start = method.logit_scale.item()
    assert start == pytest.approx(math.log(2.0))
    out = method({"x": tiles, "expression": counts, "index": torch.arange(16)})
    assert out.metrics["temperature"] == pytest.approx(0.5)
    out.loss.backward()
    assert method.logit_scale.grad is not None and method.logit_scale.grad.abs() > 0
    optimizer = torch.optim.SGD([method.logit_scale], lr=0.5)
    optimizer.step()
    assert method.logit_scale.item() != pytest.approx(start, abs=1e-4)
    with torch.no_grad():
        method.logit_scale.fill_(math.log(250.0))
    method.on_train_batch_end(1, 10)
    assert method.logit_scale.exp().item() == pytest.approx(100.0)


def test_retrieval_predict_by_hand() -> None:
    query = torch.tensor([[2.0, 0.0]])
    reference = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [3.0, 3.0]])
    expression = torch.tensor([[10.0, 0.0], [0.0, 10.0], [5.0, 5.0], [0.0, 4.0]])
    # k = 2 nearest by cosine: reference 0 (cos 1, squared distance 0) and reference 3 (cos 1/sqrt 2)
    w0, w3 = 1.0, math.exp(-(2.0 - 2.0 / math.sqrt(2.0)))
    expected = [(w0 * 10.0 + w3 * 0.0) / (w0 + w3), (w0 * 0.0 + w3 * 4.0) / (w0 + w3)]
    got = retrieval_predict(query, reference, expression, k=2)
    assert got.shape == (1, 2)
    assert got[0].tolist() == pytest.approx(expected, rel=1e-6)
    assert retrieval_predict(query, reference, expression, k=1)[0].tolist() == [10.0, 0.0]
    queries = torch.randn(7, 2, generator=torch.Generator().manual_seed(0))
    whole = retrieval_predict(queries, reference, expression, k=3)
    assert torch.equal(retrieval_predict(queries, reference, expression, k=3, chunk=2), whole)
    with pytest.raises(ConfigError, match="k must be"):
        retrieval_predict(query, reference, expression, k=5)
    with pytest.raises(DataError, match="reference"):
        retrieval_predict(query, reference, expression[:3], k=1)


@pytest.mark.slow  # a real training run; see issue 16 part 8 (fast set under 3 minutes)
def test_training_aligns_pairs_and_retrieval_predicts() -> None:
    method = _clip(temperature_init=0.1)
    tiles, counts = _paired_spots(64, seed=2)
    optimizer = torch.optim.Adam(method.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    losses = []
    method.train()
    for step in range(60):
        rows = torch.randperm(64, generator=gen)[:32]
        out = method({"x": tiles[rows], "expression": counts[rows], "index": rows})
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        method.on_train_batch_end(step + 1, 60)
        losses.append(out.loss.item())
    assert np.mean(losses[-10:]) < 0.6 * np.mean(losses[:5])
    method.eval()
    with torch.no_grad():
        image_emb, expr_emb = method.embed(tiles), method.embed_expression(counts)
    similarity = torch.nn.functional.normalize(image_emb, dim=1) @ torch.nn.functional.normalize(expr_emb, dim=1).T
    top1 = (similarity.argmax(dim=1) == torch.arange(64)).float().mean()
    top5 = (similarity.topk(5, dim=1).indices == torch.arange(64)[:, None]).any(dim=1).float().mean()
    assert top1 > 0.25 and top5 > 0.6  # chance: 1 / 64 and 5 / 64 (measured untrained: 0.016, 0.078)
    # BLEEP: the expression of 16 spots from the 48 others is closer to the truth than the reference mean is
    log_truth = torch.log1p(counts)
    predicted = retrieval_predict(image_emb[48:], expr_emb[:48], log_truth[:48], k=5)
    error = ((predicted - log_truth[48:]) ** 2).mean()
    baseline = ((log_truth[:48].mean(dim=0) - log_truth[48:]) ** 2).mean()
    assert error < 0.3 * baseline


def test_needs_expression_and_genes() -> None:
    method = _clip()
    with pytest.raises(DataError, match="expression"):
        method({"x": torch.rand(4, 3, 16, 16), "index": torch.arange(4)})
    with pytest.raises(DataError, match="10 genes"):
        method.check_data(DataInfo(modality="spatial", channels=3, image_size=16, spatial_dims=2, n_features=12))
    with pytest.raises(ConfigError, match="n_genes"):
        CLIP(ResNetEncoder(3, 2, widths=(4,), blocks=(1,)))
    method.check_data(INFO)


def test_n_genes_comes_from_the_data_not_the_config() -> None:
    assert method_data_kwargs("clip", INFO) == {"n_genes": GENES}
    assert method_data_kwargs("simclr", INFO) == {}
    defaults = validate_kwargs("method", "clip", CLIP, {}, skip=method_injected(CLIP))
    assert "n_genes" not in defaults and defaults["embed_dim"] == 128
    with pytest.raises(ConfigError, match="n_genes"):
        validate_kwargs("method", "clip", CLIP, {"n_genes": 5}, skip=method_injected(CLIP))
