"""Neural models of whole windows of a series (trained on healthy windows, scoring every point of a window)."""
