"""geuvadis-chr22 offline: safe tar extraction, the apt route on a locally built .deb, conversion of tiny files."""

from __future__ import annotations

import gzip
import hashlib
import io
import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest

from biolatent.datasets import DATASETS, RegistryUnreachable, geuvadis
from biolatent.datasets import apt as apt_module
from biolatent.datasets.apt import AptRecipe, download_deb, extract_tar_members, fetch_apt
from biolatent.errors import DataError
from biolatent.io import read_table
from biolatent.io.genotypes import read_genotypes

VCF = """##fileformat=VCFv4.2
##contig=<ID=chr22>
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tHG1\tHG2\tNA3
chr22\t10\t22_10\tT\tC\t100\tPASS\t.\tGT\t0|0\t1|0\t1|1
chr22\t20\t22_20\tTA\tT\t100\tPASS\t.\tGT\t0|1\t1|1\t0|0
chr22\t30\t22_30\tG\tA,C\t100\tPASS\t.\tGT\t0|1\t1|2\t0|0
chr22\t40\t22_40\tG\tA\t100\tPASS\t.\tGT\t0|1\t1|1\t0|0
"""
BED = ("#chr\tstart\tend\tgene\tlength\tstrand\tHG1\tHG2\tNA3\n"
       "chr22\t100\t101\tENSG1.1\t50\t+\t0.5\t1.5\t2.5\n"
       "chr22\t200\t201\tENSG2.3\t70\t-\t3\t4\t5\n")
COVARIATES = ("SampleID HG1 HG2 NA3\n/data/x/genotypes_1_1_svd_PC1 1 2 3\n/data/x/genes_1_1_svd_PC1 -1 -2 -3\n")


def _members(folder: Path) -> dict[str, Path]:
    files = {geuvadis.GENOTYPES: VCF, geuvadis.EXPRESSION: BED, geuvadis.COVARIATES: COVARIATES}
    out = {}
    for name, text in files.items():
        (folder / name).write_bytes(gzip.compress(text.encode()))
        out[name] = folder / name
    return out


