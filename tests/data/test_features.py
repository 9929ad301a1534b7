"""Classical features: exact values on hand-made inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from biolatent.data.features import raw_features
from biolatent.data.samples import DataInfo, SampleSet
from biolatent.data.sequence import encode_bases, pad_bases


def _obs(n: int) -> pd.DataFrame:
    return pd.DataFrame(index=[f"s{i}" for i in range(n)])


def test_counts_log_normalised_or_as_is():
    x = torch.tensor([[1.0, 3.0], [0.0, 0.0]])
    counts = SampleSet(DataInfo("counts", n_features=2, is_counts=True), x, _obs(2))
    expected = np.log1p(np.array([[2500.0, 7500.0], [0.0, 0.0]]))
    np.testing.assert_allclose(raw_features(counts), expected, rtol=1e-6)
    continuous = SampleSet(DataInfo("counts", n_features=2), x - 1, _obs(2))
    np.testing.assert_array_equal(raw_features(continuous), (x - 1).numpy())


def test_dna_kmer_spectrum_skips_n_and_pad():
    bases = pad_bases([encode_bases("AAAAA"), encode_bases("ACGTNACGT"), encode_bases("AC")], 9)
    feats = raw_features(SampleSet(DataInfo("dna", max_length=9), bases, _obs(3)))
    assert feats.shape == (3, 256) and feats.dtype == np.float32
    assert feats[0, 0] == 1.0 and feats[0].sum() == 1.0  # AAAA twice -> all mass on index 0
    acgt = 0 * 64 + 1 * 16 + 2 * 4 + 3  # the only valid 4-mer of ACGT|N|ACGT, seen twice
    assert feats[1, acgt] == 1.0 and np.count_nonzero(feats[1]) == 1
    assert not feats[2].any()  # shorter than k: no k-mer


def test_images_pooled_to_16():
    x = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).reshape(2, 3, 32, 32) / 6144
    feats = raw_features(SampleSet(DataInfo("image2d", channels=3, image_size=32), x, _obs(2)))
    assert feats.shape == (2, 3 * 16 * 16)
    np.testing.assert_allclose(feats[0, 0], x[0, 0, :2, :2].mean().item(), rtol=1e-6)
    small = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    feats_small = raw_features(SampleSet(DataInfo("image2d", channels=1, image_size=8), small, _obs(2)))
    np.testing.assert_allclose(feats_small, small.reshape(2, -1).numpy())
