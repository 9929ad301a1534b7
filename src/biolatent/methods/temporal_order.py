"""Frame-order pretext for cines: which of a fixed set of permutations shuffled the frames?

After Misra, Zitnick & Hebert 2016, ECCV, "Shuffle and learn: unsupervised learning using temporal order
verification" (is this sequence in the right order?) and Lee, Huang, Singh & Yang 2017, ICCV, "Unsupervised
representation learning by sorting sequences" (which permutation was applied?, a classification over a fixed
permutation set).

Each cine (B, T, S, S, S) gets a class ``c`` drawn uniformly in ``0 .. n_permutations - 1``; its frames are
reordered by the class's permutation (frame ``i`` of the output is frame ``perm[i]`` of the input), the views
are applied (the same spatial transform to every frame when they treat frames as channels) and a head on the
encoder output predicts ``c`` (cross-entropy; metric ``accuracy``, chance is ``1 / n_permutations``).

The permutation set (``frame_permutations``). A cardiac cine covers one periodic cycle: a cyclic shift of the
frames is just another starting phase, which the frames alone cannot reveal. So two permutations that differ by
a cyclic shift are one class here: class 0 is the identity (with all its cyclic shifts); class 1 is its
reversal (the cycle played backwards: the direction of time, Misra et al.'s basic question; detectable since
contraction and filling do not run at the same speed in a real heart; the phantom of
``data simulate heart`` contracts as sin^2, symmetric in time, so on it classes 0 and 1 look alike); the
other classes are rotation classes chosen greedily, in a seeded order, to maximise the smallest *cyclic
Hamming distance* (the Hamming distance minimised over cyclic shifts) to the classes already chosen, in the
spirit of the maximal-Hamming permutation sets of jigsaw puzzles (Noroozi & Favaro 2016, ECCV). There are
(T - 1)! rotation classes, so ``n_permutations`` must be at most (T - 1)! (6 for T = 4). Every class is
represented by the member that keeps frame 0 first (in ECG-gated cines usually end-diastole), so no class is a
cyclic shift of another. With ``random_phase`` every sample is also cyclically shifted by a random number of
frames (the label is unchanged: the classes are rotation classes), so the head cannot use the phase of the
first position and must use the relative order of the motion alone; this is a harder task (on a toy beating
blob, a tiny encoder needs about 5x more steps), hence off by default.

``embed`` is the encoder output. Defaults: 6 classes (Lee et al. use 12 for 4 frames, identifying a
permutation with its reversal, which would discard the direction of the cardiac cycle here).
"""

from __future__ import annotations

import itertools
import math
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from biolatent.errors import ConfigError, DataError
from biolatent.methods.base import SSLMethod
from biolatent.types import LossOutput

ENUMERATE_UP_TO = 8  # frames: up to 7! = 5040 rotation classes are enumerated; more frames use a seeded sample
CANDIDATES = 2048  # sampled rotation classes beyond ENUMERATE_UP_TO frames


