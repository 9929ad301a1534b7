"""data.modality: series with one sample per series (.ts, .npy, .npz, long table) and the old one-series table
layout, side by side; bad inputs are one-line DataErrors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from biolatent.config import SeriesData
from biolatent.data.loaders import load_samples
from biolatent.data.series_sets import resample
from biolatent.errors import DataError


def load(path: Path, **kwargs):
    return load_samples(SeriesData(path=path, **kwargs))


def test_ts_file_gives_one_sample_per_series_and_a_label_column(tmp_path):
    path = tmp_path / "x.ts"
    path.write_text("@dimensions 2\n@classLabel true up down\n@data\n0,1,2,3:3,2,1,0:up\n3,2,1,0:0,0,0,0:down\n")
    samples = load(path)
    assert samples.x.shape == (2, 2, 4) and samples.x.dtype.is_floating_point
    assert samples.obs["label"].tolist() == ["up", "down"]
    assert samples.info.modality == "series" and samples.info.channels == 2 and samples.info.max_length == 4
    np.testing.assert_array_equal(samples.x[0, 1].numpy(), [3, 2, 1, 0])


def test_unequal_lengths_are_resampled_onto_the_longest_and_lengths_kept(tmp_path):
    path = tmp_path / "x.ts"
    path.write_text("@classLabel true a\n@data\n0,1,2,3,4:a\n0,4:a\n10,20,30:a\n")
    samples = load(path)
    assert samples.x.shape == (3, 1, 5) and samples.obs["length"].tolist() == [5, 2, 3]
    # a straight line resampled stays the same straight line, end points kept
    np.testing.assert_allclose(samples.x[1, 0].numpy(), [0, 1, 2, 3, 4])
    np.testing.assert_allclose(samples.x[2, 0].numpy(), [10, 15, 20, 25, 30])
    assert load(path, length=3).x.shape == (3, 1, 3)


def test_resample_matches_interpolation_by_hand():
    series = np.array([[0.0, 2.0, 1.0]])
    out = resample(series, 5)  # new points at 0, .25, .5, .75, 1 of the span; old at 0, .5, 1
    np.testing.assert_allclose(out, [[0.0, 1.0, 2.0, 1.5, 1.0]])


def test_npy_and_npz_and_long_table_agree(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 3, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "x.npz", x=x, ids=np.array(list("abcd")), labels=np.array([0, 1, 0, 1]))
    rows = [{"id": sid, "time": t, **{f"c{c}": x[i, c, t] for c in range(3)}}
            for i, sid in enumerate("abcd") for t in range(6)]
    pd.DataFrame(rows).sample(frac=1.0, random_state=0).to_csv(tmp_path / "long.tsv", sep="\t", index=False)
    from_npy, from_npz, from_table = load(tmp_path / "x.npy"), load(tmp_path / "x.npz"), load(tmp_path / "long.tsv")
    for samples in (from_npy, from_npz, from_table):
        np.testing.assert_allclose(samples.x.numpy(), x, rtol=1e-6)
    assert from_npz.ids == list("abcd") == from_table.ids and from_npz.obs["label"].tolist() == ["0", "1", "0", "1"]
    assert load(tmp_path / "long.tsv", value_columns=["c2"]).x.shape == (4, 1, 6)
    np.save(tmp_path / "flat.npy", x[:, 0])
    assert load(tmp_path / "flat.npy").x.shape == (4, 1, 6)


def test_npz_lengths_allow_nan_padding_that_never_reaches_the_data(tmp_path):
    x = np.full((2, 1, 5), np.nan)
    x[0, 0, :5] = [1, 2, 3, 4, 5]
    x[1, 0, :3] = [1, 2, 3]
    np.savez(tmp_path / "x.npz", x=x, lengths=np.array([5, 3]))
    samples = load(tmp_path / "x.npz")
    assert np.isfinite(samples.x.numpy()).all() and samples.obs["length"].tolist() == [5, 3]
    np.testing.assert_allclose(samples.x[1, 0].numpy(), [1, 1.5, 2, 2.5, 3])


def test_old_one_series_table_still_loads_as_points(tmp_path):
    path = tmp_path / "series.tsv"
    pd.DataFrame({"value": [0.0, 1.0, 2.0], "is_anomaly": [0, 0, 1]}).to_csv(path, sep="\t", index=False)
    samples = load(path)
    assert samples.x.shape == (3, 1) and samples.info.n_features == 1 and samples.info.channels is None
    assert samples.obs["is_anomaly"].tolist() == [0, 0, 1]
    # a long table read as points when asked (layout wins over the auto rule), and vice versa
    long = tmp_path / "long.tsv"
    pd.DataFrame({"id": ["a", "a", "b", "b"], "time": [0, 1, 0, 1], "value": [1.0, 2.0, 3.0, 4.0]}).to_csv(
        long, sep="\t", index=False)
    assert load(long).x.shape == (2, 1, 2)
    assert load(long, layout="points").x.shape == (4, 1)
    with pytest.raises(DataError, match="has no column 'id'"):
        load(path, layout="samples")


@pytest.mark.parametrize(("name", "write", "message"), [
    ("nan.npy", lambda p: np.save(p, np.array([[1.0, np.nan, 2.0]])), "missing"),
    ("ragged.npz", lambda p: np.savez(p, x=np.array([[1.0, 2.0, np.nan]])), "give .npz lengths"),
    ("ragged.npy", lambda p: np.save(p, np.array([[1.0, 2.0], [1.0]], dtype=object), allow_pickle=True),
     "ragged series"),
    ("lengths.npz", lambda p: np.savez(p, x=np.zeros((2, 1, 4)), lengths=np.array([4, 9])), "'lengths' must be"),
    ("nox.npz", lambda p: np.savez(p, y=np.zeros((2, 4))), "needs an array 'x'"),
    ("short.npy", lambda p: np.save(p, np.zeros((2, 1, 1))), "T >= 2"),
    ("bad.ts", lambda p: p.write_text("@classLabel true a\n@data\n1,?,3:a\n"), "missing"),
    ("dup.tsv", lambda p: pd.DataFrame({"id": ["a", "a"], "time": [0, 0], "v": [1.0, 2.0]}).to_csv(
        p, sep="\t", index=False), "two rows at time"),
    ("x.json", lambda p: p.write_text("{}"), "must be a .ts"),
])
def test_bad_inputs_are_one_line_errors(tmp_path, name, write, message):
    path = tmp_path / name
    write(path)
    with pytest.raises(DataError, match=message) as info:
        load(path, layout="samples")
    assert "\n" not in str(info.value)
