"""Cross-modal autoencoder of images and health records: one latent space, each modality decoded from either.

Radhakrishnan, Friedman, Khurshid, Ng, Batra, Lubitz, Philippakis & Uhler 2023, Nat Commun 14:2436, "Cross-modal
autoencoder framework learns holistic representations of cardiovascular state": modality-specific encoders map
each modality of a subject into one shared latent space, modality-specific decoders reconstruct every modality
from the latent of every modality (self- and cross-reconstruction), and a contrastive term pulls the two latents
of one subject together. Here the modalities are an image (``model:``: a 2D image, a volume or a cine) and the
subject's health records (``data.records``: a BEHRT encoder, Li et al. 2020, ``models.behrt``):

- latents: z_image = A(f(x)), z_records = B(g(records)), linear maps into ``latent_dim``;
- image decoder ``models.conv_decoder.ConvDecoder`` -> the image (mean squared error, the paper's choice);
- records decoder: a linear map -> one logit per code of the vocabulary, the record's bag of codes (which codes
  the history holds; binary cross-entropy), a fixed-size view of a variable-length history;
- loss = image_weight * (MSE(D_i(z_image), x) + MSE(D_i(z_records), x)) / 2
  + records_weight * (BCE(D_r(z_records), codes) + BCE(D_r(z_image), codes)) / 2
  + contrastive_weight * symmetric InfoNCE(z_image, z_records) at a fixed ``temperature``.

``embed(x, records)`` is [z_image, z_records] (the shared latent of each modality, concatenated);
``embed_image`` is z_image alone and ``predict_codes`` decodes a record's bag of codes from any latent, so the
records of a subject can be predicted from its image (the paper's cross-modal prediction).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from biolatent.data.paired import RECORDS
from biolatent.data.record_tokens import SPECIAL_TOKENS
from biolatent.errors import ConfigError, DataError
from biolatent.methods.base import SSLMethod
from biolatent.methods.clip import clip_loss
from biolatent.methods.records_clip import RECORDS_DATA_KWARGS, check_records, records_encoder
from biolatent.models.conv_decoder import ConvDecoder
from biolatent.types import LossOutput


def bag_of_codes(tokens: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """(B, L) token ids -> (B, vocab_size) float 0/1: which regular codes occur (special tokens never)."""
    bag = torch.zeros(tokens.shape[0], vocab_size, device=tokens.device)
    bag.scatter_(1, tokens, 1.0)
    bag[:, : len(SPECIAL_TOKENS)] = 0.0
    return bag


class CrossModalAutoencoder(SSLMethod):
    """Image and records encoders into one latent space; each modality decoded from both latents."""

    name: ClassVar[str] = "cross_modal_ae"
    modalities: ClassVar[tuple[str, ...]] = ("image2d", "volume", "cine")
    data_kwargs: ClassVar[dict[str, str]] = {
        **RECORDS_DATA_KWARGS, "image_channels": "channels", "image_frames": "frames", "image_size": "image_size",
        "spatial_dims": "spatial_dims"}
    embed_fields: ClassVar[tuple[str, ...]] = (RECORDS,)

    def __init__(
        self,
        encoder: nn.Module,
        *,
        views: nn.Module | None = None,
        records_vocab_size: int | None = None,
        records_max_length: int | None = None,
        image_channels: int | None = None,
        image_frames: int | None = None,
        image_size: int | None = None,
        spatial_dims: int | None = None,
        latent_dim: int = 64,
        decoder_widths: tuple[int, ...] = (16, 32),
        records_hidden: int = 64,
        records_layers: int = 2,
        records_heads: int = 4,
        records_intermediate: int = 128,
        records_dropout: float = 0.1,
        image_weight: float = 1.0,
        records_weight: float = 1.0,
        contrastive_weight: float = 0.1,
        temperature: float = 0.1,
        use_views: bool = False,
    ) -> None:
        super().__init__(encoder, views=views)
        if latent_dim < 1:
            raise ConfigError(f"method.latent_dim must be >= 1, got {latent_dim}")
        if min(image_weight, records_weight, contrastive_weight) < 0:
            raise ConfigError("method.image_weight, records_weight and contrastive_weight must be >= 0")
        if temperature <= 0:
            raise ConfigError(f"method.temperature must be > 0, got {temperature}")
        if not image_size or not spatial_dims:
            raise DataError(f"method {self.name} needs images of a known size (image2d, volume or cine data)")
        self.records_encoder = records_encoder(
            records_vocab_size, records_max_length, self.name, hidden=records_hidden, layers=records_layers,
            heads=records_heads, intermediate=records_intermediate, dropout=records_dropout)
        self.vocab_size = int(records_vocab_size)  # type: ignore[arg-type]
        out_channels = int(image_frames) if image_frames else int(image_channels or 1)  # a cine's frames: channels
        self.image_shape = (out_channels, *[int(image_size)] * int(spatial_dims))
        self.weights = (float(image_weight), float(records_weight), float(contrastive_weight))
        self.temperature, self.use_views = float(temperature), use_views
        self.image_latent = nn.Linear(int(encoder.out_dim), latent_dim)
        self.records_latent = nn.Linear(records_hidden, latent_dim)
        self.image_decoder = ConvDecoder(out_channels, int(image_size), tuple(decoder_widths), latent_dim,
                                         spatial_dims=int(spatial_dims))
        self.records_decoder = nn.Linear(latent_dim, self.vocab_size)

    def check_samples(self, samples: Any) -> None:
        check_records(samples, self.name, self.vocab_size)
        if tuple(samples.x.shape[1:]) != self.image_shape:
            raise DataError(f"method {self.name} was built for images of shape {self.image_shape}, the data have "
                            f"{tuple(samples.x.shape[1:])}")

    def embed_image(self, x: torch.Tensor) -> torch.Tensor:
        """z_image (B, latent_dim)."""
        return self.image_latent(self.encoder(x.float()))

    def embed_records(self, records: torch.Tensor) -> torch.Tensor:
        """z_records (B, latent_dim)."""
        return self.records_latent(self.records_encoder(records))

    def embed(self, x: torch.Tensor, records: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        """[z_image, z_records] (B, 2 * latent_dim)."""
        if records is None:
            raise DataError(f"method {self.name} embeds the records with the images: pass the paired records")
        return torch.cat([self.embed_image(x), self.embed_records(records)], dim=1)

    def predict_codes(self, latent: torch.Tensor) -> torch.Tensor:
        """Probability of every code of the vocabulary (B, vocab_size) decoded from a latent of either modality."""
        return torch.sigmoid(self.records_decoder(latent))

    def forward(self, batch: dict[str, torch.Tensor]) -> LossOutput:
        x, records = batch["x"].float(), batch.get(RECORDS)
        if records is None:
            raise DataError(f"method {self.name} needs batches with the paired records ('records')")
        if x.shape[0] < 2:
            raise ConfigError(f"{self.name} needs at least 2 subjects per batch (train.batch_size)")
        if self.use_views and self.views is not None and self.training:
            x = self.views(x)
        z_image, z_records = self.embed_image(x), self.embed_records(records)
        codes = bag_of_codes(records[:, 0], self.vocab_size)
        image_self = F.mse_loss(self.image_decoder(z_image), x)
        image_cross = F.mse_loss(self.image_decoder(z_records), x)
        records_self = F.binary_cross_entropy_with_logits(self.records_decoder(z_records), codes)
        records_cross = F.binary_cross_entropy_with_logits(self.records_decoder(z_image), codes)
        contrast, _, _ = clip_loss(z_image, z_records, torch.tensor(1.0 / self.temperature, device=x.device))
        image_weight, records_weight, contrastive_weight = self.weights
        loss = (image_weight * (image_self + image_cross) / 2 + records_weight * (records_self + records_cross) / 2
                + contrastive_weight * contrast)
        metrics = {"loss": loss, "image_self": image_self, "image_cross": image_cross, "records_self": records_self,
                   "records_cross": records_cross, "contrastive": contrast}
        return LossOutput(loss, {key: float(value.detach()) for key, value in metrics.items()})
