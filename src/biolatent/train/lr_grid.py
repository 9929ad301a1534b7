"""The learning-rate grid of the supervised baselines' budget rule (``train.early_stopping``): the run's
``train.lr`` times each multiplier is tried, the one with the lowest validation loss kept."""

LR_MULTIPLIERS = (0.3, 1.0, 3.0)
