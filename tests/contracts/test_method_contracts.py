"""Every registered method x supported modality: loss, gradients, embeddings, one optimiser step;
every method x unsupported modality: refused by check_data."""

import inspect

import pandas as pd
import pytest
import torch

from biolatent.build import method_data_kwargs
from biolatent.config import validate_kwargs
from biolatent.data.samples import DataInfo, SampleSet
from biolatent.data.sequence import PAD_BASE
from biolatent.errors import ConfigError, DataError
from biolatent.methods.base import SSLMethod
from biolatent.methods.registry import METHODS, build_method
from biolatent.models.registry import build_encoder, default_encoder

# images paired with genetics (data.genotypes, data.genetic_tables): the batch key and width of each part
GENETICS = {"genotypes": 12, "pgs": 3}
# images paired with health records (data.records): the records' vocabulary and tokens per subject
RECORDS = {"records_vocab_size": 20, "records_max_length": 12}
MODALITIES = ("counts", "dna", "image2d", "volume", "cine", "spatial", "records", "series")
INFOS = {
    "counts": DataInfo("counts", n_features=30, is_counts=True),
    "dna": DataInfo("dna", max_length=40, kmer=3),
    "image2d": DataInfo("image2d", channels=3, image_size=32, spatial_dims=2, genetic_parts=GENETICS,
                         **RECORDS),
    "volume": DataInfo("volume", channels=1, image_size=16, spatial_dims=3, genetic_parts=GENETICS, **RECORDS),
    "cine": DataInfo("cine", channels=1, image_size=16, spatial_dims=3, frames=4, genetic_parts=GENETICS,
                    **RECORDS),
    "spatial": DataInfo("spatial", channels=3, image_size=32, spatial_dims=2, n_features=30, is_counts=True),
    "records": DataInfo("records", max_length=12, vocab_size=20),
    "series": DataInfo("series", channels=2, max_length=24),  # one sample per series (N, C, T)
}
SMALL_ENCODER = {
    "mlp": {"hidden_dims": (16,), "out_dim": 8},
    "resnet": {"widths": (4, 8), "blocks": (1, 1)},
    "vit": {"patch_size": 8, "dim": 16, "depth": 1, "heads": 2},
    "bert": {"hidden_size": 16, "layers": 1, "heads": 2, "intermediate_size": 32},
    "cine": {"widths": (4, 8), "blocks": (1, 1), "temporal_heads": 2},
    "behrt": {"hidden_size": 16, "layers": 1, "heads": 2, "intermediate_size": 32},
    "series_cnn": {"hidden_dim": 8, "out_dim": 8, "depth": 2},
    "series_transformer": {"patch_size": 4, "dim": 8, "depth": 1, "heads": 2},
}
SMALL_METHOD = {
    "simclr": {"projection_dim": 8},
    "vae": {"latent_dim": 4, "decoder_hidden": 16},
    "mlm": {},
    "mae": {"decoder_dim": 8, "decoder_depth": 1, "decoder_heads": 2},
    "moco": {"projection_dim": 8, "hidden_dim": 16, "queue_size": 12},
    "byol": {"projection_dim": 8, "hidden_dim": 16},
    "dino": {"out_dim": 16, "hidden_dim": 16, "bottleneck_dim": 8, "local_crops": 0},
    "micle": {"projection_dim": 8},
    "temporal_order": {"n_permutations": 4, "hidden_dim": 8},
    "clip": {"embed_dim": 8, "expression_hidden": (16,)},
    "contig": {"embed_dim": 8, "genetic_hidden": 16},
    "behrt": {},
    "records_clip": {"embed_dim": 8, "records_hidden": 8, "records_layers": 1, "records_heads": 2,
                     "records_intermediate": 16},
    "ts2vec": {},
    "masked_series": {},
    "cross_modal_ae": {"latent_dim": 4, "decoder_widths": (4, 8), "records_hidden": 8, "records_layers": 1,
                       "records_heads": 2, "records_intermediate": 16},
}


