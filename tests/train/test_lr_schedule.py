"""``train.lr_schedule``: the linear warm-up, then cosine decay to zero (default) or a constant factor."""

import math

import pytest

from biolatent.config import TrainConfig
from biolatent.train.module import lr_factor


def test_cosine_decays_and_constant_holds_after_the_warm_up():
    warmup, total = 4, 20
    assert [lr_factor(s, warmup, total, "constant") for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert [lr_factor(s, warmup, total, "cosine") for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert all(lr_factor(s, warmup, total, "constant") == 1.0 for s in range(warmup, 3 * total))
    assert lr_factor(12, warmup, total) == pytest.approx(0.5 * (1 + math.cos(math.pi * 8 / 16)))
    assert lr_factor(total, warmup, total) == pytest.approx(0.0)


def test_the_schedule_is_a_validated_train_key():
    assert TrainConfig().lr_schedule == "cosine"
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(lr_schedule="step")
