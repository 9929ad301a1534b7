"""Regression targets in the label-efficiency sweep: task rule, targets, random splits, metrics, probes, sweep."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.linear_model import Ridge

from biolatent.data.columns import REGRESSION_MIN_VALUES, label_task
from biolatent.errors import ConfigError, DataError
from biolatent.evaluate.efficiency import SUMMARY_COLUMNS, headline, run_label_efficiency, summarise
from biolatent.evaluate.metrics import REGRESSION_METRICS, regression_metrics
from biolatent.evaluate.plots import METRIC_LABELS, R2_FLOOR, label_efficiency_figure, plot_label_efficiency
from biolatent.evaluate.probes import REGRESSION_PROBES, RIDGE_ALPHAS, KnnRegressionProbe, RidgeProbe
from biolatent.evaluate.splits import (
    REGRESSION_MIN_TRAIN,
    holdout_split,
    label_subset,
    prepare_targets,
    resolve_task,
)

# ---------------------------------------------------------------------------------------------- task rule


@pytest.mark.parametrize(
    ("values", "task"),
    [
        (np.linspace(0.35, 0.8, 40), "regression"),  # ejection fraction
        (np.arange(REGRESSION_MIN_VALUES + 1).repeat(3), "regression"),  # integer ages, 11 values
        (np.arange(REGRESSION_MIN_VALUES).repeat(3), "classification"),  # 10 integer codes
        ([0.55, 0.61, 0.7, 0.55], "regression"),  # few values, but fractional
        ([0.5, 1.5, 0.5, 1.5], "classification"),  # two values: a binary label whatever they are
        ([0.0, 1.0, np.nan, 1.0], "classification"),  # 0/1 stored as float because of a missing value
        ([True, False, True], "classification"),
        (["site_a", "site_b", "site_c"], "classification"),
        ([f"{v:.2f}" for v in np.linspace(0, 1, 30)], "classification"),  # text stays text
    ],
)
def test_label_task_rule(values, task):
    assert label_task(pd.Series(values, name="x")) == task


def test_label_task_categorical_and_nullable_columns():
    many = np.arange(50).astype(float)
    assert label_task(pd.Series(pd.Categorical(many))) == "classification"  # the user said: categories
    nullable = pd.Series(pd.array([*range(20), None], dtype="Int64"))
    assert label_task(nullable) == "regression"
    assert label_task(pd.Series(pd.array([1, 2, None, 2], dtype="Int64"))) == "classification"


def test_resolve_task_explicit_auto_and_bad_value():
    column = pd.Series(np.linspace(0, 1, 30))
    assert resolve_task(column) == "regression"
    assert resolve_task(column, "classification") == "classification"
    assert resolve_task(pd.Series(["a", "b"]), "regression") == "regression"  # prepare_targets will refuse
    with pytest.raises(ConfigError, match="task must be one of auto, classification, regression; got 'reg'"):
        resolve_task(column, "reg")


# ---------------------------------------------------------------------------------------------- targets


def test_prepare_targets_drops_missing_and_returns_float64():
    targets, keep = prepare_targets(pd.Series([1.5, None, 3.0, np.nan, 7.25], name="wall_thickness"))
    assert targets.dtype == np.float64 and targets.tolist() == [1.5, 3.0, 7.25]
    assert keep.tolist() == [True, False, True, False, True]
    ints, keep = prepare_targets(pd.Series(pd.array([40, None, 61, 55], dtype="Int64"), name="age"))
    assert ints.tolist() == [40.0, 61.0, 55.0] and keep.tolist() == [True, False, True, True]
    text, keep = prepare_targets(pd.Series(["0.5", "", "0.75", "1"], dtype=object, name="ef"))
    assert text.tolist() == [0.5, 0.75, 1.0] and keep.tolist() == [True, False, True, True]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["a", "b", "c"], r"label column 'y' is not numeric: a regression target needs numbers"),
        (pd.Categorical([1.0, 2.0, 3.0]), r"label column 'y' is categorical"),
        ([True, False, True], r"label column 'y' is boolean"),
        ([1.0, np.inf, 2.0, 3.0], r"label column 'y' holds infinite values"),
        ([1.0, None, 2.0], r"label column 'y' has 2 non-missing value\(s\); regression needs at least 3"),
        ([4.0, 4.0, 4.0, None], r"label column 'y' is constant \(4\): nothing to regress"),
    ],
)
def test_prepare_targets_one_line_errors(values, message):
    with pytest.raises(DataError, match=message) as info:
        prepare_targets(pd.Series(values, name="y"))
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------------- splits


def test_unstratified_holdout_sizes_disjoint_and_seeded():
    targets = np.random.default_rng(0).normal(size=103)
    train, test = holdout_split(targets, 0.2, seed=3, stratify=False)
    assert test.size == 21 and train.size == 82
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(103))
    assert np.all(np.diff(test) > 0) and np.all(np.diff(train) > 0)
    # depends only on the number of samples and the seed, not on the target values
    again = holdout_split(-5 * targets + 2, 0.2, seed=3, stratify=False)
    assert np.array_equal(again[1], test)
    assert not np.array_equal(holdout_split(targets, 0.2, seed=4, stratify=False)[1], test)
    assert holdout_split(targets[:3], 0.01, seed=0, stratify=False)[1].size == 1  # at least one test sample
    assert holdout_split(targets[:3], 0.99, seed=0, stratify=False)[0].size == 1  # at least one train sample
    with pytest.raises(DataError, match="integer class codes"):
        holdout_split(targets, 0.2, seed=3)  # float targets cannot be stratified


def test_unstratified_subsets_nested_sized_and_seeded():
    targets = np.random.default_rng(1).normal(size=250)
    pool, _ = holdout_split(targets, 0.2, seed=0, stratify=False)
    subsets = {f: label_subset(pool, targets, f, seed=7, stratify=False) for f in (0.001, 0.05, 0.2, 0.5)}
    assert [s.size for s in subsets.values()] == [REGRESSION_MIN_TRAIN, 10, 40, 100]
    for small, large in zip(list(subsets.values())[:-1], list(subsets.values())[1:], strict=True):
        assert np.isin(small, large).all()  # nested for one seed
    assert all(np.isin(s, pool).all() for s in subsets.values())
    assert np.array_equal(label_subset(pool, targets, 0.2, seed=7, stratify=False), subsets[0.2])
    assert not np.array_equal(label_subset(pool, targets, 0.2, seed=8, stratify=False), subsets[0.2])
    assert np.array_equal(label_subset(pool, targets, 1.0, seed=7, stratify=False), np.sort(pool))
    assert label_subset(pool[:2], targets, 0.1, seed=0, stratify=False).size == 2  # clipped to the pool


# ---------------------------------------------------------------------------------------------- metrics


def test_regression_metrics_match_scipy_and_the_hand_formula():
    rng = np.random.default_rng(2)
    y = rng.normal(3, 2, 60)
    pred = 0.7 * y + rng.normal(0, 1, 60) + 1.0
    m = regression_metrics(y, pred)
    assert tuple(m) == REGRESSION_METRICS
    assert m["pearson_r"] == pytest.approx(stats.pearsonr(y, pred).statistic)
    sse, sst = np.sum((y - pred) ** 2), np.sum((y - y.mean()) ** 2)
    assert m["r2"] == pytest.approx(1 - sse / sst)
    perfect = regression_metrics(y, y)
    assert perfect == pytest.approx({"pearson_r": 1.0, "r2": 1.0})
    mean_only = regression_metrics(y, np.full(60, y.mean()))
    assert math.isnan(mean_only["pearson_r"]) and mean_only["r2"] == pytest.approx(0.0, abs=1e-12)
    flipped = regression_metrics(y, 2 * y.mean() - y)  # mirrored about the mean: residuals 2 (y - mean)
    assert flipped["pearson_r"] == pytest.approx(-1.0) and flipped["r2"] == pytest.approx(-3.0)


def test_regression_metrics_undefined_cases_and_errors():
    constant = regression_metrics(np.ones(5), np.arange(5.0))
    assert math.isnan(constant["pearson_r"]) and math.isnan(constant["r2"])
    single = regression_metrics(np.array([2.0]), np.array([1.0]))
    assert math.isnan(single["pearson_r"]) and math.isnan(single["r2"])
    with pytest.raises(DataError, match=r"predictions must have shape \(4,\)"):
        regression_metrics(np.zeros(4), np.zeros((4, 1)))
    with pytest.raises(DataError, match="NaN or inf"):
        regression_metrics(np.array([1.0, 2.0]), np.array([np.nan, 1.0]))


# ---------------------------------------------------------------------------------------------- probes


def _linear_signal(seed: int, n: int = 800, d: int = 10, noise_fraction: float = 0.05):
    """Targets ``x @ w + e`` with ``var(e) = noise_fraction * var(y)``: the best possible r2 is 1 - that."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    signal = x @ rng.normal(size=d)
    noise_sd = math.sqrt(noise_fraction / (1 - noise_fraction)) * signal.std()
    return x, 50.0 + 10.0 * (signal + rng.normal(0, noise_sd, n))  # a target in its own units (mL, say)


