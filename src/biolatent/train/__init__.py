"""The one training loop: a generic Lightning module drives every method the same way."""

from biolatent.train.fit import fit

__all__ = ["fit"]