def cyclic_hamming(p: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """min over r of the Hamming distance between each candidate (M, T) and ``roll(p, r)`` -> (M,)."""
    t = p.shape[0]
    rolls = np.stack([np.roll(p, r) for r in range(t)])  # (T, T)
    return (candidates[:, None, :] != rolls[None]).sum(axis=-1).min(axis=1)


def _class_representatives(frames: int, rng: np.random.Generator) -> np.ndarray:
    """One permutation per rotation class: those with ``perm[0] == 0``, in a seeded random order."""
    if frames <= ENUMERATE_UP_TO:
        rest = np.array(list(itertools.permutations(range(1, frames))), dtype=np.int64)
    else:
        rest = np.stack([rng.permutation(np.arange(1, frames)) for _ in range(CANDIDATES)])
        rest = np.unique(rest, axis=0)
    reps = np.concatenate([np.zeros((rest.shape[0], 1), dtype=np.int64), rest], axis=1)
    return reps[rng.permutation(reps.shape[0])]


def frame_permutations(frames: int, n_permutations: int, seed: int = 0) -> torch.Tensor:
    """(n_permutations, frames) int64: row 0 the identity, row 1 its reversal, then rotation classes chosen
    greedily to maximise the smallest cyclic Hamming distance to the rows before them.

    Deterministic given (frames, n_permutations, seed). No row is a cyclic shift of another.
    """
    if frames < 3:
        raise ConfigError(f"method temporal_order needs cines of at least 3 frames, got {frames}")
    classes = math.factorial(frames - 1)
    if not 2 <= n_permutations <= classes:
        raise ConfigError(
            f"method.n_permutations must be between 2 and (frames - 1)! = {classes} for {frames}-frame cines "
            f"(permutations that differ by a cyclic shift cannot be told apart), got {n_permutations}"
        )
    rng = np.random.default_rng(seed)
    candidates = _class_representatives(frames, rng)
    identity = np.arange(frames, dtype=np.int64)
    reversal = np.concatenate([[0], np.arange(frames - 1, 0, -1)]).astype(np.int64)  # the cycle played backwards
    chosen = [identity, reversal]
    distance = np.minimum(cyclic_hamming(identity, candidates), cyclic_hamming(reversal, candidates))
    while len(chosen) < n_permutations:
        best = int(np.argmax(distance))  # first maximum in the seeded order
        if distance[best] == 0:  # pragma: no cover - only when the sampled pool runs out
            raise ConfigError(f"method.n_permutations={n_permutations} is too many for {frames} frames")
        chosen.append(candidates[best])
        distance = np.minimum(distance, cyclic_hamming(candidates[best], candidates))
    return torch.from_numpy(np.stack(chosen))


def shuffle_frames(
    x: torch.Tensor, permutations: torch.Tensor, *, random_phase: bool = False, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw a class per cine, reorder its frames -> (shuffled x, labels (B,), frame order (B, T)).

    ``out[b, i] = x[b, order[b, i]]`` with ``order[b, i] = perm[label_b][(i - shift_b) mod T]`` and ``shift_b``
    uniform in 0..T-1 with ``random_phase`` (else 0). Random numbers come from ``generator`` (CPU) when given.
    """
    b, t = x.shape[:2]
    labels = torch.randint(0, permutations.shape[0], (b,), generator=generator)
    shifts = torch.randint(0, t, (b,), generator=generator) if random_phase else torch.zeros(b, dtype=torch.long)
    position = (torch.arange(t)[None, :] - shifts[:, None]) % t
    order = torch.gather(permutations.cpu()[labels], 1, position)
    labels, order = labels.to(x.device), order.to(x.device)
    shuffled = x[torch.arange(b, device=x.device)[:, None], order]
    return shuffled, labels, order


class TemporalOrder(SSLMethod):
    """Encoder -> head classifying which frame permutation (up to a cyclic shift) was applied to the cine."""

    name: ClassVar[str] = "temporal_order"
    modalities: ClassVar[tuple[str, ...]] = ("cine",)

    def __init__(
        self,
        encoder: nn.Module,
        *,
        views: nn.Module | None = None,
        n_permutations: int = 6,
        hidden_dim: int = 128,
        random_phase: bool = False,
        use_views: bool = True,
        permutation_seed: int = 0,
    ) -> None:
        super().__init__(encoder, views=views)
        if n_permutations < 2:
            raise ConfigError(f"method.n_permutations must be >= 2, got {n_permutations}")
        if hidden_dim < 0:
            raise ConfigError(f"method.hidden_dim must be >= 0 (0: a linear head), got {hidden_dim}")
        self.n_permutations, self.random_phase, self.use_views = n_permutations, random_phase, use_views
        self.permutation_seed = permutation_seed
        width = int(encoder.out_dim)
        self.head: nn.Module = (
            nn.Linear(width, n_permutations) if hidden_dim == 0
            else nn.Sequential(nn.Linear(width, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, n_permutations))
        )
        self._permutations: dict[int, torch.Tensor] = {}  # frames -> set; deterministic, so not in the state

    def permutations(self, frames: int) -> torch.Tensor:
        """The fixed permutation set for ``frames``-frame cines (cached)."""
        if frames not in self._permutations:
            self._permutations[frames] = frame_permutations(frames, self.n_permutations, self.permutation_seed)
        return self._permutations[frames]

    def check_data(self, info: Any) -> None:
        super().check_data(info)
        if info.frames is not None:
            self.permutations(int(info.frames))

    def forward(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        x = batch["x"]
        if x.ndim != 5:
            raise DataError(f"temporal_order expects (B, T, S, S, S) cines, got {tuple(x.shape)}")
        permutations = self.permutations(int(x.shape[1]))
        if self.use_views and self.views is not None and self.training:
            x = self.views(x)
        shuffled, labels, _ = shuffle_frames(x, permutations, random_phase=self.random_phase)
        logits = self.head(self.encoder(shuffled))
        loss = F.cross_entropy(logits.float(), labels)
        accuracy = float((logits.detach().argmax(dim=1) == labels).float().mean())
        return LossOutput(loss, {"loss": float(loss.detach()), "accuracy": accuracy})

    def extra_repr(self) -> str:
        return f"n_permutations={self.n_permutations}, random_phase={self.random_phase}"
