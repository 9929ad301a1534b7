"""The robustness analysis (evaluate/robustness.py) against independent computations on small synthetic data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score

from biolatent.errors import DataError
from biolatent.evaluate.efficiency import run_label_efficiency
from biolatent.evaluate.probes import LinearProbe
from biolatent.evaluate.robustness import (
    PER_SEED_COLUMNS,
    ROBUSTNESS_COLUMNS,
    augmentation_ablation,
    check_noise_levels,
    cross_site,
    flip_labels,
    label_noise,
    noise_degradation,
    site_codes,
    site_leakage,
    summarise_robustness,
)
from biolatent.evaluate.splits import holdout_split


def _data(n: int = 120, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    rng.shuffle(labels)
    sites = rng.integers(0, 2, n)
    return rng, labels, sites


def _mean(table: pd.DataFrame, **where) -> float:
    rows = table
    for key, value in where.items():
        rows = rows[rows[key] == value]
    assert len(rows), where
    return float(rows["value"].mean())


def test_a_representation_that_encodes_the_site_leaks_it_and_noise_does_not():
    rng, _, sites = _data()
    encoded = np.eye(2)[sites] * 3 + rng.normal(scale=0.1, size=(sites.size, 2))
    noise = rng.normal(size=(sites.size, 4))
    table = site_leakage({"site_code": encoded, "noise": noise}, sites, 2, seeds=[0, 1, 2])
    assert list(table.columns) == PER_SEED_COLUMNS and set(table["setting"]) == {"all"}
    for probe in ("linear", "knn"):
        assert _mean(table, representation="site_code", probe=probe, metric="balanced_accuracy") > 0.97
        assert _mean(table, representation="site_code", probe=probe, metric="auroc") > 0.97
        assert abs(_mean(table, representation="noise", probe=probe, metric="balanced_accuracy") - 0.5) < 0.2


def test_cross_site_holds_out_each_site_and_matches_a_probe_fitted_by_hand():
    rng, labels, sites = _data()
    x = np.eye(3)[labels] * 2 + rng.normal(scale=0.5, size=(labels.size, 3))
    table = cross_site({"rep": x}, labels, 3, sites, ["A", "B"], fraction=1.0, seeds=[0])
    assert set(table["setting"]) == {"A", "B"} and set(table["check"]) == {"cross_site"}
    assert set(table["metric"]) == {"balanced_accuracy", "auroc"}
    for code, name in enumerate(["A", "B"]):
        train, test = sites != code, sites == code
        # the linear probe fitted directly on the other site, scored on this one
        proba = LinearProbe().fit(x[train], labels[train]).predict_proba(x[test], 3)
        expected = balanced_accuracy_score(labels[test], proba.argmax(axis=1))
        got = _mean(table, setting=name, probe="linear", metric="balanced_accuracy")
        assert got == pytest.approx(expected)
        # an independent plain logistic regression agrees on this easy problem
        plain = LogisticRegression(max_iter=1000).fit(x[train], labels[train]).predict(x[test])
        assert abs(balanced_accuracy_score(labels[test], plain) - got) < 0.05


def test_a_label_cue_that_flips_between_sites_does_not_transfer():
    rng, labels, sites = _data()
    binary = labels % 2
    sign = np.where(sites == 0, 1.0, -1.0)  # the cue's direction depends on the site: a spurious, site-bound cue
    x = (sign * (2 * binary - 1))[:, None] * 2 + rng.normal(scale=0.3, size=(labels.size, 1))
    table = cross_site({"rep": x}, binary, 2, sites, ["A", "B"], fraction=1.0, seeds=[0])
    assert _mean(table, probe="linear", metric="balanced_accuracy") < 0.2
    within = run_label_efficiency({"rep": x[sites == 0]}, binary[sites == 0], 2, [1.0], [0])
    assert within[(within.probe == "linear") & (within.metric == "balanced_accuracy")]["value"].iloc[0] > 0.9


def test_flip_labels_flips_exactly_the_fraction_of_the_rows_to_other_classes():
    labels = np.arange(200) % 4
    rows = np.arange(100)
    for fraction in (0.0, 0.1, 0.35):
        noisy = flip_labels(labels, rows, fraction, 4, seed=3)
        changed = np.flatnonzero(noisy != labels)
        assert changed.size == round(fraction * rows.size)
        assert set(changed) <= set(rows)  # rows outside (the test set) are untouched
    noisy = flip_labels(labels, np.arange(200), 0.5, 4, seed=0)
    # symmetric: the new class is uniform over the 3 others (chi-square-ish tolerance on 100 flips)
    changed = noisy != labels
    shifts = (noisy[changed] - labels[changed]) % 4
    assert set(shifts) == {1, 2, 3} and np.bincount(shifts, minlength=4)[1:].min() > 15
    assert np.array_equal(flip_labels(labels, rows, 0.0, 4, seed=1), labels)


def test_no_noise_gives_the_noise_free_sweep_and_noise_degrades():
    rng, labels, _ = _data()
    x = np.eye(3)[labels] * 2 + rng.normal(scale=0.7, size=(labels.size, 3))
    table = label_noise({"rep": x}, labels, 3, [0.6], fraction=1.0, seeds=[0, 1])
    assert set(table["setting"]) == {"0", "0.6"}  # the clean reference is always there
    for seed in (0, 1):
        clean = run_label_efficiency({"rep": x}, labels, 3, [1.0], [seed], split=holdout_split(labels, 0.2, seed))
        clean = clean[clean.metric.isin(["balanced_accuracy", "auroc"])]
        ours = table[(table.setting == "0") & (table.seed == seed)]
        np.testing.assert_allclose(ours["value"].to_numpy(), clean["value"].to_numpy())
    assert (_mean(table, setting="0.6", probe="linear", metric="balanced_accuracy")
            < _mean(table, setting="0", probe="linear", metric="balanced_accuracy") - 0.1)
    drops = noise_degradation(table)
    assert (drops[drops.setting == "0"]["value"] == 0).all()
    assert set(drops["metric"]) == {"balanced_accuracy_drop", "auroc_drop"}
    summary = summarise_robustness(pd.concat([table, drops], ignore_index=True))
    assert list(summary.columns) == ROBUSTNESS_COLUMNS


def test_the_supervised_baseline_is_trained_on_the_noisy_labels():
    _, labels, _ = _data(60)
    seen = []

    def finetune_for(noisy):
        seen.append(noisy)
        return lambda train_idx, test_idx, seed: np.eye(3)[noisy[test_idx]]  # predicts the label it was given

    label_noise({"rep": np.eye(3)[labels]}, labels, 3, [0.5], fraction=1.0, seeds=[0], finetune_for=finetune_for)
    assert len(seen) == 2 and np.array_equal(seen[0], labels) and (seen[1] != labels).sum() > 0


def test_ablation_rows_name_each_variant():
    rng, labels, _ = _data(60)
    embeddings = {"all_views": np.eye(3)[labels] + rng.normal(scale=0.1, size=(60, 3)),
                  "no_crop": rng.normal(size=(60, 3))}
    table = augmentation_ablation(embeddings, labels, 3, seeds=[0, 1])
    assert set(table["setting"]) == {"all_views", "no_crop"} and set(table["representation"]) == {"ssl"}
    assert (_mean(table, setting="all_views", metric="balanced_accuracy")
            > _mean(table, setting="no_crop", metric="balanced_accuracy"))


def test_bad_noise_levels_and_a_single_site_are_errors():
    assert check_noise_levels([0.4, 0.1]) == [0.0, 0.1, 0.4]
    for bad in ([1.0], [-0.1], [0.2, 1.5], [], [float("nan")]):
        with pytest.raises(DataError, match=r"\[0, 1\)"):
            check_noise_levels(bad)
    with pytest.raises(DataError, match="single site"):
        site_codes(pd.Series(["a"] * 5, name="site"))
    with pytest.raises(DataError, match="empty"):
        site_codes(pd.Series(["a", None, "b"], name="site"))
    codes, names = site_codes(pd.Series(["s2", "s1", "s2"], name="site"))
    assert names == ["s1", "s2"] and codes.tolist() == [1, 0, 1]


def test_ablation_variants_leave_out_families_the_config_already_switches_off():
    from biolatent.build import load_config
    from biolatent.data.samples import DataInfo
    from biolatent.errors import ConfigError
    from biolatent.workflows.robustness import ablation_variants

    raw = {"data": {"modality": "volume", "path": "."}, "method": {"name": "simclr"}, "model": {"name": "resnet"},
           "views": {"bias_field_prob": 0.0, "noise_prob": 0.0}}
    config = load_config(raw)
    info = DataInfo("volume", channels=1, image_size=16, spatial_dims=3)
    variants = ablation_variants(config, info)
    assert "no_bias_field" not in variants and "no_noise" not in variants
    assert variants["all_views"] == {} and variants["no_crop"] == {"crop_scale": [1.0, 1.0]}
    assert set(ablation_variants(config, info, ["gamma"])) == {"all_views", "no_gamma"}
    with pytest.raises(ConfigError, match="unknown view family"):
        ablation_variants(config, info, ["stain_jitter"])


def test_cross_site_of_a_continuous_label_scores_r_and_r2():
    rng, _, sites = _data()
    target = rng.normal(size=sites.size)
    x = np.c_[target, rng.normal(scale=0.1, size=sites.size)]
    table = cross_site({"rep": x}, target, None, sites, ["A", "B"], fraction=1.0, seeds=[0], task="regression")
    assert set(table["metric"]) == {"pearson_r", "r2"}
    assert _mean(table, probe="linear", metric="pearson_r") > 0.95
