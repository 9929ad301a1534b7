"""Self-supervised methods: ``forward(batch) -> LossOutput``, ``embed(x) -> (B, D)``."""

from biolatent.methods.registry import METHODS, build_method

__all__ = ["METHODS", "build_method"]
