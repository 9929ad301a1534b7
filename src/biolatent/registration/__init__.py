"""Learned deformable registration (VoxelMorph, a MICDIR-style pyramid): metrics, data and config (the losses are methods.registration_losses)."""
