"""The simulated ECG rhythms are what they claim: heart rates in each class's range, irregular RR intervals only in
atrial fibrillation, no P wave there, and R peaks that a peak detector finds in the signal itself."""

from __future__ import annotations

import numpy as np
from scipy.signal import find_peaks

from biolatent.config import SeriesData
from biolatent.data.loaders import load_samples
from biolatent.data.simulate.ecg import HEART_RATES, RHYTHMS, simulate_ecg, write_ecg_dataset


def rr_cv(beats: np.ndarray) -> float:
    rr = np.diff(beats)
    return float(rr.std() / rr.mean())


def test_classes_have_their_rates_and_rr_variability():
    data = simulate_ecg(80, seed=3, seconds=10.0)
    assert data.x.shape == (80, 1, 800) and sorted(set(data.labels)) == sorted(RHYTHMS)
    assert all((data.labels == r).sum() == 20 for r in RHYTHMS)
    for rhythm in RHYTHMS:
        idx = np.flatnonzero(data.labels == rhythm)
        rates = [60.0 / np.diff(data.beat_times[i]).mean() for i in idx]
        low, high = HEART_RATES[rhythm]
        assert low * 0.85 < np.median(rates) < high * 1.15, rhythm
        cv = np.median([rr_cv(data.beat_times[i]) for i in idx])
        assert (cv > 0.12) if rhythm == "afib" else (cv < 0.06), (rhythm, cv)


def test_r_peaks_are_found_in_the_signal():
    data = simulate_ecg(40, seed=4, seconds=8.0, fs=100.0)
    recall, precision = [], []
    for signal, beats in zip(data.x[:, 0], data.beat_times, strict=True):
        peaks = find_peaks(signal, prominence=0.7, distance=int(0.22 * data.fs))[0] / data.fs
        inside = beats[(beats > 0.1) & (beats < 7.9)]  # beats cut at the ends are not counted
        recall.append(np.mean([np.abs(peaks - b).min() < 0.03 for b in inside]))
        found = peaks[(peaks > 0.1) & (peaks < 7.9)]
        precision.append(np.mean([np.abs(beats - q).min() < 0.03 for q in found]))
    assert np.mean(recall) > 0.98 and np.mean(precision) > 0.95


def test_afib_has_no_p_wave_before_its_r_peaks():
    data = simulate_ecg(40, seed=5, seconds=8.0, fs=100.0)

    def p_amplitude(i: int) -> float:  # mean signal 0.2 s before each R minus 0.12 s before it (between P and Q)
        values = [data.x[i, 0, int((r - 0.2) * 100)] - data.x[i, 0, int((r - 0.12) * 100)]
                  for r in data.beat_times[i] if r > 0.3]
        return float(np.mean(values))

    afib = [p_amplitude(i) for i in np.flatnonzero(data.labels == "afib")]
    sinus = [p_amplitude(i) for i in np.flatnonzero(data.labels == "normal")]
    assert np.mean(sinus) > 0.08 and abs(np.mean(afib)) < 0.05


def test_written_dataset_loads_as_series_with_labels(tmp_path):
    path = write_ecg_dataset(tmp_path / "ecg.npz", 8, seed=0, seconds=2.0)
    samples = load_samples(SeriesData(path=path))
    assert samples.x.shape == (8, 1, 160) and set(samples.obs["label"]) <= set(RHYTHMS)
    assert samples.ids[0] == "ecg0"
