"""Variational autoencoder for expression profiles in the style of scVI (Lopez, Regier, Cole, Jordan & Yosef
2018, Nature Methods, "Deep generative modeling for single-cell transcriptomics").

q(z|x) = N(mu, diag(exp(logvar))) from the given encoder (an ``MLPEncoder``; its input transform, e.g.
log1p-normalisation, applies to the encoder input only) and two linear heads; p(z) = N(0, I).
``likelihood="nb"``: the decoder gives softmax gene proportions, times the observed library size (row sum)
= the negative-binomial mean, with a learned per-gene inverse dispersion theta (log-parameterised).
``likelihood="gaussian"``: for continuous values (log-scale FPKM/TPM...), decoder mean + learned per-gene
log-variance. When the encoder standardises its input (``input_transform: standardize``, the default for
continuous values) the Gaussian models the standardised values: every gene then weighs the same in the
likelihood at initialisation, instead of the decoder spending its first epochs learning offsets of 5..12
(the log-likelihood differs from the raw one by the constant ``-sum_g log sd_g`` only). ``views`` are not
used. ``embed`` = the posterior mean mu.

Batch-aware (``data.batch_column``; ``n_batches`` > 0 from the data): as scVI, the decoder conditions on the
one-hot batch, concatenated to z and injected again into its hidden layer, so p(x | z, s) explains the batch and z
need not (scVI's ``SCVI(batch_key=...)``, whose default ``encode_covariates=False`` this follows); with
``encode_batch: true`` the posterior heads see the batch too, q(z | x, s). The per-gene dispersion is shared by
the batches (scVI's default ``dispersion="gene"``).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from biolatent.data.batches import BATCH_FIELD
from biolatent.errors import ConfigError, DataError
from biolatent.methods.base import SSLMethod
from biolatent.types import LossOutput


def nb_log_prob(x: torch.Tensor, mu: torch.Tensor, theta: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Elementwise log NB(x; mean mu, inverse dispersion theta) = nbinom(theta, theta / (theta + mu))."""
    log_theta_mu = torch.log(theta + mu + eps)
    return (
        torch.lgamma(x + theta)
        - torch.lgamma(theta)
        - torch.lgamma(x + 1.0)
        + theta * (torch.log(theta + eps) - log_theta_mu)
        + x * (torch.log(mu + eps) - log_theta_mu)
    )


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Elementwise log N(x; mean, exp(logvar))."""
    return -0.5 * (math.log(2 * math.pi) + logvar + (x - mean) ** 2 * torch.exp(-logvar))


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) per row, summed over latent dimensions -> (B,)."""
    return 0.5 * (torch.exp(logvar) + mu**2 - 1.0 - logvar).sum(dim=-1)


class ConditionalDecoder(nn.Sequential):
    """z (B, latent) [+ one-hot batch (B, n_batches), at the input and again at the hidden layer] -> (B, genes):
    Linear -> LayerNorm -> ReLU -> Linear (the layer indices of the unconditioned decoder's weights)."""

    def __init__(self, latent_dim: int, hidden: int, n_genes: int, n_batches: int = 0) -> None:
        super().__init__(nn.Linear(latent_dim + n_batches, hidden), nn.LayerNorm(hidden), nn.ReLU(),
                         nn.Linear(hidden + n_batches, n_genes))
        self.n_batches = int(n_batches)

    def forward(self, z: torch.Tensor, batch_index: torch.Tensor | None = None) -> torch.Tensor:
        first, norm, act, last = self
        if not self.n_batches:
            return last(act(norm(first(z))))
        onehot = one_hot_batches(batch_index, self.n_batches, z)
        return last(torch.cat([act(norm(first(torch.cat([z, onehot], dim=1)))), onehot], dim=1))


def one_hot_batches(batch_index: torch.Tensor | None, n_batches: int, like: torch.Tensor) -> torch.Tensor:
    """(B,) batch codes -> (B, n_batches) one-hot in ``like``'s dtype and device; missing codes are an error."""
    if batch_index is None:
        raise DataError(f"this vae conditions on {n_batches} batches: the data needs its batch column "
                        "(data.batch_column, as at pre-training)")
    return nn.functional.one_hot(batch_index.long().reshape(-1), n_batches).to(like)


