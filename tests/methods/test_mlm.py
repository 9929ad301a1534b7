import numpy as np
import pytest
import torch

from biolatent.data.sequence import MASK_ID, PAD_BASE, PAD_ID
from biolatent.errors import ConfigError
from biolatent.methods.mlm import MaskedKmerModel, span_mask
from biolatent.models.mlp import MLPEncoder
from biolatent.models.sequence import BertSequenceEncoder

SMALL = {"hidden_size": 16, "layers": 1, "heads": 2, "intermediate_size": 32}


def _runs(row: np.ndarray) -> list[tuple[int, int]]:
    runs, start = [], None
    for i, value in enumerate([*row.tolist(), False]):
        if value and start is None:
            start = i
        elif not value and start is not None:
            runs.append((start, i))
            start = None
    return runs


@pytest.mark.parametrize("k", [3, 4, 6])
def test_spans_are_runs_of_at_least_k(k: int) -> None:
    gen = torch.Generator().manual_seed(k)
    tokens = torch.randint(5, 5 + 4**k, (30, 60))
    lengths = torch.randint(10, 61, (30,))
    attention = (torch.arange(60)[None] < lengths[:, None]).long()
    tokens[attention == 0] = PAD_ID
    mask = span_mask(tokens, attention, k, 0.15, generator=gen).numpy()
    assert not mask[attention.numpy() == 0].any()
    assert mask.any(axis=1).all()  # every sequence gets at least one span
    for row, length in zip(mask, lengths.tolist(), strict=True):
        for start, end in _runs(row):
            clipped = start == 0 or end == length
            assert end - start >= k or clipped, (start, end, length)


@pytest.mark.parametrize("k", [3, 6])
def test_masked_fraction_close_to_probability(k: int) -> None:
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(5, 5 + 4**k, (16, 4000))
    attention = torch.ones_like(tokens)
    fraction = span_mask(tokens, attention, k, 0.15, generator=gen).float().mean().item()
    assert abs(fraction - 0.15) < 0.01


def test_replacement_proportions() -> None:
    torch.manual_seed(0)
    method = MaskedKmerModel(BertSequenceEncoder(3, 2002, **SMALL))
    tokens = torch.randint(5, 69, (8, 2000))
    attention = torch.ones_like(tokens)
    corrupted, mask = method.mask_tokens(tokens, attention)
    assert torch.equal(corrupted[~mask], tokens[~mask])
    n = mask.sum().item()
    as_mask = (corrupted[mask] == MASK_ID).sum().item() / n
    unchanged = (corrupted[mask] == tokens[mask]).sum().item() / n
    assert abs(as_mask - 0.8) < 0.03 and abs(unchanged - 0.1) < 0.03
    assert bool((corrupted[mask] >= 5).logical_or(corrupted[mask] == MASK_ID).all())


def test_loss_matches_numpy_log_softmax(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    method = MaskedKmerModel(BertSequenceEncoder(3, 24, **SMALL)).eval()
    bases = torch.randint(0, 4, (3, 24))
    bases[1, 18:] = PAD_BASE
    tokens, attention = method.tokenize(bases)
    mask = torch.zeros_like(tokens, dtype=torch.bool)
    mask[0, 2:5] = mask[1, 10:13] = mask[2, 0:3] = True
    corrupted = torch.where(mask, torch.full_like(tokens, MASK_ID), tokens)
    monkeypatch.setattr(method, "mask_tokens", lambda t, a: (corrupted, mask))
    out = method({"x": bases})
    with torch.no_grad():
        logits = method.logits(corrupted, attention).double().numpy()
    losses, hits = [], []
    for b, t in zip(*np.nonzero(mask.numpy()), strict=True):
        row = logits[b, t]
        log_z = row.max() + np.log(np.exp(row - row.max()).sum())
        losses.append(log_z - row[tokens[b, t].item()])
        hits.append(row.argmax() == tokens[b, t].item())
    assert out.loss.item() == pytest.approx(float(np.mean(losses)), rel=1e-5)
    assert out.metrics["masked_accuracy"] == pytest.approx(float(np.mean(hits)))


def test_needs_token_encoder() -> None:
    with pytest.raises(ConfigError, match=r"model\.name: bert"):
        MaskedKmerModel(MLPEncoder(10))
