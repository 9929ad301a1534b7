"""The batch-aware VAE (scVI-style): the decoder conditions on the batch, the encoder only when asked, the
unconditioned model's weights keep their names, and embedding maps batch names onto the trained codes."""

from __future__ import annotations

import pytest
import torch

from biolatent.data.batches import BATCH_FIELD, recode_batches
from biolatent.errors import ConfigError, DataError
from biolatent.methods.vae import VAE
from biolatent.models.mlp import MLPEncoder


def _vae(**kwargs) -> VAE:
    torch.manual_seed(0)
    return VAE(MLPEncoder(12, hidden_dims=(8,), out_dim=8), latent_dim=3, decoder_hidden=6, **kwargs)


def test_unconditioned_decoder_keeps_its_weight_names():
    names = set(_vae().state_dict())
    assert {"decoder.0.weight", "decoder.1.weight", "decoder.3.weight", "decoder.3.bias"} <= names
    assert _vae().decoder[0].in_features == 3 and _vae(n_batches=2).decoder[0].in_features == 5


def test_the_decoder_depends_on_the_batch_and_the_posterior_only_with_encode_batch():
    vae = _vae(n_batches=3)
    z = torch.randn(4, 3)
    one, other = torch.zeros(4, dtype=torch.long), torch.full((4,), 2, dtype=torch.long)
    assert not torch.allclose(vae.decoder(z, one), vae.decoder(z, other))
    x = torch.poisson(torch.full((4, 12), 3.0))
    vae.eval()  # no dropout: embeddings comparable call to call
    assert vae.embed_fields == () and torch.equal(vae.embed(x), vae.embed(x, other))  # q(z | x): no batch
    loss = vae({"x": x, BATCH_FIELD: one, "index": torch.arange(4)}).loss
    assert torch.isfinite(loss)
    with pytest.raises(DataError, match="conditions on 3 batches"):
        vae({"x": x, "index": torch.arange(4)})
    encoded = _vae(n_batches=3, encode_batch=True).eval()
    assert encoded.embed_fields == (BATCH_FIELD,)
    assert not torch.allclose(encoded.embed(x, one), encoded.embed(x, other))
    with pytest.raises(ConfigError, match="encode_batch needs batches"):
        _vae(encode_batch=True)


def test_recode_batches_to_the_trained_codes():
    codes = torch.tensor([0, 1, 1, 0])  # over ["lab2", "lab3"]
    assert recode_batches(codes, ["lab2", "lab3"], ["lab1", "lab2", "lab3"]).tolist() == [1, 2, 2, 1]
    with pytest.raises(DataError, match="batch 'lab9' was not seen at training"):
        recode_batches(codes, ["lab2", "lab9"], ["lab1", "lab2", "lab3"])


def test_continuous_expression_takes_the_gaussian_path_with_batches():
    vae = VAE(MLPEncoder(12, hidden_dims=(8,), out_dim=8, input_transform="standardize"), latent_dim=3,
              decoder_hidden=6, likelihood="gaussian", n_batches=2)
    x = torch.randn(6, 12) * 2.0 + 7.0  # log-scale expression
    vae.encoder.fit_input_statistics(x)
    batch = torch.tensor([0, 1, 0, 1, 0, 1])
    z = torch.zeros(6, 3)
    shifted = vae.log_likelihood(x, z, batch) - vae.log_likelihood(x, z, 1 - batch)
    assert shifted.abs().max() > 0  # the batch changes p(x | z, s)
    assert torch.isfinite(vae({"x": x, BATCH_FIELD: batch, "index": torch.arange(6)}).loss)
