"""Data per modality: loading into a SampleSet, views (augmentations), simulators."""
