"""Views of expression profiles (B, G): binomial down-sampling + gene dropout for counts, Gaussian noise +
gene masking for continuous values.

Recipes:

* Binomial thinning of counts: each UMI is kept independently with probability ``p``, so a thinned count
  is ``Binomial(x, p)`` — a profile of the same cell at a lower sequencing depth. Batson, Royer & Webber
  2019, "Molecular cross-validation for single-cell RNA-seq" (bioRxiv 786269), the count-splitting idea of
  Batson & Royer 2019, "Noise2Self: blind denoising by self-supervision" (ICML).
* Gene dropout / masking and additive Gaussian noise as contrastive views of single cells: Han et al. 2022,
  "Self-supervised contrastive learning for integrative single cell RNA-seq data analysis" (CLEAR),
  Briefings in Bioinformatics 23(5). The count model they perturb is the one of scVI (Lopez et al. 2018,
  "Deep generative modeling for single-cell transcriptomics", Nature Methods 15).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from biolatent.data.views.base import Params, ViewModule, as_device, check_probability, draw_seed, rand, randn


class CountsViews(ViewModule):
    """Augmented views of (B, G) float profiles; output has the input's shape and dtype.

    ``is_counts=True`` (non-negative integer counts): per sample a keep probability ``p ~ U(keep_range)``,
    every count thinned to ``Binomial(x, p)`` (stays an integer in ``[0, x]``), then each gene of each
    sample set to 0 with probability ``gene_dropout``.

    ``is_counts=False`` (FPKM, log values, microarrays): ``x + eps * noise_scale * std_g`` with
    ``eps ~ N(0, 1)`` and ``std_g`` the gene's standard deviation within the batch, then each gene of each
    sample replaced, with probability ``gene_dropout``, by the gene's batch mean.
    """

    def __init__(
        self,
        *,
        is_counts: bool,
        keep_range: tuple[float, float] = (0.5, 1.0),
        gene_dropout: float = 0.2,
        noise_scale: float = 0.1,
        n_features: int | None = None,
    ) -> None:
        super().__init__()
        low, high = keep_range
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"keep_range must satisfy 0 <= low <= high <= 1, got {keep_range}")
        check_probability("gene_dropout", gene_dropout)
        if noise_scale < 0:
            raise ValueError(f"noise_scale must be >= 0, got {noise_scale}")
        self.is_counts = is_counts
        self.keep_range = (float(low), float(high))
        self.gene_dropout = float(gene_dropout)
        self.noise_scale = float(noise_scale)
        self.n_features = n_features

    def extra_repr(self) -> str:
        return (
            f"is_counts={self.is_counts}, keep_range={self.keep_range}, gene_dropout={self.gene_dropout}, "
            f"noise_scale={self.noise_scale}"
        )

    def sample_params(
        self,
        n: int,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
        *,
        sample_shape: Sequence[int] | None = None,
    ) -> Params:
        """``drop`` (n, G) bool; counts: ``keep_prob`` (n,), ``binomial_seed`` (); else ``noise`` (n, G)."""
        device = as_device(device)
        genes = int(sample_shape[0]) if sample_shape is not None else self.n_features
        if genes is None:
            raise ValueError("CountsViews needs sample_shape=(G,) or a view built with n_features")
        params: Params = {"drop": rand((n, genes), device, generator) < self.gene_dropout}
        if self.is_counts:
            low, high = self.keep_range
            params["keep_prob"] = low + (high - low) * rand((n,), device, generator)
            params["binomial_seed"] = torch.tensor(draw_seed(generator), dtype=torch.int64, device=device)
        else:
            params["noise"] = randn((n, genes), device, generator)
        return params

    def apply(self, x: Tensor, params: Params) -> Tensor:
        if x.ndim != 2:
            raise ValueError(f"CountsViews expects (B, G) profiles, got shape {tuple(x.shape)}")
        drop = params["drop"].to(x.device)
        if drop.shape != x.shape:
            raise ValueError(f"params are for shape {tuple(drop.shape)}, input has shape {tuple(x.shape)}")
        if self.is_counts:
            return self._thin(x, params, drop)
        return self._perturb(x, params, drop)

    def _thin(self, x: Tensor, params: Params, drop: Tensor) -> Tensor:
        counts = x.float()
        keep = params["keep_prob"].to(device=x.device, dtype=counts.dtype)[:, None].expand_as(counts)
        rng = torch.Generator(device=x.device)
        rng.manual_seed(int(params["binomial_seed"]))
        thinned = torch.binomial(counts, keep.contiguous(), generator=rng)
        thinned = thinned.masked_fill(drop, 0.0)
        return thinned.to(x.dtype)

    def _perturb(self, x: Tensor, params: Params, drop: Tensor) -> Tensor:
        values = x.float()
        noise = params["noise"].to(device=x.device, dtype=values.dtype)
        std, mean = torch.std_mean(values, dim=0, correction=0, keepdim=True)
        noisy = values + noise * std * self.noise_scale
        out = torch.where(drop, mean.expand_as(values), noisy)
        return out.to(x.dtype)
