"""A convolutional encoder-decoder with U-Net skips for dense (per-pixel or per-voxel) logits, 2D or 3D.

The encoder is ``ConvEncoder`` (stride-2 4x4(x4) convolutions with LeakyReLU, no normalisation: the backbone of
the reconstruction anomaly detectors) and the decoder mirrors ``ConvDecoder`` (4x4 stride-2 transposed
convolutions back to full resolution, then a 3x3(x3) convolution) without the dense bottleneck. With ``skip=True``
(default) the decoder has U-Net skip connections (Ronneberger, Fischer & Brox 2015, MICCAI, "U-Net: convolutional
networks for biomedical image segmentation"): after each upsampling the encoder features of the same resolution
(and, at full resolution, the input) are concatenated; ``skip=False`` gives the plain encoder-decoder.
"""

from __future__ import annotations

import torch
from torch import nn

from biolatent.errors import ConfigError
from biolatent.models.conv_encoder import CONV, TRANSPOSED, ConvEncoder, check_architecture, check_spatial_dims


class SegmentationUNet(nn.Module):
    """``logits(x (B, C, *spatial)) -> (B, *spatial)``: one logit per pixel (voxel)."""

    def __init__(
        self,
        encoder: ConvEncoder | None = None,
        *,
        in_channels: int = 1,
        image_size: int = 64,
        widths: tuple[int, ...] = (16, 32, 64),
        skip: bool = True,
        spatial_dims: int = 2,
    ) -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        check_architecture(image_size, widths, 1, in_channels)
        spatial_dims = check_spatial_dims(spatial_dims)
        if encoder is None:
            encoder = ConvEncoder(in_channels, image_size, widths, spatial_dims)
        elif not isinstance(encoder, ConvEncoder) or encoder.spatial_dims != spatial_dims:
            raise ConfigError(f"the segmentation U-Net needs a {spatial_dims}D ConvEncoder (or encoder=None)")
        self.encoder = encoder
        self.in_channels, self.image_size, self.widths = in_channels, image_size, widths
        self.skip, self.spatial_dims = bool(skip), spatial_dims
        reversed_widths = list(reversed(widths))
        stages: list[nn.Module] = []
        for k, width in enumerate(reversed_widths):
            following = reversed_widths[k + 1] if k + 1 < len(reversed_widths) else width
            incoming = width * (2 if skip and k > 0 else 1)  # stage k > 0 also sees the encoder skip of its input
            stages.append(nn.Sequential(TRANSPOSED[spatial_dims](incoming, following, kernel_size=4, stride=2,
                                                                 padding=1), nn.LeakyReLU(0.2)))
        self.stages = nn.ModuleList(stages)
        self.head = CONV[spatial_dims](widths[0] + (in_channels if skip else 0), 1, kernel_size=3, padding=1)

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        features, h = [], x
        for layer in self.encoder.body:
            h = layer(h)
            if isinstance(layer, nn.LeakyReLU):
                features.append(h)
        return features

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, *spatial) -> (B, *spatial) logits."""
        features = self._features(x)
        skips = [*reversed(features[:-1]), x]  # what joins the output of stage k, from coarse to fine
        h = features[-1]
        for stage, joined in zip(self.stages, skips, strict=True):
            h = stage(h)
            if self.skip:
                h = torch.cat([h, joined], dim=1)
        return self.head(h)[:, 0]