def test_ridge_probe_recovers_a_linear_target():
    x, y = _linear_signal(0)
    pred = RidgeProbe().fit(x[:400], y[:400]).predict(x[400:])
    m = regression_metrics(y[400:], pred)
    assert m["pearson_r"] > 0.95
    assert m["r2"] == pytest.approx(0.95, abs=0.02)  # 1 - noise variance fraction
    assert pred.shape == (400,) and pred.dtype == np.float64
    # predictions come back in the target's units (mean 50, sd about 30), not standardised
    assert abs(pred.mean() - y[400:].mean()) < 0.1 * y.std()
    assert pred.std() == pytest.approx(y[400:].std(), rel=0.1)


def test_probes_score_about_zero_on_shuffled_targets():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(1000, 10)), rng.normal(size=1000)
    for name, probe in REGRESSION_PROBES.items():
        m = regression_metrics(y[500:], probe().fit(x[:500], y[:500]).predict(x[500:]))
        assert abs(m["pearson_r"]) < 0.12, name
        assert m["r2"] < 0.02, name


def test_knn_probe_recovers_a_target_on_directions():
    rng = np.random.default_rng(4)
    angle = rng.uniform(0, np.pi, 600)  # the target lives on the direction, as cosine kNN sees it
    x = np.column_stack([np.cos(angle), np.sin(angle)]) * rng.uniform(0.5, 3, (600, 1))
    x = np.column_stack([x, rng.normal(0, 0.05, (600, 3))])
    m = regression_metrics(angle[300:], KnnRegressionProbe(k=10).fit(x[:300], angle[:300]).predict(x[300:]))
    assert m["pearson_r"] > 0.97 and m["r2"] > 0.9


