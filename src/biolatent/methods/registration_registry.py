"""Registration method registry: names used in a registration config's ``method.name``."""

from __future__ import annotations

from typing import Any

from biolatent.errors import ConfigError
from biolatent.methods.micdir import MICDIR
from biolatent.methods.registration_base import RegistrationMethod
from biolatent.methods.voxelmorph import VoxelMorph

REGISTRATION_METHODS: dict[str, type[RegistrationMethod]] = {"voxelmorph": VoxelMorph, "micdir": MICDIR}


def build_registration_method(name: str, **hparams: Any) -> RegistrationMethod:
    if name not in REGISTRATION_METHODS:
        raise ConfigError(f"method.name: unknown registration method {name!r} "
                          f"(valid: {', '.join(REGISTRATION_METHODS)})")
    return REGISTRATION_METHODS[name](**hparams)
