"""Genome-scale DNA through the CLI: pre-training on a genome's windows streamed from its FASTA, then the transfer
evaluation on another labelled set (``evaluate --data``)."""

from __future__ import annotations

import pandas as pd
import pytest

from biolatent.io.fasta import read_fasta, write_fasta
from conftest import TINY_MODELS, write_config


@pytest.fixture
def genome_run(tmp_path, dna_files, run_cli):
    """A tiny 'genome' (the simulated sequences joined into two chromosomes), pre-trained in windows of 40 bases
    every 20, with the first 400 bases of chrA held out."""
    fasta, _ = dna_files
    sequences = [seq for _, seq in read_fasta(fasta)]
    genome = write_fasta(tmp_path / "genome.fa", [("chrA", "".join(sequences[:40])), ("chrB", "".join(sequences[40:]))],
                         width=60)
    bed = tmp_path / "held_out.bed"
    bed.write_text("chrA\t0\t400\n")
    config = write_config(tmp_path / "genome.yaml", {
        "data": {"modality": "dna", "path": str(genome), "window": 40, "window_stride": 20, "exclude_regions":
                 str(bed)},
        "method": {"name": "mlm"}, "model": {"name": "nt", **TINY_MODELS["nt"]},
        "train": {"epochs": 1, "batch_size": 16, "seed": 0}})
    result = run_cli("pretrain", config, "--out", tmp_path / "run", "--quiet")
    assert result.code == 0, result.err
    return tmp_path / "run"


def test_pretraining_reads_windows_and_leaves_the_held_out_regions_out(genome_run):
    import json

    metrics = json.loads((genome_run / "metrics.json").read_text())["pretrain"]
    # chrA 1600 bases -> 79 windows, chrB 1600 -> 79; the 20 windows starting before base 400 of chrA are held out
    assert metrics["n_samples"] == 79 + 79 - 20
    assert (genome_run / "model.safetensors").is_file()


def test_transfer_evaluation_on_other_data(genome_run, dna_files, run_cli, tmp_path):
    fasta, meta = dna_files
    other = write_config(tmp_path / "peaks.yaml", {"data": {"modality": "dna", "path": str(fasta),
                                                            "metadata": str(meta)}})
    result = run_cli("evaluate", genome_run, "--data", other, "--label", "label", "--fractions", "0.5,1.0",
                     "--seeds", "2", "--supervised-steps", "3")
    assert result.code == 0, result.err
    folder = genome_run / "transfer" / "peaks"
    table = pd.read_csv(folder / "evaluate" / "label" / "efficiency.tsv", sep="\t")
    assert set(table.representation) == {"ssl", "random_init", "pca", "supervised"}
    assert set(table.fraction) == {0.5, 1.0}
    embeddings = folder / "embeddings.h5ad"
    import anndata

    assert anndata.read_h5ad(embeddings).n_obs == len(read_fasta(fasta))  # the other data, not the windows
    assert not (genome_run / "evaluate").exists()  # the run's own evaluation is untouched
    evaluation = pd.read_json(folder / "evaluate" / "label" / "evaluate.json", typ="series")
    assert evaluation["data"] == str(other)
    # the supervised baseline's rule budget counts the pre-training's windows, not the other data's samples
    assert "138 samples" in evaluation["supervised"]["rule"]
    report = run_cli("report", genome_run)
    assert report.code == 0, report.err
    html = (genome_run / "report.html").read_text()
    assert "Label efficiency: label, transferred to peaks" in html


def test_transfer_errors(genome_run, run_cli, tmp_path):
    run_cli("evaluate", genome_run, "--data", tmp_path / "x.yaml", "--label", "label", "--batch", "b").expect_error(
        "--data", "--batch")
    genome_again = write_config(tmp_path / "g.yaml", {"data": {"modality": "dna", "path": str(tmp_path /
                                                                "genome.fa"), "window": 40}})
    run_cli("evaluate", genome_run, "--data", genome_again, "--label", "chrom").expect_error("in memory")
    run_cli("evaluate", genome_run, "--data", genome_again, "--label", "chrom", "--protocol",
            "inductive").expect_error("does not apply to --data")
    assert not (genome_run / "transfer").exists()
