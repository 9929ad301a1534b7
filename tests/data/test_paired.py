"""Images paired with genotypes and genetic tables by subject id: alignment, standardisation, reports, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from biolatent.build import load_config
from biolatent.data.loaders import load_samples
from biolatent.data.paired import evenly_spaced, pairing_text, standardise_columns
from biolatent.errors import DataError
from biolatent.io.genotype_matrix import Genotypes
from biolatent.io.genotypes import write_plink

N = 16


def write_images(folder: Path, ids: list[str]) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in ids:
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def write_genotypes(prefix: Path, ids: list[str], n_variants: int = 10,
                    missing: float = 0.0) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(1)
    dosages = rng.integers(0, 3, (len(ids), n_variants)).astype(np.float32)
    dosages[:, 0] = 1.0  # no variation: dropped
    if missing:
        dosages[rng.random(dosages.shape) < missing] = np.nan
    variants = pd.DataFrame({"chrom": "1", "pos": np.arange(1, n_variants + 1) * 1000,
                             "id": [f"1:{(j + 1) * 1000}" for j in range(n_variants)], "ref": "A", "alt": "G"})
    write_plink(Genotypes(dosages, ids, variants), prefix)
    return prefix, dosages


@pytest.fixture
def cohort(tmp_path):
    ids = [f"s{i:02d}" for i in range(N)]
    images = write_images(tmp_path / "images", ids)
    # genotypes: every subject but s00, plus two people without images, in another order
    geno_ids = [*ids[1:][::-1], "x1", "x2"]
    prefix, dosages = write_genotypes(tmp_path / "geno", geno_ids)
    pgs = pd.DataFrame({"id": ids[:-1], "pgs_a": np.arange(N - 1, dtype=float), "pgs_b": np.arange(N - 1) ** 2.0})
    pgs.to_csv(tmp_path / "pgs.tsv", sep="\t", index=False)
    meta = pd.DataFrame({"id": ids, "trait": np.random.default_rng(2).normal(size=N)})
    meta.to_csv(tmp_path / "meta.tsv", sep="\t", index=False)
    return {"ids": ids, "images": images, "prefix": prefix, "geno_ids": geno_ids, "dosages": dosages,
            "pgs": tmp_path / "pgs.tsv", "root": tmp_path}


def config(cohort, **data):
    return load_config({"data": {"modality": "image2d", "path": str(cohort["images"]), "image_size": 16, **data},
                        "method": {"name": "contig"}, "model": {"name": "resnet", "widths": [4, 8]}})


def test_parts_are_aligned_by_id_standardised_and_the_rest_reported(cohort):
    samples = load_samples(config(cohort, genotypes=str(cohort["prefix"]), genetic_tables={"pgs": str(cohort["pgs"])})
                           .data)
    kept = cohort["ids"][1:-1]  # s00 has no genotypes, the last subject no polygenic score
    assert samples.ids == kept and samples.x.shape[0] == len(kept)
    assert samples.info.genetic_parts == {"genotypes": 9, "pgs": 2}
    # genotypes: each subject's own row (looked up by id, not by position), standardised per variant
    position = {s: i for i, s in enumerate(cohort["geno_ids"])}
    raw = cohort["dosages"][[position[s] for s in kept]][:, 1:].astype(float)
    p = raw.mean(0) / 2  # ALT frequency among the paired subjects; GCTA's standardisation, as the GRM's
    expected = (raw - 2 * p) / np.sqrt(2 * p * (1 - p))
    np.testing.assert_allclose(samples.fields["genotypes"].numpy(), expected, rtol=1e-5, atol=1e-6)
    pgs = np.arange(1, N - 1, dtype=float)
    np.testing.assert_allclose(samples.fields["pgs"][:, 0].numpy(), (pgs - pgs.mean()) / pgs.std(ddof=1), rtol=1e-5)
    report = samples.extra["pairing"]
    assert report["n_images"] == N and report["n_paired"] == N - 2 and report["n_dropped"] == 2
    assert report["parts"]["genotypes"]["n_images_without"] == 1
    assert report["parts"]["genotypes"]["examples_images_without"] == ["s00"]
    assert report["parts"]["genotypes"]["n_constant_dropped"] == 1
    assert report["parts"]["pgs"]["examples_images_without"] == [f"s{N - 1}"]
    text = pairing_text(report)
    assert text.startswith(f"paired {N - 2} of {N} images with genotypes (9 features), pgs (2 features)")
    assert "1 without genotypes (e.g. s00)" in text and f"1 without pgs (e.g. s{N - 1})" in text


def test_missing_calls_become_zero_and_tables_are_scaled_by_their_sd(cohort, tmp_path):
    prefix, dosages = write_genotypes(tmp_path / "gaps", cohort["ids"], missing=0.2)
    samples = load_samples(config(cohort, genotypes=str(prefix)).data)
    values = samples.fields["genotypes"].numpy()
    kept = dosages[:, 1:]  # the first variant does not vary
    assert np.isnan(kept).any() and (values[np.isnan(kept)] == 0.0).all()
    table, keep = standardise_columns(np.array([[1.0, 0.0], [1.0, 1.0], [1.0, 2.0]]))
    assert keep.tolist() == [False, True]
    np.testing.assert_allclose(table[:, 0], [-1.0, 0.0, 1.0])


def test_evenly_spaced_variants():
    assert evenly_spaced(10, None).tolist() == list(range(10))
    assert evenly_spaced(10, 3).tolist() == [0, 4, 9]
    assert evenly_spaced(3, 10).tolist() == [0, 1, 2]


def test_max_variants_thins_the_genome(cohort):
    samples = load_samples(config(cohort, genotypes=str(cohort["prefix"]), max_variants=4).data)
    assert samples.info.genetic_parts["genotypes"] <= 4


def test_relative_paths_resolve_against_the_yaml_folder(cohort):
    import yaml

    path = cohort["root"] / "run.yaml"
    path.write_text(yaml.safe_dump({
        "data": {"modality": "image2d", "path": "images", "image_size": 16, "genotypes": "geno",
                 "genetic_tables": {"pgs": "pgs.tsv"}},
        "method": {"name": "contig"}, "model": {"name": "resnet"}}))
    loaded = load_config(path)
    assert loaded.data.genotypes == cohort["prefix"] and loaded.data.genetic_tables["pgs"] == cohort["pgs"]


def test_embedding_config_drops_the_genetics_so_every_image_is_embedded(cohort):
    from biolatent.workflows.embed import data_config_for

    run = config(cohort, genotypes=str(cohort["prefix"]))
    samples = load_samples(run.data)
    embedded = load_samples(data_config_for(run, None, samples.info))
    assert len(embedded) == N and "genotypes" not in embedded.fields


def test_genotype_ids_matching_no_image(cohort, tmp_path):
    prefix, _ = write_genotypes(tmp_path / "other", [f"1_{i}" for i in cohort["ids"]])
    with pytest.raises(DataError, match=rf"genotypes .*no sample id in common between images \({N}"):
        load_samples(config(cohort, genotypes=str(prefix)).data)


def test_genotypes_with_every_call_missing(cohort, tmp_path):
    prefix, _ = write_genotypes(tmp_path / "empty", cohort["ids"], missing=1.0)
    with pytest.raises(DataError, match=f"every call of its {N} samples is missing"):
        load_samples(config(cohort, genotypes=str(prefix)).data)


def test_parts_that_disagree_on_ids(cohort, tmp_path):
    prefix, _ = write_genotypes(tmp_path / "half", cohort["ids"][:6])
    pgs = pd.DataFrame({"id": cohort["ids"][6:], "score": np.arange(N - 6.0)})
    pgs.to_csv(tmp_path / "late.tsv", sep="\t", index=False)
    message = f"disagree on ids: of {N} images, genotypes 6, pgs {N - 6} match, but no subject"
    with pytest.raises(DataError, match=message):
        load_samples(config(cohort, genotypes=str(prefix), genetic_tables={"pgs": str(tmp_path / "late.tsv")}).data)


@pytest.mark.parametrize(("table", "name", "message"), [
    ({"id": ["s01"], "score": ["high"]}, "pgs", "non-numeric columns: score"),
    ({"id": ["s01", "s02"], "score": [1.0, np.nan]}, "pgs", "1 missing values"),
    ({"id": ["s01"], "score": [1.0]}, "mask", "reserved batch key"),
    ({"id": ["s01"], "score": [1.0]}, "risk-score", "not a valid name"),
])
def test_bad_genetic_tables(cohort, tmp_path, table, name, message):
    pd.DataFrame(table).to_csv(tmp_path / "t.tsv", sep="\t", index=False)
    with pytest.raises(DataError, match=message):
        load_samples(config(cohort, genetic_tables={name: str(tmp_path / "t.tsv")}).data)


def write_run_yaml(path: Path, cohort, **data) -> Path:
    import yaml

    path.write_text(yaml.safe_dump({
        "data": {"modality": "image2d", "path": str(cohort["images"]), "image_size": 16, **data},
        "method": {"name": "contig", "embed_dim": 8}, "model": {"name": "resnet", "widths": [4, 8], "blocks": [1, 1]},
        "train": {"epochs": 2, "batch_size": 5, "warmup_epochs": 0}}))
    return path


def test_contig_cli_bad_pairing_is_one_line_and_writes_nothing(cohort, tmp_path, run_cli):
    prefix, _ = write_genotypes(tmp_path / "other", [f"1_{i}" for i in cohort["ids"]])
    out = tmp_path / "run"
    result = run_cli("pretrain", write_run_yaml(tmp_path / "bad.yaml", cohort, genotypes=str(prefix)), "--out", out,
                     "--quiet")
    result.expect_error("no sample id in common between images")
    assert not out.exists()


@pytest.mark.slow
def test_contig_pretrains_and_reports_the_pairing(cohort, tmp_path, run_cli):
    out = tmp_path / "run"
    config_path = write_run_yaml(tmp_path / "run.yaml", cohort, genotypes=str(cohort["prefix"]),
                                 genetic_tables={"pgs": str(cohort["pgs"])},
                                 metadata=str(cohort["root"] / "meta.tsv"))
    result = run_cli("pretrain", config_path, "--out", out)
    assert result.code == 0, result.err
    assert f"paired {N - 2} of {N} images with genotypes (9 features), pgs (2 features)" in result.err
    from biolatent.rundir import read_json

    metrics = read_json(out / "metrics.json")["pretrain"]
    assert metrics["pairing"]["n_paired"] == N - 2 and np.isfinite(metrics["final_loss"])
    assert {"final_loss_genotypes", "final_loss_pgs", "final_accuracy_genotypes"} <= set(metrics)
    assert run_cli("embed", out).code == 0  # every image, the unpaired ones too
    import anndata

    assert anndata.read_h5ad(out / "embeddings.h5ad").n_obs == N
    # what follows embed works on a contig run as on any other
    evaluated = run_cli("evaluate", out, "--label", "trait", "--fractions", "0.5,1.0", "--seeds", "2",
                        "--supervised-steps", "2")
    assert evaluated.code == 0, evaluated.err
    assert (out / "evaluate" / "trait" / "efficiency.tsv").is_file()
    discovered = run_cli("discover", out / "embeddings.h5ad", "--genotypes", cohort["prefix"], "--pcs", "0",
                         "--n-components", "2", "--no-qc", "--out", tmp_path / "discover")
    assert discovered.code == 0, discovered.err
    h2 = pd.read_csv(tmp_path / "discover" / "h2.tsv", sep="\t")
    assert list(h2["trait"]) == ["Z0", "Z1"]
    assert run_cli("report", out).code == 0
    html = (out / "report.html").read_text(encoding="utf-8")
    assert '<section id="pairing" data-status="ok">' in html and f"paired {N - 2} of {N} images" in html
