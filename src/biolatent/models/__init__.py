"""Encoders: every one maps a batch of inputs to ``(B, out_dim)``; see ``models.registry``."""

from biolatent.models.registry import ENCODER_MODALITIES, ENCODERS, build_encoder, default_encoder

__all__ = ["ENCODERS", "ENCODER_MODALITIES", "build_encoder", "default_encoder"]