def test_convert_tiny_files(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    geuvadis.convert(_members(tmp_path), out)
    geno = read_genotypes(out / geuvadis.PREFIX)
    assert geno.samples == ["HG1", "HG2", "NA3"] and geno.variants.id.tolist() == ["22_10", "22_40"]  # SNPs only
    np.testing.assert_array_equal(geno.dosages, [[0, 1], [1, 2], [2, 0]])
    expression = read_table(out / "expression.tsv")
    assert expression.index.tolist() == ["HG1", "HG2", "NA3"] and expression.columns.tolist() == ["ENSG1.1", "ENSG2.3"]
    np.testing.assert_array_equal(expression.to_numpy(), [[0.5, 3], [1.5, 4], [2.5, 5]])
    genes = read_table(out / "genes.tsv", id_column="gene")
    assert genes.loc["ENSG2.3", "strand"] == "-" and genes.loc["ENSG1.1", "start"] == 100
    covariates = read_table(out / "covariates.tsv")
    assert covariates.columns.tolist() == ["genotypes_1_1_svd_PC1", "genes_1_1_svd_PC1"]
    np.testing.assert_array_equal(covariates.to_numpy(), [[1, -1], [2, -2], [3, -3]])


def _tar(path: Path, entries: list[tuple[str, bytes | None, str | None]]) -> Path:
    with tarfile.open(path, "w:xz") as tar:
        for name, data, link in entries:
            info = tarfile.TarInfo(name)
            if link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tar.addfile(info)
            else:
                info.size = len(data or b"")
                tar.addfile(info, io.BytesIO(data or b""))
    return path


def test_tar_extraction_is_safe(tmp_path):
    archive = _tar(tmp_path / "a.tar.xz", [("./good.txt", b"good", None), ("./other.txt", b"no", None),
                                           ("../evil.txt", b"evil", None), ("/abs.txt", b"abs", None),
                                           ("./link.txt", None, "/etc/passwd")])
    found = extract_tar_members(archive, ("good.txt",), tmp_path / "x")
    assert found["good.txt"].read_bytes() == b"good" and sorted(p.name for p in (tmp_path / "x").iterdir()) == [
        "good.txt"]
    with pytest.raises(DataError, match="link"):
        extract_tar_members(archive, ("link.txt",), tmp_path / "y")
    for bad in ("../evil.txt", "/abs.txt"):
        archive = _tar(tmp_path / "b.tar.xz", [(bad, b"x", None)])
        with pytest.raises(DataError, match="unsafe"):
            extract_tar_members(archive, (str(Path(bad)),), tmp_path / "z")
    assert not (tmp_path / "evil.txt").exists()
    with pytest.raises(DataError, match="has no member"):
        extract_tar_members(_tar(tmp_path / "c.tar.xz", [("./good.txt", b"g", None)]), ("nope",), tmp_path / "w")


def _fake_deb_factory(tmp_path: Path, archive: Path, counter: list[int]):
    def fake(package: str, dest: Path) -> Path:
        counter.append(1)
        root = tmp_path / "debroot"
        inner = root / "usr/share/doc/toy/examples.tar.xz"
        inner.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(archive, inner)
        (root / "DEBIAN").mkdir(exist_ok=True)
        (root / "DEBIAN/control").write_text(f"Package: {package}\nVersion: 1.0\nArchitecture: all\n"
                                             "Maintainer: t <t@t>\nDescription: toy\n")
        dest.mkdir(parents=True, exist_ok=True)
        deb = dest / f"{package}_1.0_all.deb"
        subprocess.run(["dpkg-deb", "--build", "-Zxz", str(root), str(deb)], check=True, capture_output=True)
        return deb
    return fake


def test_fetch_apt_route_with_a_local_deb(tmp_path, monkeypatch):
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed (not a Debian system)")
    members = _members(tmp_path)
    archive = _tar(tmp_path / "examples.tar.xz", [(f"./{n}", p.read_bytes(), None) for n, p in members.items()])
    recipe = AptRecipe(**{**{f: getattr(geuvadis.RECIPE, f) for f in ("description", "modality", "members",
                                                                         "convert", "data_config")},
                          "name": "toy-apt", "package": "toy-data", "version": "1.0",
                          "sha256": {n: hashlib.sha256(p.read_bytes()).hexdigest() for n, p in members.items()},
                          "archive": "/usr/share/doc/toy/examples.tar.xz",
                          "archive_sha256": hashlib.sha256(archive.read_bytes()).hexdigest()})
    monkeypatch.setitem(DATASETS, "toy-apt", recipe)
    monkeypatch.setenv("BIOLATENT_CACHE", str(tmp_path / "cache"))
    calls: list[int] = []
    monkeypatch.setattr(apt_module, "download_deb", _fake_deb_factory(tmp_path, archive, calls))
    folder = fetch_apt("toy-apt", progress=lambda _: None)
    assert sorted(p.name for p in folder.iterdir()) == ["covariates.tsv", "expression.tsv", "genes.tsv",
                                                        "geuvadis_chr22.bed", "geuvadis_chr22.bim",
                                                        "geuvadis_chr22.fam", "manifest.json"]
    assert fetch_apt("toy-apt", progress=lambda _: None) == folder and len(calls) == 1  # cached
    monkeypatch.setitem(DATASETS, "toy-apt", AptRecipe(**{**recipe.__dict__, "archive_sha256": "0" * 64}))
    shutil.rmtree(folder)
    with pytest.raises(DataError, match="sha256 mismatch"):
        fetch_apt("toy-apt", progress=lambda _: None)
    with pytest.raises(DataError, match="not obtained through apt"):
        fetch_apt("pbmc68k", progress=lambda _: None)


def test_download_deb_classifies_failures(tmp_path, monkeypatch):
    def fake_run(output: str):
        return lambda command, cwd, what: subprocess.CompletedProcess(command, 100, "", output)

    monkeypatch.setattr(apt_module, "_run", fake_run("E: Failed to fetch http://deb.debian.org/x  Temporary "
                                                     "failure resolving 'deb.debian.org'"))
    with pytest.raises(RegistryUnreachable, match="Failed to fetch"):
        download_deb("qtltools-example", tmp_path)
    monkeypatch.setattr(apt_module, "_run", fake_run("E: Some other problem"))
    with pytest.raises(DataError, match="Some other problem") as caught:
        download_deb("qtltools-example", tmp_path)
    assert not isinstance(caught.value, RegistryUnreachable)


def test_recipe_is_registered():
    recipe = DATASETS["geuvadis-chr22"]
    assert isinstance(recipe, AptRecipe) and recipe.package == "qtltools-example"
    assert set(recipe.members) == set(recipe.sha256) and len(recipe.archive_sha256) == 64
