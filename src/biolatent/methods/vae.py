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
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import torch
from torch import nn

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


class VAE(SSLMethod):
    """loss = mean over cells of (-log p(x|z) + kl_weight * KL); with kl_weight 1 this is -ELBO per cell."""

    name: ClassVar[str] = "vae"
    modalities: ClassVar[tuple[str, ...]] = ("counts",)
    uses_views: ClassVar[bool] = False

    def __init__(
        self,
        encoder: nn.Module,
        *,
        views: nn.Module | None = None,
        latent_dim: int = 10,
        decoder_hidden: int = 128,
        likelihood: Literal["nb", "gaussian"] = "nb",
        kl_weight: float = 1.0,
    ) -> None:
        super().__init__(encoder, views=views)
        n_genes = getattr(encoder, "in_dim", None)
        if n_genes is None:
            raise ConfigError("method vae needs an encoder of gene vectors with an in_dim (model.name: mlp)")
        if likelihood not in ("nb", "gaussian"):
            raise ConfigError(f"method.likelihood must be 'nb' or 'gaussian', got {likelihood!r}")
        self.n_genes, self.likelihood, self.kl_weight = int(n_genes), likelihood, kl_weight
        hidden = int(encoder.out_dim)
        self.mu_head = nn.Linear(hidden, latent_dim)
        self.logvar_head = nn.Linear(hidden, latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, decoder_hidden),
            nn.LayerNorm(decoder_hidden),
            nn.ReLU(),
            nn.Linear(decoder_hidden, self.n_genes),
        )
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

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return self.mu_head(h), self.logvar_head(h).clamp(-12.0, 12.0)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x | z) summed over genes -> (B,)."""
        out = self.decoder(z)
        if self.likelihood == "nb":
            library = x.sum(dim=1, keepdim=True)
            mean = torch.softmax(out, dim=-1) * library
            return nb_log_prob(x, mean, torch.exp(self.log_scale)).sum(dim=-1)
        target = self.encoder.transform(x) if getattr(self.encoder, "input_transform", None) == "standardize" else x
        return gaussian_log_prob(target, out, self.log_scale.clamp(-12.0, 12.0)).sum(dim=-1)

    def forward(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        x = batch["x"].float()
        mu, logvar = self.posterior(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        reconstruction = -self.log_likelihood(x, z)
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

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.posterior(x.float())[0]
