"""``biolatent discover``, ``gwas`` and ``h2`` through the real entry point on simulated genotypes with a truth.

The embeddings are a linear mix of two heritable traits (h2 = 0.6, five causal variants each, one of large
effect) and noise dimensions, so the latent phenotypes must carry genetic signal: GWAS hits at causal
variants and h2 well above zero for the leading trait. Bad inputs end with exit code 1, one ``error:`` line
and no output folder.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from biolatent.discover.genetics.simulate import simulate_genotypes
from biolatent.embed import write_embeddings
from biolatent.io.genotype_matrix import Genotypes
from biolatent.io.genotypes import write_plink

N = 400


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cohort")
    geno = simulate_genotypes(N, sequence_length=1_000_000, min_maf=0.05, seed=21)
    rng = np.random.default_rng(22)
    z = (geno.dosages - geno.dosages.mean(0)) / geno.dosages.std(0)
    causal = rng.choice(geno.n_variants, size=(2, 5), replace=False)
    genetic = []
    for row in causal:
        effects = np.array([3.0, 1.0, 1.0, 1.0, 1.0])
        g = z[:, row] @ effects
        genetic.append(g / g.std() * np.sqrt(0.6) + rng.normal(size=N) * np.sqrt(0.4))
    latent = np.column_stack(genetic) @ np.array([[1.0, 0.5, 0.0], [0.0, 0.8, 1.0]])
    embeddings = np.column_stack([latent, rng.normal(size=(N, 3)) * 0.3]).astype(np.float32)
    obs = pd.DataFrame({"batch": rng.choice(["a", "b"], N)}, index=pd.Index(geno.samples, name="id"))
    emb_path = write_embeddings(folder / "embeddings.h5ad", embeddings, obs, {"command": "test"})
    prefix = write_plink(geno, folder / "geno")
    covariates = pd.DataFrame({"id": geno.samples, "age": rng.normal(50, 10, N), "sex": rng.choice(["F", "M"], N)})
    covariates.to_csv(folder / "covariates.tsv", sep="\t", index=False)
    causal_ids = set(geno.variants["id"].to_numpy()[causal.ravel()])
    return {"folder": folder, "embeddings": emb_path, "prefix": prefix, "geno": geno, "causal": causal_ids,
            "covariates": folder / "covariates.tsv", "causal_rows": causal}


@pytest.mark.slow
def test_discover_end_to_end_finds_the_simulated_genetics(run_cli, cohort, tmp_path):
    out = tmp_path / "discover"
    result = run_cli("discover", cohort["embeddings"], "--genotypes", cohort["prefix"], "--covariates",
                     cohort["covariates"], "--n-components", "3", "--pcs", "2", "--out", out)
    assert result.code == 0, result.err
    assert result.out.strip() == str(out / "report.html")
    phenotypes = pd.read_csv(out / "phenotypes.tsv", sep="\t")
    assert list(phenotypes.columns) == ["id", "Z0", "Z1", "Z2"] and len(phenotypes) == N
    np.testing.assert_allclose(phenotypes[["Z0", "Z1", "Z2"]].mean(), 0.0, atol=0.01)  # inverse-normal scores
    gwas = pd.read_csv(out / "gwas" / "gwas.tsv", sep="\t")
    assert list(gwas.columns) == ["#CHROM", "POS", "ID", "REF", "ALT", "A1", "TRAIT", "OBS_CT", "BETA", "SE",
                                  "T_STAT", "P"]
    assert set(gwas.TRAIT) == {"Z0", "Z1", "Z2"} and (gwas.OBS_CT == N).all()
    leads = pd.read_csv(out / "gwas" / "lead_variants.tsv", sep="\t")
    assert len(leads) >= 1
    hits = gwas[gwas.P < 5e-8]
    near_causal = {
        v for v in hits.ID
        if any(abs(int(v.split(":")[1]) - int(c.split(":")[1])) < 50_000 for c in cohort["causal"])
    }
    assert len(near_causal) >= 0.9 * hits.ID.nunique()  # hits lie at the causal loci
    h2 = pd.read_csv(out / "h2.tsv", sep="\t")
    assert list(h2.columns[:5]) == ["trait", "h2", "se", "method", "n"]
    best = h2.sort_values("h2").iloc[-1]
    assert best.h2 > 0.25 and best.ci_low > 0  # the signal is heritable, not noise
    rg = pd.read_csv(out / "rg.tsv", sep="\t")
    assert len(rg) == 3 and set(rg.columns) >= {"trait_1", "trait_2", "rg", "se"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["id_matching"]["n_matched"] == N and summary["gwas"]["genetic_pcs"]["pc_names"] == ["PC1", "PC2"]
    assert "age" in summary["gwas"]["covariate_names"] and "sex_M" in summary["gwas"]["covariate_names"]
    assert (out / "clusters" / "clusters.tsv").is_file() and (out / "clusters" / "associations.tsv").is_file()
    html = (out / "report.html").read_text()
    assert "Manhattan plot of Z0" in html and "Lead variants" in html and "data:image/png;base64" in html


@pytest.mark.slow
def test_report_of_a_run_includes_the_discovery_section(run_cli, cohort, tmp_path):
    import shutil

    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(cohort["embeddings"], run / "embeddings.h5ad")
    result = run_cli("discover", run / "embeddings.h5ad", "--genotypes", cohort["prefix"], "--n-components", "2",
                     "--pcs", "0", "--no-qc", "--h2-method", "he", "--cluster-method", "kmeans", "--n-clusters", "2")
    assert result.code == 0, result.err
    assert (run / "discover" / "h2.tsv").is_file()  # default output folder: next to the embeddings
    assert run_cli("report", run).code == 0
    assert "Discovery: latent phenotypes, GWAS and heritability" in (run / "report.html").read_text()


@pytest.mark.slow  # a real training run; see issue 16 part 8 (fast set under 3 minutes)
def test_discover_scores_a_polygenic_score_from_weights_and_tests_it_against_the_clusters(run_cli, cohort, tmp_path):
    """Weights of trait 1's causal variants (A1 = ALT for some, REF for others): pgs.tsv equals the score
    computed by hand, and the two k-means clusters, which split the samples along the embeddings' largest
    direction of variance (dimensions 1 and 2, both loaded on trait 1), differ in it."""
    geno = cohort["geno"]
    rows = cohort["causal_rows"][1]
    z_scale = geno.dosages[:, rows].std(0)
    beta = np.array([3.0, 1.0, 1.0, 1.0, 1.0]) / z_scale  # per-allele effects of the simulated trait
    flip = np.array([False, True, False, True, False])
    a1 = np.where(flip, geno.variants.ref.to_numpy()[rows], geno.variants.alt.to_numpy()[rows])
    weights = pd.DataFrame({"ID": geno.variants.id.to_numpy()[rows], "A1": a1, "BETA": np.where(flip, -beta, beta)})
    weights.loc[len(weights)] = ["not:a:variant", "A", 9.0]
    weights.to_csv(tmp_path / "w.tsv", sep="\t", index=False)
    out = tmp_path / "d"
    result = run_cli("discover", cohort["embeddings"], "--genotypes", cohort["prefix"], "--n-components", "2",
                     "--pcs", "0", "--h2-method", "he", "--cluster-method", "kmeans", "--n-clusters", "2",
                     "--pgs-weights", tmp_path / "w.tsv", "--out", out)
    assert result.code == 0, result.err
    assert "polygenic score from 5 of 6 weighted variants (1 not in the QC'd genotypes" in result.err
    pgs = pd.read_csv(out / "pgs.tsv", sep="\t", index_col="id")
    by_hand = geno.dosages[:, rows] @ beta  # flipped weights on 2 - dosage: the same score up to a constant
    offset = pgs["pgs"].loc[geno.samples].to_numpy() - by_hand
    np.testing.assert_allclose(offset, (2.0 * -beta[flip]).sum(), rtol=1e-9)
    associations = pd.read_csv(out / "clusters" / "associations.tsv", sep="\t")
    row = associations.set_index("column").loc["pgs"]
    assert row.p < 1e-6  # trait 1 drives the split, so its score differs between the two clusters
    summary = json.loads((out / "summary.json").read_text())
    assert summary["polygenic_score"]["n_used"] == 5 and summary["polygenic_score"]["n_absent"] == 1


def test_discover_pgs_options_are_checked_before_any_work(run_cli, cohort, tmp_path):
    out = tmp_path / "out"
    failed = run_cli("discover", cohort["embeddings"], "--genotypes", cohort["prefix"], "--pgs-weights",
                     tmp_path / "none.tsv", "--out", out)
    failed.expect_error("--pgs-weights: file not found")
    failed = run_cli("discover", cohort["embeddings"], "--genotypes", cohort["prefix"], "--pgs-weights",
                     cohort["covariates"], "--polygenic-score", "batch", "--out", out)
    failed.expect_error("not both")
    (tmp_path / "w.tsv").write_text("ID\tA1\tBETA\nnot:a:variant\tA\t1.0\n")
    failed = run_cli("discover", cohort["embeddings"], "--genotypes", cohort["prefix"], "--pgs-weights",
                     tmp_path / "w.tsv", "--out", out)
    failed.expect_error("none of the 1 weighted variants")
    assert not out.exists()


def test_gwas_and_h2_commands_on_the_written_phenotypes(run_cli, cohort, tmp_path):
    pheno = tmp_path / "pheno.tsv"
    rng = np.random.default_rng(5)
    geno = cohort["geno"]
    pd.DataFrame({"id": geno.samples, "y": geno.dosages[:, 3] + rng.normal(size=N)}).to_csv(pheno, sep="\t",
                                                                                               index=False)
    result = run_cli("gwas", "--genotypes", cohort["prefix"], "--phenotypes", pheno, "--pcs", "2", "--out",
                     tmp_path / "g")
    assert result.code == 0, result.err
    table = pd.read_csv(tmp_path / "g" / "gwas.tsv", sep="\t")
    assert table.sort_values("P").iloc[0].ID == geno.variants.id[3]
    assert {p.name for p in (tmp_path / "g" / "plots").iterdir()} == {"manhattan_y.png", "qq_y.png"}
    result = run_cli("gwas", "--genotypes", cohort["prefix"], "--phenotypes", pheno, "--pcs", "2", "--no-plots",
                     "--out", tmp_path / "g2")
    assert result.code == 0, result.err
    assert not (tmp_path / "g2" / "plots").exists()
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "g2" / "gwas.tsv", sep="\t"), table)
    seconds = json.loads((tmp_path / "g2" / "metrics.json").read_text())["gwas"]["seconds"]
    assert set(seconds) == {"scan", "qc", "pcs", "regression", "write", "clump", "plots", "plots_wait"}
    assert all(v >= 0 for v in seconds.values()) and seconds["plots"] == seconds["plots_wait"] == 0.0
    assert seconds["pcs"] > 0 and seconds["qc"] + seconds["pcs"] + seconds["regression"] <= seconds["scan"]
    result = run_cli("gwas", "--genotypes", cohort["prefix"], "--phenotypes", pheno, "--pcs", "2", "--no-plots",
                     "--output-format", "parquet", "--out", tmp_path / "g3")
    assert result.code == 0, result.err
    assert result.out.strip().endswith("gwas.parquet")
    assert not (tmp_path / "g3" / "gwas.tsv").exists()
    parquet = pd.read_parquet(tmp_path / "g3" / "gwas.parquet")
    assert list(parquet.columns) == [*table.columns, "LOG10_P"]
    np.testing.assert_allclose(-np.log10(parquet["P"]), parquet["LOG10_P"], rtol=1e-9)
    for column in table.columns:  # the same numbers (the text keeps about 15 significant digits)
        if table[column].dtype.kind == "f":
            np.testing.assert_allclose(parquet[column].to_numpy(), table[column].to_numpy(), rtol=1e-12)
        else:
            assert parquet[column].astype(str).tolist() == table[column].astype(str).tolist()
    run_cli("gwas", "--genotypes", cohort["prefix"], "--phenotypes", pheno, "--output-format", "csv", "--out",
            tmp_path / "g4").expect_error("--output-format must be tsv or parquet")
    assert not (tmp_path / "g4").exists()
    result = run_cli("h2", "--genotypes", cohort["prefix"], "--phenotypes", pheno, "--out", tmp_path / "h")
    assert result.code == 0, result.err
    assert list(pd.read_csv(tmp_path / "h" / "h2.tsv", sep="\t").columns[:5]) == ["trait", "h2", "se", "method", "n"]


def test_discover_ids_that_do_not_overlap(run_cli, cohort, tmp_path):
    folder = tmp_path / "other"
    folder.mkdir()
    obs = pd.DataFrame(index=pd.Index([f"x{i}" for i in range(30)], name="id"))
    emb = write_embeddings(folder / "e.h5ad", np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32), obs,
                           {})
    out = tmp_path / "out"
    run_cli("discover", emb, "--genotypes", cohort["prefix"], "--out", out).expect_error("no sample id in common")
    assert not out.exists()


def _pheno(tmp_path, values: dict[str, np.ndarray], samples: list[str], name: str = "p.tsv"):
    path = tmp_path / name
    pd.DataFrame({"id": samples, **values}).to_csv(path, sep="\t", index=False)
    return path


def test_gwas_constant_trait(run_cli, cohort, tmp_path):
    pheno = _pheno(tmp_path, {"flat": np.ones(N)}, cohort["geno"].samples)
    out = tmp_path / "out"
    failed = run_cli("gwas", "--genotypes", cohort["prefix"], "--phenotypes", pheno, "--out", out)
    failed.expect_error("'flat'", "constant")
    assert not out.exists()


def test_gwas_singular_covariates(run_cli, cohort, tmp_path):
    samples = cohort["geno"].samples
    rng = np.random.default_rng(1)
    pheno = _pheno(tmp_path, {"y": rng.normal(size=N)}, samples)
    age = rng.normal(50, 10, N)
    covar = _pheno(tmp_path, {"age": age, "age_months": age * 12}, samples, "c.tsv")
    out = tmp_path / "out"
    failed = run_cli("gwas", "--genotypes", cohort["prefix"], "--phenotypes", pheno, "--covariates", covar,
                     "--out", out)
    failed.expect_error("singular", "age_months")
    assert not out.exists()


def test_gwas_variant_with_all_calls_missing(run_cli, cohort, tmp_path):
    geno = cohort["geno"]
    dosages = geno.dosages[:, :40].copy()
    dosages[:, 7] = np.nan
    prefix = write_plink(Genotypes(dosages, geno.samples, geno.variants.iloc[:40].reset_index(drop=True)),
                         tmp_path / "holes")
    pheno = _pheno(tmp_path, {"y": np.random.default_rng(2).normal(size=N)}, geno.samples)
    result = run_cli("gwas", "--genotypes", prefix, "--phenotypes", pheno, "--no-qc", "--out", tmp_path / "noqc")
    assert result.code == 0, result.err
    assert "1 variants untested" in result.err
    table = pd.read_csv(tmp_path / "noqc" / "gwas.tsv", sep="\t")
    assert np.isnan(table.loc[7, "BETA"]) and table.drop(index=7).BETA.notna().all() and table.loc[7, "OBS_CT"] == 0
    result = run_cli("gwas", "--genotypes", prefix, "--phenotypes", pheno, "--out", tmp_path / "qc")
    assert result.code == 0, result.err
    table = pd.read_csv(tmp_path / "qc" / "gwas.tsv", sep="\t")
    assert geno.variants.id[7] not in set(table.ID) and len(table) == 39  # QC removed it
    assert json.loads((tmp_path / "qc" / "metrics.json").read_text())["gwas"]["qc_report"]["n_all_missing"] == 1


@pytest.mark.parametrize(("suffix", "n_dropped", "message"), [
    (".fam", 1, "the .fam lacks samples"),  # same .bed size: caught by the padding bits
    (".fam", 4, "bytes, but"),
    (".bim", 1, "bytes, but"),
])
def test_gwas_bed_bim_fam_count_mismatch(run_cli, cohort, tmp_path, suffix, n_dropped, message):
    import shutil

    prefix = tmp_path / "broken"
    for part in (".bed", ".bim", ".fam"):
        shutil.copy(f"{cohort['prefix']}{part}", f"{prefix}{part}")
    lines = (tmp_path / f"broken{suffix}").read_text().splitlines()
    (tmp_path / f"broken{suffix}").write_text("\n".join(lines[:-n_dropped]) + "\n")
    pheno = _pheno(tmp_path, {"y": np.arange(N, dtype=float)}, cohort["geno"].samples)
    out = tmp_path / "out"
    for command in ("gwas", "h2"):
        failed = run_cli(command, "--genotypes", prefix, "--phenotypes", pheno, "--out", out)
        failed.expect_error("bed/bim/fam mismatch", message)
        assert not out.exists()


def test_discover_unknown_choice(run_cli, cohort, tmp_path):
    failed = run_cli("discover", cohort["embeddings"], "--genotypes", cohort["prefix"], "--engine", "spark")
    failed.expect_error("--engine must be numpy or hail")
    failed = run_cli("discover", cohort["embeddings"], "--genotypes", cohort["prefix"], "--cluster-method",
                     "kmeans")
    failed.expect_error("needs the number of clusters k")


def test_gwas_dosage_from_vcf(run_cli, tmp_path):
    from biolatent.discover.genetics.gwas import linear_gwas
    from biolatent.io.genotypes import read_genotypes

    rng = np.random.default_rng(8)
    n, m = 80, 12
    dosage = np.clip(rng.binomial(2, 0.4, (n, m)) + rng.normal(0, 0.15, (n, m)), 0, 2).round(3)
    samples = [f"p{i}" for i in range(n)]
    lines = ["##fileformat=VCFv4.2", "##contig=<ID=1>",
             '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
             '##FORMAT=<ID=DS,Number=A,Type=Float,Description="ALT dosage">',
             "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *samples])]
    for j in range(m):
        calls = [f"{'0/0' if d < 0.5 else '0/1' if d < 1.5 else '1/1'}:{d}" for d in dosage[:, j]]
        lines.append("\t".join(["1", str(1000 * (j + 1)), f"rs{j}", "A", "G", ".", "PASS", ".", "GT:DS", *calls]))
    vcf = tmp_path / "d.vcf"
    vcf.write_text("\n".join(lines) + "\n")
    pheno = _pheno(tmp_path, {"y": dosage[:, 3] + rng.normal(size=n)}, samples)
    result = run_cli("gwas", "--genotypes", vcf, "--phenotypes", pheno, "--no-qc", "--dosage", "--out", tmp_path / "d")
    assert result.code == 0, result.err
    table = pd.read_csv(tmp_path / "d" / "gwas.tsv", sep="\t")
    expected = linear_gwas(read_genotypes(vcf, dosage=True), pd.read_csv(pheno, sep="\t", index_col="id"))
    np.testing.assert_allclose(table.BETA, expected.BETA, rtol=1e-9)
    hard = run_cli("gwas", "--genotypes", vcf, "--phenotypes", pheno, "--no-qc", "--out", tmp_path / "h")
    assert hard.code == 0 and not np.allclose(pd.read_csv(tmp_path / "h" / "gwas.tsv", sep="\t").BETA, table.BETA)
    failed = run_cli("gwas", "--genotypes", vcf, "--phenotypes", pheno, "--dosage", "--engine", "hail",
                     "--out", tmp_path / "x")
    failed.expect_error("hard calls")
