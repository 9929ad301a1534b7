"""Seeded ECG-like single-lead signals with a known rhythm class (a stand-in for neurokit2's ``ecg_simulate``,
which is not on this machine's package index).

Each beat is a sum of Gaussian waves P, Q, R, S, T placed around its R time (the morphology of McSharry, Clifford,
Tarassenko & Smith 2003, IEEE TBME 50:289, "A dynamical model for generating synthetic electrocardiogram
signals", as fixed Gaussians rather than the ODE). The rhythm classes differ in the beat times (RR intervals) and
the atrial activity:

* ``normal``: sinus rhythm, 60-95 bpm, RR varying by ~3% (respiratory sinus arrhythmia + jitter), P waves;
* ``afib``: atrial-fibrillation-like, 70-120 bpm, RR drawn independently (coefficient of variation ~0.2), no P
  wave, fibrillatory 4-8 Hz baseline waves;
* ``brady``: sinus bradycardia, 40-55 bpm; ``tachy``: sinus tachycardia, 105-150 bpm (both regular, P waves).

Every signal gets a random amplitude, baseline wander and white noise; ``beat_times`` are the true R times.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

RHYTHMS = ("normal", "afib", "brady", "tachy")
HEART_RATES = {"normal": (60.0, 95.0), "afib": (70.0, 120.0), "brady": (40.0, 55.0), "tachy": (105.0, 150.0)}
# wave: (offset from R in s, amplitude, width in s)
WAVES = {"P": (-0.2, 0.15, 0.025), "Q": (-0.05, -0.15, 0.012), "R": (0.0, 1.0, 0.018),
         "S": (0.05, -0.25, 0.014), "T": (0.3, 0.35, 0.05)}
AFIB_RR_CV = 0.2
SINUS_RR_CV = 0.02


@dataclass(frozen=True)
class EcgSet:
    """``x`` float32 (N, 1, T); ``labels`` the rhythm of each; ``beat_times`` the R times (s) of each signal."""

    x: np.ndarray
    labels: np.ndarray
    beat_times: list[np.ndarray]
    fs: float


def _beat_times(rhythm: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    mean_rr = 60.0 / rng.uniform(*HEART_RATES[rhythm])
    times, t = [], rng.uniform(0.0, mean_rr)
    breathing = rng.uniform(0.2, 0.35)  # Hz
    while t < seconds:
        times.append(t)
        if rhythm == "afib":
            rr = mean_rr * (1.0 + AFIB_RR_CV * rng.standard_normal())
        else:  # respiratory sinus arrhythmia + jitter
            rr = mean_rr * (1.0 + 0.03 * np.sin(2 * np.pi * breathing * t) + SINUS_RR_CV * rng.standard_normal())
        t += float(np.clip(rr, 0.25, 2.0))
    return np.asarray(times)


def simulate_ecg(n: int, *, seed: int = 0, fs: float = 80.0, seconds: float = 6.0,
                 rhythms: tuple[str, ...] = RHYTHMS) -> EcgSet:
    """``n`` signals, the rhythms in turn (balanced), shuffled; ``seconds`` x ``fs`` samples each."""
    rng = np.random.default_rng(seed)
    length = round(seconds * fs)
    t = np.arange(length) / fs
    labels = np.array([rhythms[i % len(rhythms)] for i in range(n)])[rng.permutation(n)]
    signals, all_beats = np.empty((n, 1, length), np.float32), []
    for i, rhythm in enumerate(labels):
        beats = _beat_times(str(rhythm), seconds, rng)
        signal = np.zeros(length)
        for r in beats:
            for wave, (offset, amplitude, width) in WAVES.items():
                if wave == "P" and rhythm == "afib":
                    continue
                signal += amplitude * np.exp(-0.5 * ((t - r - offset) / width) ** 2)
        if rhythm == "afib":  # fibrillatory waves
            freq = rng.uniform(4.0, 8.0)
            signal += 0.05 * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))
        signal *= rng.uniform(0.8, 1.2)
        signal += 0.1 * np.sin(2 * np.pi * rng.uniform(0.15, 0.4) * t + rng.uniform(0, 2 * np.pi))  # wander
        signal += 0.03 * rng.standard_normal(length)
        signals[i, 0] = signal
        all_beats.append(beats)
    return EcgSet(signals, labels, all_beats, fs)


def write_ecg_dataset(path: str | Path, n: int, *, seed: int = 0, **kwargs: float) -> Path:
    """Write ``simulate_ecg(n, seed=seed, ...)`` as an .npz (``x``, ``ids``, ``labels``) that ``data.modality:
    series`` loads (labels -> obs ``label``)."""
    data = simulate_ecg(n, seed=seed, **kwargs)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=data.x, ids=np.array([f"ecg{i}" for i in range(n)]), labels=data.labels)
    return path
