"""benchmarks/series_ssl.py: the paired SSL-minus-random-init gain on a hand-made per-seed table, and a smoke run of
``--quick`` (every representation at both fractions, MiniRocket beside them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))


def test_paired_gains_pair_the_same_seed_and_subset():
    from series_ssl import paired_gains

    rows = []
    for pretrain_seed in (0, 1):
        for seed in (0, 1, 2):
            base = 0.5 + 0.1 * seed + 0.05 * pretrain_seed  # large spread between draws, constant gain
            for rep, value in (("ts2vec", base + 0.1), ("random_init_series_cnn", base),
                               ("masked_series", base - 0.02), ("random_init_series_transformer", base)):
                rows.append({"dataset": "d", "representation": rep, "probe": "linear", "fraction": 0.1,
                             "seed": seed, "pretrain_seed": pretrain_seed, "metric": "accuracy", "value": value})
    gains = {g["method"]: g for g in paired_gains(pd.DataFrame(rows))}
    assert gains["ts2vec"]["gain"] == pytest.approx(0.1) and gains["ts2vec"]["n"] == 6
    assert gains["ts2vec"]["ci_low"] == pytest.approx(0.1) and gains["ts2vec"]["ssl_beats_random_init"]
    masked = gains["masked_series"]
    assert masked["gain"] == pytest.approx(-0.02) and not masked["ssl_beats_random_init"]


@pytest.mark.slow
def test_quick_run_reports_every_representation(tmp_path: Path) -> None:
    pytest.importorskip("aeon", reason="aeon (extra 'series') is not installed")
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "series_ssl.py"), "--quick", "--work", str(tmp_path / "work"),
         "--out-dir", str(tmp_path / "out")],
        capture_output=True, text=True, cwd=ROOT, timeout=900, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    payload = json.loads((tmp_path / "out" / "series_ssl-cpu-quick.json").read_text())
    reps = {"ts2vec", "masked_series", "random_init_series_cnn", "random_init_series_transformer", "pca",
            "minirocket"}
    for dataset in ("aeon-italypowerdemand", "ecg-sim"):
        rows = [r for r in payload["rows"] if r["dataset"] == dataset and r["metric"] == "accuracy"]
        assert {(r["representation"], r["fraction"]) for r in rows} == {(rep, f) for rep in reps for f in (0.1, 1.0)}
        assert all(0.0 <= r["mean"] <= 1.0 for r in rows)
    assert len(payload["gains"]) == 8


def test_default_datasets_are_every_shipped_aeon_set_and_the_ecg_simulation():
    from series_ssl import DATASETS, parse_args

    from biolatent.datasets.aeon_ucr import SHIPPED, dataset_name

    assert DATASETS == (*(dataset_name(name) for name in SHIPPED), "ecg-sim")
    assert parse_args([]).datasets == list(DATASETS)
