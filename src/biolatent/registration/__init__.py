"""Learned deformable registration (VoxelMorph, a MICDIR-style pyramid): metrics, data and config.

The losses are ``biolatent.methods.registration_losses`` (the methods import them; methods sit below this package).
"""