class VAE(SSLMethod):
    """loss = mean over cells of (-log p(x|z[,s]) + kl_weight * KL); with kl_weight 1 this is -ELBO per cell."""

    name: ClassVar[str] = "vae"
    modalities: ClassVar[tuple[str, ...]] = ("counts",)
    uses_views: ClassVar[bool] = False
    data_kwargs: ClassVar[dict[str, str]] = {"n_batches": "n_batches"}

    def __init__(
        self,
        encoder: nn.Module,
        *,
        views: nn.Module | None = None,
        latent_dim: int = 10,
        decoder_hidden: int = 128,
        likelihood: Literal["nb", "gaussian"] = "nb",
        kl_weight: float = 1.0,
        n_batches: int = 0,
        encode_batch: bool = False,
    ) -> None:
        super().__init__(encoder, views=views)
        n_genes = getattr(encoder, "in_dim", None)
        if n_genes is None:
            raise ConfigError("method vae needs an encoder of gene vectors with an in_dim (model.name: mlp)")
        if likelihood not in ("nb", "gaussian"):
            raise ConfigError(f"method.likelihood must be 'nb' or 'gaussian', got {likelihood!r}")
        self.n_genes, self.likelihood, self.kl_weight = int(n_genes), likelihood, kl_weight
        if encode_batch and not n_batches:
            raise ConfigError("method.encode_batch needs batches to condition on: set data.batch_column")
        self.n_batches, self.encode_batch = int(n_batches), bool(encode_batch)
        # embedding needs each sample's batch when the posterior sees it
        self.embed_fields = (BATCH_FIELD,) if self.encode_batch else ()
        hidden = int(encoder.out_dim) + (self.n_batches if self.encode_batch else 0)
        self.mu_head = nn.Linear(hidden, latent_dim)
        self.logvar_head = nn.Linear(hidden, latent_dim)
        self.decoder = ConditionalDecoder(latent_dim, decoder_hidden, self.n_genes, self.n_batches)
        # per-gene log inverse dispersion (nb) or log variance (gaussian)
        self.log_scale = nn.Parameter(torch.zeros(self.n_genes))

    def check_data(self, info: Any) -> None:
        super().check_data(info)
        if self.likelihood == "nb" and not info.is_counts:
            raise DataError(
                "method vae with likelihood 'nb' needs non-negative integer counts; "
                "these values are continuous: set method.likelihood: gaussian"
            )
        if info.n_features is not None and info.n_features != self.n_genes:
            raise DataError(f"the data has {info.n_features} genes but the vae was built for {self.n_genes}")

    def posterior(self, x: torch.Tensor, batch_index: torch.Tensor | None = None,
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        if self.encode_batch:
            h = torch.cat([h, one_hot_batches(batch_index, self.n_batches, h)], dim=1)
        return self.mu_head(h), self.logvar_head(h).clamp(-12.0, 12.0)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor,
                       batch_index: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x | z[, batch]) summed over genes -> (B,)."""
        out = self.decoder(z, batch_index)
        if self.likelihood == "nb":
            library = x.sum(dim=1, keepdim=True)
            mean = torch.softmax(out, dim=-1) * library
            return nb_log_prob(x, mean, torch.exp(self.log_scale)).sum(dim=-1)
        target = self.encoder.transform(x) if getattr(self.encoder, "input_transform", None) == "standardize" else x
        return gaussian_log_prob(target, out, self.log_scale.clamp(-12.0, 12.0)).sum(dim=-1)

    def forward(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        x, batch_index = batch["x"].float(), batch.get(BATCH_FIELD)
        mu, logvar = self.posterior(x, batch_index)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        reconstruction = -self.log_likelihood(x, z, batch_index)
        kl = gaussian_kl(mu, logvar)
        loss = (reconstruction + self.kl_weight * kl).mean()
        elbo = -(reconstruction + kl).mean()
        metrics = {
            "loss": float(loss.detach()),
            "elbo": float(elbo.detach()),
            "reconstruction": float(reconstruction.detach().mean()),
            "kl": float(kl.detach().mean()),
        }
        return LossOutput(loss, metrics)

    def embed(self, x: torch.Tensor, batch_index: torch.Tensor | None = None) -> torch.Tensor:
        return self.posterior(x.float(), batch_index)[0]
