"""``benchmarks/batch_integration.py``: its defaults (the published run), the known batch effect on real cells,
and the paired conditioned-minus-unconditioned differences."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]



def test_defaults_and_quick(bench_script):
    bench = bench_script("batch_integration")
    args = bench.parse_args([])
    assert (args.epochs, args.seeds) == (100, 3)
    quick = bench.parse_args(["--quick"])
    assert (quick.epochs, quick.seeds) == (2, 1)


def test_the_batch_effect_is_known_and_keeps_the_cells():
    from biolatent.data.simulate.counts import add_batch_effect

    rng = np.random.default_rng(0)
    counts = rng.poisson(5.0, size=(600, 40)).astype(np.float32)
    labels = np.repeat(["t0", "t1", "t2"], 200)
    redrawn, batches = add_batch_effect(counts, labels, n_batches=3, gene_sd=0.5, depth_sd=0.0, seed=1)
    again, same = add_batch_effect(counts, labels, n_batches=3, gene_sd=0.5, depth_sd=0.0, seed=1)
    assert np.array_equal(redrawn, again) and np.array_equal(batches, same)  # seeded
    assert set(batches) == {"batch0", "batch1", "batch2"}
    assert np.array_equal(redrawn, np.round(redrawn)) and (redrawn >= 0).all()
    # each batch multiplies each gene by its own factor: per-batch gene means differ far beyond Poisson noise
    means = np.stack([redrawn[batches == b].mean(axis=0) for b in ("batch0", "batch1", "batch2")])
    assert np.abs(np.log(means[0] / means[1])).mean() > 0.3
    # without a gene effect the batches keep the cells' means
    flat, _ = add_batch_effect(counts, labels, gene_sd=0.0, depth_sd=0.0, seed=1)
    assert flat.mean() == pytest.approx(counts.mean(), rel=0.02)


def test_paired_differences_and_summary(bench_script):
    bench = bench_script("batch_integration")
    per_seed = pd.DataFrame([
        {"method": "biolatent vae + batch", "seed": s, **{m: 0.5 + 0.1 * s for m in bench.METRICS}} for s in (0, 1)
    ] + [{"method": "biolatent vae", "seed": s, **{m: 0.4 for m in bench.METRICS}} for s in (0, 1)])
    diff = bench.paired_difference(per_seed, "batch_correction", "biolatent vae + batch", "biolatent vae")
    assert diff == pytest.approx({"mean": 0.15, "min": 0.1, "max": 0.2})
    rows = {row["method"]: row for row in bench.summarise(per_seed)}
    assert rows["biolatent vae + batch"]["total"] == "0.550 [0.500, 0.600]" and rows["biolatent vae"]["n_seeds"] == 2