def test_knn_regression_matches_a_hand_weighted_mean():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(40, 6)), rng.normal(5, 3, 40)
    query = rng.normal(size=(8, 6))
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    q = query / np.linalg.norm(query, axis=1, keepdims=True)
    # k=3 is used as given; k=20 falls to the square-root rule: round(sqrt(40)) = 6 neighbours
    for k, used in ((3, 3), (20, 6)):
        pred = KnnRegressionProbe(k=k).fit(x, y).predict(query)
        for value, dist in zip(pred, 1 - q @ unit.T, strict=True):
            nearest = np.argsort(dist)[:used]
            weights = 1 / dist[nearest]
            assert value == pytest.approx(np.sum(weights * y[nearest]) / weights.sum())
    assert KnnRegressionProbe(k=50).fit(x[:4], y[:4]).predict(query).shape == (8,)  # k clipped to n_train


def test_ridge_probe_is_closed_form_ridge_with_the_leave_one_out_alpha():
    rng = np.random.default_rng(6)
    n, d = 24, 6
    x = rng.normal(size=(n, d)) * rng.uniform(0.1, 5, d)
    y = x[:, 0] - 0.5 * x[:, 1] + rng.normal(0, 1, n)
    probe = RidgeProbe().fit(x, y)
    alpha = probe.model_[-1].alpha_
    scale = np.sqrt(x.var(0).mean())  # one global scale: the dimensions keep their relative variance
    xs = (x - x.mean(0)) / scale
    ys = (y - y.mean()) / y.std()

    def loo_error(a: float) -> float:  # brute force: refit without each sample in turn
        errors = []
        for i in range(n):
            rest = np.arange(n) != i
            errors.append(Ridge(alpha=a).fit(xs[rest], ys[rest]).predict(xs[i : i + 1])[0] - ys[i])
        return float(np.mean(np.square(errors)))

    assert alpha == RIDGE_ALPHAS[int(np.argmin([loo_error(a) for a in RIDGE_ALPHAS]))]
    w = np.linalg.solve(xs.T @ xs + alpha * np.eye(d), xs.T @ ys)  # centred data: no intercept left
    query = rng.normal(size=(5, d))
    expected = ((query - x.mean(0)) / scale) @ w * y.std() + y.mean()
    assert probe.predict(query) == pytest.approx(expected, rel=1e-8)


