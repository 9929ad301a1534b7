"""The label-efficiency sweep, its summary (exact columns, t intervals), headline, PCA floor, quality, plots."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.decomposition import PCA

from biolatent.errors import DataError
from biolatent.evaluate.efficiency import (
    SUMMARY_COLUMNS,
    headline,
    one_draw_per_fit,
    pca_features,
    read_efficiency,
    run_label_efficiency,
    summarise,
    write_efficiency,
)
from biolatent.evaluate.plots import plot_label_efficiency, plot_spectrum
from biolatent.evaluate.probes import LinearProbe
from biolatent.evaluate.quality import effective_rank, singular_spectrum

FRACTIONS = [0.02, 0.1, 1.0]
SEEDS = [0, 1, 2]


@pytest.fixture(scope="module")
def sweep():
    rng = np.random.default_rng(0)
    n, k = 240, 3
    y = rng.integers(0, k, n).astype(np.int64)
    good = rng.normal(0, 6, (k, 8))[y] + rng.normal(size=(n, 8))
    calls = []

    def finetune(train_idx, test_idx, seed):
        calls.append((train_idx.copy(), test_idx.copy(), seed))
        return LinearProbe().fit(good[train_idx], y[train_idx]).predict_proba(good[test_idx], k)

    messages = []
    per_seed = run_label_efficiency(
        {"ssl": good, "random_init": rng.normal(size=(n, 8))}, y, k, FRACTIONS, SEEDS,
        finetune=finetune, progress=messages.append,
    )
    return per_seed, calls, y, messages


def test_per_seed_table_shape_and_columns(sweep):
    per_seed, _, _, messages = sweep
    assert list(per_seed.columns) == ["representation", "probe", "fraction", "seed", "metric", "value"]
    combos = 2 * 2 + 1  # two representations x two probes + supervised
    assert len(per_seed) == combos * len(FRACTIONS) * len(SEEDS) * 4
    assert set(zip(per_seed.representation, per_seed.probe, strict=True)) == {
        ("ssl", "linear"), ("ssl", "knn"), ("random_init", "linear"), ("random_init", "knn"),
        ("supervised", "finetune")}
    assert len(messages) == len(FRACTIONS) * len(SEEDS)


def test_fixed_test_set_and_minimum_one_label_per_class(sweep):
    _, calls, y, _ = sweep
    test_sets = {tuple(test) for _, test, _ in calls}
    assert len(test_sets) == 1  # same test samples for every fraction and seed
    for train, test, _ in calls:
        assert np.intersect1d(train, test).size == 0
        assert set(y[train]) == {0, 1, 2}
    smallest = [train for train, _, _ in calls[: len(SEEDS)]]
    assert all(len(t) == 3 for t in smallest)  # 2% of 192 rounds to <1 per class -> one each
    assert len({tuple(t) for t in smallest}) > 1  # seeds draw different subsets


def test_ssl_beats_random_init_and_reaches_supervised(sweep):
    per_seed = sweep[0]
    ba = per_seed[(per_seed.metric == "balanced_accuracy") & (per_seed.fraction == 0.1)]
    mean = ba.groupby(["representation", "probe"])["value"].mean()
    assert mean[("ssl", "linear")] > 0.9 and mean[("ssl", "knn")] > 0.9
    assert mean[("random_init", "linear")] < 0.6


def test_summarise_exact_columns_and_t_interval(sweep):
    per_seed = sweep[0]
    summary = summarise(per_seed)
    assert list(summary.columns) == SUMMARY_COLUMNS
    full = summary.fraction == 1.0  # one fit under three subset seeds: one value, no interval
    assert (summary.n_seeds[~full] == 3).all() and (summary.n_seeds[full] == 1).all() and len(summary) == 5 * 3 * 4
    assert summary.loc[full & (summary.probe == "linear"), "ci_low"].isna().all()
    row = summary[(summary.representation == "random_init") & (summary.probe == "linear")
                  & (summary.fraction == 0.1) & (summary.metric == "auroc")].iloc[0]
    values = per_seed[(per_seed.representation == "random_init") & (per_seed.probe == "linear")
                      & (per_seed.fraction == 0.1) & (per_seed.metric == "auroc")]["value"].to_numpy()
    lo, hi = stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
    assert row["mean"] == pytest.approx(values.mean())
    assert (row.ci_low, row.ci_high) == pytest.approx((lo, hi))


def test_write_read_and_headline(sweep, tmp_path):
    summary = summarise(sweep[0])
    path = write_efficiency(summary, tmp_path / "efficiency.tsv")
    table = pd.read_csv(path, sep="\t")
    assert list(table.columns) == SUMMARY_COLUMNS
    pd.testing.assert_frame_equal(read_efficiency(path), table)
    assert [p.name for p in tmp_path.iterdir()] == ["efficiency.tsv"]  # no temp file left behind
    head = headline(table, n_classes=3)
    assert head["fraction"] == 0.1 and head["metric"] == "balanced_accuracy" and head["chance"] == pytest.approx(1 / 3)
    expected = table[(table.representation == "ssl") & (table.probe == "linear") & (table.fraction == 0.1)
                     & (table.metric == "balanced_accuracy")]["mean"].item()
    assert head["ssl_linear"] == pytest.approx(expected)
    assert head["ssl_fraction_of_supervised"] == pytest.approx(expected / head["supervised_finetune"])
    assert headline(table, fraction=0.05)["fraction"] == 0.1  # nearest on a log scale: 0.02 vs 0.1
    with pytest.raises(DataError, match="columns"):
        write_efficiency(table.drop(columns="n_seeds"), tmp_path / "bad.tsv")


def test_sweep_rejects_bad_input():
    y = np.array([0, 1] * 10)
    with pytest.raises(DataError, match="shape"):
        run_label_efficiency({"ssl": np.zeros((5, 2))}, y, 2, [0.5], [0])
    with pytest.raises(DataError, match="fractions"):
        run_label_efficiency({"ssl": np.zeros((20, 2))}, y, 2, [0.0], [0])
    with pytest.raises(DataError, match="unknown probe"):
        run_label_efficiency({"ssl": np.zeros((20, 2))}, y, 2, [0.5], [0], probes=("svm",))


def test_pca_features_equal_sklearn_on_standardised_data():
    rng = np.random.default_rng(4)
    raw = rng.normal(size=(80, 12)) * rng.uniform(0.1, 10, 12)
    feats = pca_features(raw, n_components=5, seed=0)
    scaled = (raw - raw.mean(0)) / raw.std(0)
    ref = PCA(5).fit_transform(scaled)
    assert feats.shape == (80, 5) and feats.dtype == np.float32
    assert np.allclose(np.abs(feats), np.abs(ref), atol=1e-4)
    assert pca_features(raw, n_components=500).shape == (80, 12)


def test_effective_rank_of_equal_singular_values_is_the_rank():
    rng = np.random.default_rng(5)
    u, _ = np.linalg.qr(rng.normal(size=(100, 100)))
    v, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    for r in (1, 4, 9):
        x = u[:, :r] @ (3.0 * np.eye(r)) @ v[:r]
        assert effective_rank(x) == pytest.approx(r, rel=1e-6)
    s = np.array([4.0, 2.0, 1.0, 1.0])
    x = u[:, :4] @ np.diag(s) @ v[:4]
    p = s / s.sum()
    assert effective_rank(x) == pytest.approx(np.exp(-(p * np.log(p)).sum()))
    assert singular_spectrum(x)[:4] == pytest.approx(s)
    with pytest.raises(DataError, match="all zero"):
        effective_rank(np.zeros((4, 3)))


def test_plots_write_png_files(sweep, tmp_path):
    summary = summarise(sweep[0])
    for path in (plot_label_efficiency(summary, tmp_path / "eff.png"),
                 plot_spectrum(np.random.default_rng(0).normal(size=(50, 6)), tmp_path / "spec.png")):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sources_name_what_varied_and_old_tables_still_read(tmp_path):
    from biolatent.evaluate.efficiency import LEGACY_SUMMARY_COLUMNS, sources

    rows = pd.DataFrame({"fraction": [0.5] * 4, "pretrain_seed": [0, 0, 1, 1], "test_split": [0, 0, 0, 0],
                         "seed": [0, 1, 0, 1]})
    assert sources(rows) == "pretrain_seed+label_subset"
    whole = rows.assign(representation="ssl", probe="linear", metric="auroc", value=0.7, fraction=1.0)
    assert sources(one_draw_per_fit(whole)) == "pretrain_seed"  # the whole pool: the subset does not vary
    assert sources(rows.drop(columns=["pretrain_seed", "test_split"]).iloc[:1]) == "none"
    old = tmp_path / "efficiency.tsv"
    old.write_text("\t".join(LEGACY_SUMMARY_COLUMNS) + "\nssl\tlinear\t0.1\tf1\t0.5\t0.4\t0.6\t3\n")
    table = read_efficiency(old)  # written before sources/protocol existed: what it was
    assert table.loc[0, "sources"] == "label_subset" and table.loc[0, "protocol"] == "transductive"


def test_the_whole_pool_under_several_subset_seeds_is_not_pseudo_replicated():
    # 3 pre-training seeds x 4 subset seeds; at fraction 1.0 every subset seed repeats the fit of its pre-training
    # seed (a deterministic probe: equal values), below it the subsets differ
    rng = np.random.default_rng(3)
    rows = []
    for fraction in (0.5, 1.0):
        for pretrain_seed, fit in enumerate([0.70, 0.74, 0.79]):
            for seed in range(4):
                value = fit if fraction == 1.0 else fit + rng.normal(0, 0.02)
                rows.append(("ssl", "linear", fraction, seed, "auroc", value, pretrain_seed, 0))
    per_seed = pd.DataFrame(rows, columns=["representation", "probe", "fraction", "seed", "metric", "value",
                                           "pretrain_seed", "test_split"])
    summary = summarise(per_seed).set_index("fraction")
    fits = np.array([0.70, 0.74, 0.79])  # the three independent values: t interval with 2 degrees of freedom
    lo, hi = stats.t.interval(0.95, 2, loc=fits.mean(), scale=stats.sem(fits))
    assert summary.loc[1.0, "n_seeds"] == 3 and summary.loc[1.0, "sources"] == "pretrain_seed"
    assert (summary.loc[1.0, "ci_low"], summary.loc[1.0, "ci_high"]) == pytest.approx((lo, hi))
    half = per_seed[per_seed.fraction == 0.5]["value"].to_numpy()  # below 1.0 all 12 rows count
    lo, hi = stats.t.interval(0.95, 11, loc=half.mean(), scale=stats.sem(half))
    assert summary.loc[0.5, "n_seeds"] == 12
    assert (summary.loc[0.5, "ci_low"], summary.loc[0.5, "ci_high"]) == pytest.approx((lo, hi))


def test_repeats_of_the_whole_training_split_are_one_draw():
    rows = [{"representation": "genome", "probe": "linear", "fraction": f, "metric": "auroc", "test_split": split,
             "seed": seed, "pretrain_seed": pd.NA, "value": 0.5 + 0.1 * split + (0.01 * seed if f < 1 else 0.0)}
            for f in (0.1, 1.0) for split in range(2) for seed in range(3)]
    draws = one_draw_per_fit(pd.DataFrame(rows))
    whole = draws[draws.fraction == 1.0].sort_values("test_split")
    assert len(whole) == 2 and whole.value.tolist() == pytest.approx([0.5, 0.6]) and (whole.seed == 0).all()
    assert whole.pretrain_seed.isna().all() and (draws.fraction == 0.1).sum() == 6
    assert list(draws.columns) == list(pd.DataFrame(rows).columns)
