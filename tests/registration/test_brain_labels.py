"""Synthetic brains carry their tissue label maps; the T2-like contrast renders the same anatomy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from biolatent.data.simulate.brain import TISSUE_LABELS, ellipsoid_template, simulate_brain


@pytest.fixture(scope="module")
def template():
    return ellipsoid_template()


def test_labels_are_the_most_probable_tissue(template):
    subject = simulate_brain(template, 0, 0, size=32)
    labels = subject.labels
    assert labels.dtype == np.uint8 and set(np.unique(labels)) <= {0, *TISSUE_LABELS}
    assert (labels > 0).sum() == subject.brain.sum()
    inside = subject.brain
    assert np.array_equal(labels[inside], subject.tissue.argmax(0)[inside] + 1)


def test_t2_contrast_inverts_tissue_means_on_the_same_anatomy(template):
    t1 = simulate_brain(template, 0, 1, size=32)
    t2 = simulate_brain(template, 0, 1, size=32, contrast="t2")
    assert np.array_equal(t1.labels, t2.labels)
    labels = t1.labels
    mean = {name: (float(t1.image[labels == k].mean()), float(t2.image[labels == k].mean()))
            for k, name in TISSUE_LABELS.items()}
    assert mean["wm"][0] > mean["gm"][0] > mean["csf"][0]  # T1: WM brightest
    assert mean["csf"][1] > mean["gm"][1] > mean["wm"][1]  # T2: CSF brightest


def test_cli_writes_label_maps_and_a_labels_column(run_cli, tmp_path, monkeypatch, template):
    import biolatent.data.simulate.brain as brain
    from biolatent.io.nifti import read_nifti

    monkeypatch.setattr(brain, "mni152_template", lambda progress=None: template)
    result = run_cli("data", "simulate", "brain", "--out", tmp_path / "c", "--n", "2", "--size", "32",
                     "--contrast", "t2")
    assert result.code == 0, result.err
    meta = pd.read_csv(tmp_path / "c" / "meta.tsv", sep="\t")
    assert meta["labels"].tolist() == ["brain-0001_labels.nii.gz", "brain-0002_labels.nii.gz"]
    labels = read_nifti(tmp_path / "c" / meta["labels"][0], ndim=3)
    image = read_nifti(tmp_path / "c" / meta["path"][0], ndim=3)
    assert labels.data.shape == image.data.shape and np.allclose(labels.affine, image.affine)
    assert set(np.unique(labels.data)) <= {0, 1, 2, 3}
    run_cli("data", "simulate", "brain", "--out", tmp_path / "d", "--n", "1", "--size", "32",
            "--contrast", "pd").expect_error("contrast")
