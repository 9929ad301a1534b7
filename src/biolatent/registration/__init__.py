"""Learned deformable registration (VoxelMorph, a MICDIR-style pyramid): losses, metrics, data and config."""
