"""io.genotype_matrix helpers: the population count behind QC and clumping on the packed .bed bytes."""

import numpy as np
import pytest


@pytest.mark.parametrize("dtype", [np.uint8, np.uint64])
@pytest.mark.parametrize("table", [False, True])
def test_popcount_counts_set_bits_with_and_without_numpy_bitwise_count(monkeypatch, dtype, table):
    from biolatent.io.genotype_matrix import popcount

    if table:  # numpy < 2: the 256-entry table over each element's bytes
        monkeypatch.delattr(np, "bitwise_count", raising=False)
    values = np.random.default_rng(0).integers(0, np.iinfo(dtype).max, (5, 7), dtype=dtype, endpoint=True)
    expected = np.vectorize(lambda v: bin(int(v)).count("1"))(values)
    np.testing.assert_array_equal(popcount(values), expected)