def test_regression_probes_constant_targets_and_errors():
    x = np.random.default_rng(7).normal(size=(6, 3))
    for probe in (RidgeProbe(), KnnRegressionProbe()):
        assert probe.fit(x, np.full(6, 2.5)).predict(x[:2]).tolist() == [2.5, 2.5]
        with pytest.raises(DataError, match="5 targets for 6 samples"):
            probe.fit(x, np.zeros(5))
        with pytest.raises(DataError, match="targets hold NaN"):
            probe.fit(x, np.array([0, 1, np.nan, 2, 3, 4]))
        with pytest.raises(DataError, match="fitted on 3 features, got 2"):
            probe.fit(x, np.arange(6.0)).predict(x[:, :2])
    with pytest.raises(RuntimeError, match="call fit"):
        RidgeProbe().predict(x)
    with pytest.raises(DataError, match="alphas must be positive"):
        RidgeProbe(alphas=(0.0, 1.0))


# ---------------------------------------------------------------------------------------------- the sweep

FRACTIONS = [0.01, 0.1, 1.0]
SEEDS = [0, 1, 2]


@pytest.fixture(scope="module")
def sweep():
    x, y = _linear_signal(8, n=300)
    noise = np.random.default_rng(9).normal(size=(300, 10))
    calls = []

    def finetune(train_idx, test_idx, seed):
        calls.append((train_idx.copy(), test_idx.copy(), seed))
        return RidgeProbe().fit(x[train_idx], y[train_idx]).predict(x[test_idx])

    per_seed = run_label_efficiency({"ssl": x, "random_init": noise}, y, None, FRACTIONS, SEEDS,
                                    finetune=finetune, task="regression")
    return per_seed, calls, x, y, noise


def test_regression_sweep_table_metrics_and_splits(sweep):
    per_seed, calls, *_ = sweep
    assert set(per_seed.metric) == set(REGRESSION_METRICS)
    assert len(per_seed) == 5 * len(FRACTIONS) * len(SEEDS) * len(REGRESSION_METRICS)
    assert len({tuple(test) for _, test, _ in calls}) == 1 and calls[0][1].size == 60  # one fixed test set
    assert all(np.intersect1d(train, test).size == 0 for train, test, _ in calls)
    smallest = [train for train, _, _ in calls[: len(SEEDS)]]
    assert [t.size for t in smallest] == [REGRESSION_MIN_TRAIN] * 3  # 1% of 240 rounds below the minimum
    assert len({tuple(t) for t in smallest}) == 3  # seeds draw different subsets
    assert calls[-1][0].size == 240  # fraction 1.0: the whole pool


def test_regression_sweep_ssl_beats_noise_and_is_deterministic(sweep):
    per_seed, _, x, y, noise = sweep
    r = per_seed[(per_seed.metric == "pearson_r") & (per_seed.fraction == 1.0)]
    mean = r.groupby(["representation", "probe"])["value"].mean()
    assert mean[("ssl", "linear")] > 0.95 and mean[("supervised", "finetune")] > 0.95
    assert abs(mean[("random_init", "linear")]) < 0.3
    again = run_label_efficiency({"ssl": x, "random_init": noise}, y, None, FRACTIONS, SEEDS, task="regression")
    expected = per_seed[per_seed.representation != "supervised"].reset_index(drop=True)
    pd.testing.assert_frame_equal(again, expected)
    other = run_label_efficiency({"ssl": x}, y, None, [0.1], [0], task="regression", split_seed=1)
    first = per_seed[(per_seed.representation == "ssl") & (per_seed.fraction == 0.1) & (per_seed.seed == 0)]
    assert not np.allclose(other["value"].to_numpy(), first["value"].to_numpy())


