"""The cine heart phantom: its geometry follows the parameters, files and metadata, genotype-driven cohorts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from biolatent.data.simulate.heart import (
    KAPPA,
    PARAMETERS,
    Grid,
    draw_parameters,
    occupancy,
    render_cine,
    simulate_heart_cohort,
    wall_over_cycle,
)
from biolatent.errors import DataError
from biolatent.io.nifti import read_nifti, write_nifti

BASE = {"cavity_volume": 150.0, "wall_thickness": 9.0, "ejection_fraction": 0.6, "twist": 15.0}


def _voxel_ml(grid: Grid) -> float:
    return float(np.prod(grid.spacing)) / 1000.0


def test_myocardial_volume_is_conserved_analytically():
    t = np.arange(10) / 10
    a, w = wall_over_cycle(150.0, 0.6, 9.0, t)
    shell = 4 / 3 * np.pi * ((a + w) ** 2 * (KAPPA * a + w) - KAPPA * a**3)
    np.testing.assert_allclose(shell, shell[0], rtol=1e-9)
    cavity = 4 / 3 * np.pi * KAPPA * a**3 / 1000.0
    np.testing.assert_allclose(cavity[[0, 5]], [150.0, 150.0 * 0.4], rtol=1e-9)
    assert w[5] > w[0] == pytest.approx(9.0)  # systolic thickening


@pytest.mark.parametrize(("edv", "ef"), [(110.0, 0.5), (150.0, 0.6), (200.0, 0.68)])
def test_voxelised_volumes_follow_the_parameters(edv, ef):
    grid = Grid()
    parts = occupancy({**BASE, "cavity_volume": edv, "ejection_fraction": ef}, grid)
    lv = parts["lv_cavity"].sum(axis=(0, 1, 2)) * _voxel_ml(grid)
    myo = parts["myocardium"].sum(axis=(0, 1, 2)) * _voxel_ml(grid)
    assert lv[0] == pytest.approx(edv, rel=0.10)  # the base cut removes a few percent of the ellipsoid
    measured_ef = (lv[0] - lv.min()) / lv[0]
    assert measured_ef == pytest.approx(ef, abs=0.07)
    assert np.argmin(lv) == grid.n_frames // 2  # end-systole mid-cycle
    assert myo.max() / myo.min() < 1.12  # near-incompressible myocardium on the voxel grid


def test_render_is_seeded_and_site_dependent():
    a = render_cine(BASE, "site_a", np.random.default_rng(0))
    b = render_cine(BASE, "site_a", np.random.default_rng(0))
    c = render_cine(BASE, "site_b", np.random.default_rng(0))
    assert a.shape == (*Grid().shape, Grid().n_frames) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    with pytest.raises(DataError, match="unknown site"):
        render_cine(BASE, "site_z", np.random.default_rng(0))


def test_draw_parameters_within_ranges():
    table = draw_parameters(500, np.random.default_rng(1))
    for name, spec in PARAMETERS.items():
        assert table[name].between(spec.low, spec.high).all()
        assert table[name].mean() == pytest.approx(spec.mean, abs=3 * spec.sd / np.sqrt(500) + 0.02 * spec.sd)


def test_nifti_round_trip_and_dimension_check(tmp_path):
    data = np.random.default_rng(2).normal(size=(5, 6, 7, 3)).astype(np.float32)
    path = write_nifti(tmp_path / "c.nii.gz", data, (1.5, 1.5, 3.0), frame_seconds=0.05)
    volume = read_nifti(path, ndim=4)
    np.testing.assert_array_equal(volume.data, data)
    assert volume.spacing == pytest.approx((1.5, 1.5, 3.0, 0.05))
    with pytest.raises(DataError, match=r"holds 4D data .* expected a 3D volume"):
        read_nifti(path, ndim=3)
    (tmp_path / "bad.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(DataError, match="cannot read NIfTI"):
        read_nifti(tmp_path / "bad.nii.gz")


def test_cohort_files_and_genotype_driven_parameters(tmp_path):
    from biolatent.discover.genetics.simulate import heart_parameters, simulate_genotypes

    geno = simulate_genotypes(60, sequence_length=300_000, seed=3)
    params, scores, causal = heart_parameters(geno, {"cavity_volume": 0.8, "twist": 0.3}, n_causal=4, seed=4)
    assert list(params.columns) == ["cavity_volume", "twist"] and list(params.index) == geno.samples
    assert set(causal) == {"cavity_volume", "twist"} and all(len(v) == 4 for v in causal.values())
    assert {name: e["ID"] for name, e in scores.attrs["effects"].items()} == causal
    unclipped = params["cavity_volume"].between(80.0, 230.0, inclusive="neither")
    np.testing.assert_allclose(params.loc[unclipped, "cavity_volume"],
                               150.0 + 25.0 * scores.loc[unclipped, "cavity_volume"], rtol=1e-12)
    meta_path = simulate_heart_cohort(len(params), tmp_path, seed=5, parameters=params.iloc[:6], write_png=True)
    meta = pd.read_csv(meta_path, sep="\t")
    assert list(meta.columns[:3]) == ["id", "path", "site"]
    assert {"ejection_fraction", "wall_thickness", "cavity_volume", "twist", "stroke_volume"} <= set(meta.columns)
    assert list(meta.id) == geno.samples[:6]
    np.testing.assert_allclose(meta.cavity_volume, params.cavity_volume.iloc[:6], rtol=1e-5)
    assert read_nifti(tmp_path / meta.path[0], ndim=4).data.shape == (*Grid().shape, Grid().n_frames)
    assert (tmp_path / "slices" / f"{meta.id[0]}.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_simulate_heart(run_cli, tmp_path):
    result = run_cli("data", "simulate", "heart", "--n", "3", "--out", tmp_path / "c", "--seed", "1")
    assert result.code == 0, result.err
    meta = pd.read_csv(tmp_path / "c" / "meta.tsv", sep="\t")
    assert len(meta) == 3 and meta.site.isin(["site_a", "site_b", "site_c"]).all()
    again = run_cli("data", "simulate", "heart", "--n", "3", "--out", tmp_path / "c")
    assert again.code == 1 and "already holds a cohort" in again.err
    unknown = run_cli("data", "simulate", "lung", "--out", tmp_path / "d")
    assert unknown.code == 1 and "unknown simulator 'lung'" in unknown.err and not (tmp_path / "d").exists()
