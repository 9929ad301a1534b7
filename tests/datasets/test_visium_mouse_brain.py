"""visium-mouse-brain: the converter turns the package's gzipped files into a Space Ranger folder the spatial
loader reads (fast, on the fixture); the real sample through the apt route (slow, network)."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest
import torch

from biolatent.config import SpatialData
from biolatent.data.loaders import load_samples
from biolatent.datasets import RegistryUnreachable
from biolatent.datasets import visium_mouse_brain as vmb
from biolatent.datasets.apt import fetch_apt
from spatial_fixture import write_space_ranger


def gzipped(path, out):
    with path.open("rb") as source, gzip.open(out, "wb") as target:
        shutil.copyfileobj(source, target)
    return out


def test_convert_gives_a_space_ranger_folder(tmp_path):
    fx = write_space_ranger(tmp_path / "sr")
    spatial = fx.folder / "spatial"
    members = {
        vmb.MATRIX: gzipped(fx.folder / "filtered_feature_bc_matrix.h5", tmp_path / "m.h5.gz"),
        vmb.POSITIONS: gzipped(spatial / "tissue_positions_list.csv", tmp_path / "p.csv.gz"),
        vmb.SCALEFACTORS: spatial / "scalefactors_json.json",
        vmb.LOWRES: spatial / "tissue_lowres_image.png",
    }
    out = tmp_path / "out"
    out.mkdir()
    vmb.convert(members, out)
    converted = load_samples(SpatialData(path=out / vmb.FOLDER))
    original = load_samples(SpatialData(path=fx.folder, resolution="lowres"))
    assert converted.ids == original.ids
    assert torch.equal(converted.fields["expression"], original.fields["expression"])
    assert torch.equal(converted.x[:], original.x[:])


@pytest.mark.slow
@pytest.mark.network
def test_real_sample(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOLATENT_CACHE", str(tmp_path / "cache"))
    try:
        fetch_apt("visium-mouse-brain", progress=lambda _: None)
    except RegistryUnreachable as exc:
        pytest.skip(f"Debian archive unreachable: {exc}")
    samples = load_samples(SpatialData(dataset="visium-mouse-brain", image_size=32))
    assert len(samples) == 2695 and samples.info.n_features == 100
    assert samples.feature_names[:2] == ["Xkr4", "Gm1992"]  # genome order, chr1 first
    expression = samples.fields["expression"].numpy()
    assert samples.info.is_counts and np.array_equal(expression, np.round(expression))
    assert 40 < expression.sum(axis=1).mean() < 60  # about 50 UMIs a spot
    assert samples.x.image.shape == (599, 600, 3)
    assert samples.extra["spot_diameter_px"] == pytest.approx(96.3607 * 0.0516351, rel=1e-4)
    tiles = samples.x[:64]
    assert tiles.shape == (64, 3, 32, 32) and tiles.dtype == torch.float32
    # the tiles lie on tissue (H&E-stained, not white glass): darker than the image's background corner
    corner = samples.x.image[:40, :40].mean() / 255
    assert float(tiles.mean()) < corner - 0.1


@pytest.mark.slow
@pytest.mark.network
def test_real_sample_pretrains_embeds_and_evaluates_expression(tmp_path, monkeypatch, run_cli):
    """The issue's end-to-end run on the real sample with the committed config (2 epochs, a small sweep)."""
    from pathlib import Path

    import pandas as pd

    monkeypatch.setenv("BIOLATENT_CACHE", str(tmp_path / "cache"))
    try:
        fetch_apt("visium-mouse-brain", progress=lambda _: None)
    except RegistryUnreachable as exc:
        pytest.skip(f"Debian archive unreachable: {exc}")
    config = Path(__file__).parents[2] / "configs" / "spatial" / "visium_clip.yaml"
    run = tmp_path / "run"
    result = run_cli("pretrain", config, "--out", run, "--set", "train.epochs=2", "--quiet")
    assert result.code == 0, result.err
    assert run_cli("embed", run).code == 0
    result = run_cli("evaluate", run, "--expression", "--genes", "20", "--fractions", "0.2,1.0", "--seeds", "2",
                     "--supervised-steps", "5")
    assert result.code == 0, result.err
    folder = run / "evaluate" / "expression"
    efficiency = pd.read_csv(folder / "efficiency.tsv", sep="\t")
    assert set(efficiency.representation) == {"ssl", "random_init", "pca", "retrieval", "supervised"}
    assert efficiency["mean"].between(-1, 1).all()
    genes = pd.read_csv(folder / "expression_prediction.tsv", sep="\t")
    names = load_samples(SpatialData(dataset="visium-mouse-brain", image_size=16)).feature_names
    assert genes.gene.nunique() == 20 and set(genes.gene) <= set(names)