def test_regression_summary_order_headline_and_plot(sweep):
    summary = summarise(sweep[0])
    assert list(summary.columns) == SUMMARY_COLUMNS  # the whole pool under 3 subset seeds is one value
    assert (summary.n_seeds == np.where(summary.fraction == 1.0, 1, 3)).all()
    first = summary[(summary.representation == "ssl") & (summary.probe == "linear")]
    assert first.metric.tolist() == ["pearson_r"] * 3 + ["r2"] * 3 and first.fraction.tolist() == FRACTIONS * 2
    head = headline(summary)
    assert head["metric"] == "pearson_r" and head["fraction"] == 0.1
    expected = first[(first.metric == "pearson_r") & (first.fraction == 0.1)]["mean"].item()
    assert head["ssl_linear"] == pytest.approx(expected)
    assert head["ssl_fraction_of_supervised"] == pytest.approx(expected / head["supervised_finetune"])
    assert headline(summary, metric="r2")["metric"] == "r2"
    labels = [ax.get_ylabel() for ax in label_efficiency_figure(summary).axes]
    assert labels == [METRIC_LABELS["pearson_r"], METRIC_LABELS["r2"]]


def test_headline_ratio_is_none_when_the_supervised_value_is_not_positive():
    rows = [("ssl", "linear", 0.1, "pearson_r", 0.4, 0.3, 0.5, 3),
            ("supervised", "finetune", 0.1, "pearson_r", -0.1, -0.2, 0.0, 3)]
    rows = [(*row, "label_subset", "transductive") for row in rows]
    head = headline(pd.DataFrame(rows, columns=SUMMARY_COLUMNS))
    assert head["ssl_linear"] == 0.4 and head["ssl_fraction_of_supervised"] is None


def test_regression_sweep_rejects_bad_input():
    y = np.linspace(0, 1, 20)
    x = np.zeros((20, 2))
    with pytest.raises(DataError, match="task must be one of classification, regression; got 'ranking'"):
        run_label_efficiency({"ssl": x}, y, None, [0.5], [0], task="ranking")
    with pytest.raises(DataError, match="integer class codes"):
        run_label_efficiency({"ssl": x}, y, 2, [0.5], [0])  # float targets sent to classification
    with pytest.raises(DataError, match="NaN or inf"):
        run_label_efficiency({"ssl": x}, np.r_[y[:-1], np.nan], None, [0.5], [0], task="regression")
    with pytest.raises(DataError, match=r"finetune returned shape \(4, 2\); expected \(4,\)"):
        run_label_efficiency({"ssl": x}, y, None, [0.5], [0], task="regression",
                             finetune=lambda tr, te, s: np.zeros((te.size, 2)))


def _summary_rows(metric_values: dict[str, list[float]]) -> pd.DataFrame:
    rows = []
    for metric, values in metric_values.items():
        for fraction, value in zip((0.1, 1.0), values, strict=True):
            rows.append(("ssl", "linear", fraction, metric, value, value - 0.1, value + 0.1, 3, "label_subset",
                         "transductive"))
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def test_plot_axes_name_their_metric_and_r2_is_floored(tmp_path):
    regression = _summary_rows({"pearson_r": [0.2, 0.8], "r2": [-5.0, 0.6]})
    figure = label_efficiency_figure(regression)
    assert [ax.get_ylabel() for ax in figure.axes] == ["Pearson r", "R² (coefficient of determination)"]
    assert figure.axes[1].get_ylim()[0] == R2_FLOOR
    mild = label_efficiency_figure(_summary_rows({"pearson_r": [0.2, 0.8], "r2": [-0.3, 0.6]}))
    assert mild.axes[1].get_ylim()[0] < -0.3  # autoscaled: nothing to cut
    classification = _summary_rows({"balanced_accuracy": [0.6, 0.9], "auroc": [0.7, 0.95], "f1": [0.5, 0.9]})
    labels = [ax.get_ylabel() for ax in label_efficiency_figure(classification).axes]
    assert labels == ["balanced accuracy", "AUROC (macro OvR)"]
    assert plot_label_efficiency(regression, tmp_path / "eff.png").read_bytes()[:4] == b"\x89PNG"
