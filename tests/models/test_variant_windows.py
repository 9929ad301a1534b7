"""The locally connected variant-window encoder against a loop over windows written out, and its locality."""

from __future__ import annotations

import pytest
import torch

from biolatent.models.variant_windows import VariantWindowEncoder


def test_each_window_is_its_own_dense_map():
    torch.manual_seed(0)
    encoder = VariantWindowEncoder(10, 3, window=4, window_features=2, hidden=5)  # windows 4 + 4 + 2 (padded)
    assert encoder.n_windows == 3
    x = torch.randn(6, 10)
    expected = []
    for w in range(3):
        block = x[:, 4 * w:4 * w + 4]
        weight = encoder.weight[w, :block.shape[1]]  # the padded inputs are zero: their weights do not count
        expected.append(torch.relu(block @ weight + encoder.bias[w]))
    with torch.no_grad():
        torch.testing.assert_close(encoder.window_features(x), torch.stack(expected, dim=1))
        torch.testing.assert_close(encoder(x), encoder.head(torch.cat(expected, dim=1)))


def test_a_variant_reaches_only_its_own_window():
    torch.manual_seed(1)
    encoder = VariantWindowEncoder(12, 3, window=4, window_features=2)
    x = torch.randn(1, 12, requires_grad=True)
    encoder.window_features(x)[0, 1].sum().backward()  # window 1 = variants 4..7
    touched = (x.grad[0] != 0).nonzero().flatten().tolist()
    assert touched and set(touched) <= {4, 5, 6, 7}


def test_refuses_the_wrong_number_of_variants():
    encoder = VariantWindowEncoder(12, 3, window=5)
    with pytest.raises(ValueError, match=r"\(subjects, 12\)"):
        encoder(torch.randn(2, 11))
