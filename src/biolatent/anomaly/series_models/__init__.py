"""Training and scoring of the series networks of ``biolatent.models`` on whole windows (healthy windows in,
every point of a window scored)."""
