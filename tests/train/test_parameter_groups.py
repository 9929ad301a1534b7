"""Weight decay spares what a method names in ``no_weight_decay()`` (CLIP's learned temperature)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from biolatent.train.module import parameter_groups


def test_clip_temperature_is_not_decayed():
    from biolatent.methods.clip import CLIP
    from biolatent.models.resnet import ResNetEncoder

    method = CLIP(ResNetEncoder(3, 2, widths=(4,), blocks=(1,)), n_genes=5)
    optimizer = torch.optim.AdamW(parameter_groups(method, weight_decay=0.5), lr=0.1)
    before = {name: p.detach().clone() for name, p in method.named_parameters()}
    for p in method.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()  # zero gradients: only the decoupled decay moves a parameter, by a factor 1 - lr * decay
    after = dict(method.named_parameters())
    assert torch.equal(after["logit_scale"], before["logit_scale"])
    weight = next(name for name in before if name.endswith("weight") and before[name].abs().sum() > 0)
    torch.testing.assert_close(after[weight].detach(), before[weight] * 0.95)


def test_every_parameter_decays_without_exemptions_and_unknown_names_fail():
    model = nn.Linear(3, 2)
    (group,) = parameter_groups(model, weight_decay=0.1)
    assert group["weight_decay"] == 0.1 and len(group["params"]) == 2
    model.no_weight_decay = lambda: ("scale",)
    with pytest.raises(ValueError, match="scale"):
        parameter_groups(model, weight_decay=0.1)
