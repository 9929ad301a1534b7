"""QC against plink2 on the same PLINK files: --hardy p-values and the --geno/--maf/--hwe variant set."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from biolatent.discover.genetics.qc import QCConfig, hwe_pvalues, run_qc
from biolatent.io.genotype_matrix import Genotypes
from biolatent.io.genotypes import read_genotypes, write_plink

pytestmark = pytest.mark.slow


def _structured(n: int = 300, m: int = 400, seed: int = 3) -> Genotypes:
    """Two subpopulations with different frequencies (heterozygote deficit), rare variants, missing calls."""
    rng = np.random.default_rng(seed)
    p1, p2 = rng.uniform(0.001, 0.999, m), rng.uniform(0.001, 0.999, m)
    half = n // 2
    x = np.vstack([rng.binomial(2, p1, (half, m)), rng.binomial(2, p2, (n - half, m))]).astype(np.float32)
    x[rng.random((n, m)) < rng.uniform(0, 0.08, m)] = np.nan
    x[:, :5] = rng.binomial(2, 0.5, (n, 5))
    x[:, 5] = 1.0  # all heterozygous
    variants = pd.DataFrame({"chrom": "1", "pos": np.arange(m) * 10 + 1, "id": [f"v{j}" for j in range(m)],
                             "ref": "A", "alt": "C"})
    return Genotypes(x, [f"s{i}" for i in range(n)], variants)


def _plink2(tmp_path, *args: str) -> None:
    proc = subprocess.run(["plink2", "--bfile", "toy", *args, "--threads", "1"], cwd=tmp_path, capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:]


def test_hwe_and_filters_equal_plink2(tmp_path):
    if shutil.which("plink2") is None:
        pytest.skip("plink2 is not on PATH: the comparison with plink2 --hardy cannot run")
    geno = _structured()
    write_plink(geno, tmp_path / "toy")
    geno = read_genotypes(tmp_path / "toy")
    _plink2(tmp_path, "--hardy", "--out", "h")
    ref = pd.read_csv(tmp_path / "h.hardy", sep="\t")
    assert ref.ID.tolist() == geno.variants.id.tolist()
    ours = hwe_pvalues(geno.dosages)
    assert (ours < 1e-6).sum() > 20 and (ours > 0.05).sum() > 20  # both regimes are exercised
    np.testing.assert_allclose(ours, ref.P.to_numpy(), rtol=2e-5)  # plink2 prints 6 significant digits

    _plink2(tmp_path, "--geno", "0.05", "--maf", "0.01", "--hwe", "1e-6", "--write-snplist", "--out", "f")
    expected = (tmp_path / "f.snplist").read_text().split()
    kept, report = run_qc(geno, QCConfig(min_sample_call_rate=0.0))
    assert kept.variants.id.tolist() == expected
    assert report["n_variants_after"] == len(expected) < geno.n_variants