class SimpleViews(torch.nn.Module):
    """Simple random views: feature/pixel noise and dropout for floats, base substitutions for DNA."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_floating_point():
            return (x * (torch.rand_like(x) > 0.2) + 0.05 * torch.rand_like(x)).clamp(min=0)
        change = (torch.rand(x.shape) < 0.1) & (x != PAD_BASE)
        return torch.where(change, torch.randint_like(x, 0, 4), x)


def make_input(modality: str, batch: int = 8) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    if modality == "counts":
        return torch.poisson(torch.full((batch, 30), 3.0), generator=gen)
    if modality == "dna":
        x = torch.randint(0, 4, (batch, 40), generator=gen)
        x[: batch // 2, 31:] = PAD_BASE
        return x
    if modality == "records":  # (B, 4, L): codes (right-padded), age, segment, visit position
        codes = torch.randint(5, 20, (batch, 12), generator=gen)
        codes[:, 0] = 3  # [CLS]
        codes[: batch // 2, 9:] = 0  # [PAD]
        visits = torch.arange(12).expand(batch, 12) // 3
        ages = 40 + visits
        return torch.stack([codes, ages, visits % 2, visits], dim=1) * (codes != 0).unsqueeze(1)
    if modality == "volume":
        return torch.rand(batch, 1, 16, 16, 16, generator=gen)
    if modality == "cine":
        return torch.rand(batch, 4, 16, 16, 16, generator=gen)
    if modality == "series":
        return torch.randn(batch, 2, 24, generator=gen)
    return torch.rand(batch, 3, 32, 32, generator=gen)


def make_samples(modality: str, n: int = 16) -> SampleSet:
    """A valid data set of ``n`` samples, two per subject; spatial spots carry their expression counts as the
    loader does (``fields["expression"]``), images their subjects' standardised genetics (``GENETICS``)."""
    fields = {}
    if modality == "spatial":
        fields["expression"] = torch.poisson(torch.full((n, 30), 3.0), generator=torch.Generator().manual_seed(2))
    if INFOS[modality].genetic_parts:
        gen = torch.Generator().manual_seed(3)
        fields.update({part: torch.randn(n, width, generator=gen) for part, width in GENETICS.items()})
    if INFOS[modality].records_vocab_size:
        fields["records"] = make_input("records", n)
    obs = pd.DataFrame(index=[f"s{i}" for i in range(n)])
    return SampleSet(INFOS[modality], make_input(modality, n), obs, fields=fields, groups=torch.arange(n) // 2)


def build(name: str, modality: str) -> SSLMethod:
    """As ``build.build_method`` does: the method's hyper-parameters plus the facts of the data it declares."""
    encoder_name = default_encoder(modality, name)
    encoder = build_encoder(encoder_name, INFOS[modality], **SMALL_ENCODER[encoder_name])
    data_kwargs = method_data_kwargs(name, INFOS[modality])
    return build_method(name, encoder, views=SimpleViews(), **SMALL_METHOD[name], **data_kwargs)


SUPPORTED = [(n, m) for n, cls in METHODS.items() for m in cls.modalities]
UNSUPPORTED = [(n, m) for n, cls in METHODS.items() for m in MODALITIES if m not in cls.modalities]


@pytest.mark.parametrize(("name", "modality"), SUPPORTED)
def test_method_contract(name: str, modality: str) -> None:
    torch.manual_seed(0)
    method = build(name, modality)
    method.check_data(INFOS[modality])
    samples = make_samples(modality)
    method.check_samples(samples)
    x = samples.x[:8]
    # x_pair / index_pair: another sample of the same subject, as the loader adds with data.group_column (micle)
    batch = {"x": x, "index": torch.arange(8), "x_pair": x.roll(1, 0), "index_pair": torch.arange(8).roll(1),
             **{key: value[:8] for key, value in samples.fields.items()}}
    method.train()
    out = method(batch)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    assert "loss" in out.metrics and all(isinstance(v, float) for v in out.metrics.values())
    out.loss.backward()
    grads = [p.grad for p in method.encoder.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)

    method.eval()
    with torch.no_grad():
        parts = {key: batch[key] for key in method.embed_fields}  # e.g. the paired records
        emb = method.embed(batch["x"], **parts)
        emb_small = method.embed(batch["x"][:3], **{key: value[:3] for key, value in parts.items()})
    assert emb.ndim == 2 and emb.shape[0] == 8 and emb_small.shape == (3, emb.shape[1])
    assert torch.isfinite(emb).all()

    method.train()
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-2)
    torch.manual_seed(5)
    before = method(batch).loss
    optimizer.zero_grad()
    before.backward()
    optimizer.step()
    torch.manual_seed(5)
    after = method(batch).loss
    assert after.item() != pytest.approx(before.item(), rel=1e-6, abs=1e-8)
    method.on_train_batch_end(1, 10)


@pytest.mark.parametrize(("name", "modality"), UNSUPPORTED)
def test_unsupported_modality_refused(name: str, modality: str) -> None:
    supported = METHODS[name].modalities[0]
    method = build(name, supported)
    with pytest.raises((DataError, ConfigError)):
        method.check_data(INFOS[modality])
    # and with the default encoder of the unsupported modality, building or checking refuses
    with pytest.raises((DataError, ConfigError)):
        encoder_name = default_encoder(modality, name)
        encoder = build_encoder(encoder_name, INFOS[modality], **SMALL_ENCODER[encoder_name])
        build_method(name, encoder, **SMALL_METHOD[name]).check_data(INFOS[modality])


@pytest.mark.parametrize("name", list(METHODS))
def test_method_signature(name: str) -> None:
    cls = METHODS[name]
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    assert params[0].name == "encoder"
    keyword = [p for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]
    assert "views" in {p.name for p in keyword}
    for param in keyword:
        assert (
            param.default is not inspect.Parameter.empty and param.annotation is not inspect.Parameter.empty
        )
    defaults = validate_kwargs("method", name, cls, {}, skip=("views",))
    assert set(defaults) == {p.name for p in keyword} - {"views"}
    assert cls.__doc__ or inspect.getmodule(cls).__doc__
    with pytest.raises(ConfigError):
        validate_kwargs("method", name, cls, {"not_a_key": 1}, skip=("views",))


def test_unknown_method() -> None:
    with pytest.raises(ConfigError, match="unknown method"):
        build_method("swav", torch.nn.Linear(2, 2))
