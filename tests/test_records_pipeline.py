"""Records from the command line: the example BEHRT config pre-trains, embeds and evaluates on tiny records (a
long table and an OMOP folder); bad records are a one-line error with nothing written."""

from pathlib import Path

import pandas as pd
import pytest
import yaml

from records_fixture import write_omop, write_records

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "nafld_behrt.yaml"
TINY_MODEL = {"hidden_size": 16, "layers": 1, "heads": 2, "intermediate_size": 32}


def tiny(tmp_path: Path, data: dict) -> Path:
    """The example config with tiny data and a tiny model."""
    config = yaml.safe_load(CONFIG.read_text())
    config["data"] = {"modality": "records", "max_length": 32, **data}
    config["model"] |= TINY_MODEL
    config["train"] |= {"epochs": 2, "batch_size": 16}
    path = tmp_path / "behrt.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture()
def paths(tmp_path):
    return write_records(tmp_path / "rec", n=48)


@pytest.mark.slow  # a real training run; see issue 16 part 8 (fast set under 3 minutes)
def test_behrt_long_table_pretrain_embed_evaluate(run_cli, tmp_path, paths):
    import scanpy as sc

    config = tiny(tmp_path, {"path": str(paths["records"]), "births": str(paths["births"]),
                             "metadata": str(paths["meta"]), "prediction_time_column": "landmark"})
    run = tmp_path / "run"
    result = run_cli("pretrain", config, "--out", run, "--quiet")
    assert result.code == 0, result.err
    assert (run / "model.safetensors").is_file()
    history = pd.read_csv(run / "history.tsv", sep="\t")
    assert history["loss"].notna().all() and "masked_accuracy" in history.columns
    assert run_cli("embed", run).code == 0
    adata = sc.read_h5ad(run / "embeddings.h5ad")
    assert adata.obsm["X_biolatent"].shape == (48, 16)
    assert list(adata.obs_names[:2]) == ["p000", "p001"]
    other = yaml.safe_load(config.read_text())
    other["data"]["value_bins"] = 3  # other tokens than the model learnt
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(other))
    result = run_cli("embed", run, "--data", tmp_path / "other.yaml", "--out", tmp_path / "other.h5ad")
    assert result.code != 0 and "vocabulary" in result.err and not (tmp_path / "other.h5ad").exists()
    result = run_cli("evaluate", run, "--label", "label", "--fractions", "0.5,1.0", "--seeds", "2",
                     "--supervised-steps", "5")
    assert result.code == 0, result.err
    table = pd.read_csv(run / "evaluate" / "label" / "efficiency.tsv", sep="\t")
    assert {"ssl", "random_init"} <= set(table.representation)
    assert table["mean"].between(0, 1).all()


def test_behrt_omop_folder_pretrain_embed(run_cli, tmp_path, paths):
    import scanpy as sc

    folder = write_omop(tmp_path / "omop", paths["records"], paths["births"])
    run = tmp_path / "run"
    assert run_cli("pretrain", tiny(tmp_path, {"path": str(folder)}), "--out", run, "--quiet").code == 0
    assert run_cli("embed", run).code == 0
    adata = sc.read_h5ad(run / "embeddings.h5ad")
    assert list(adata.obs_names) == [str(i + 1) for i in range(48)]  # the person ids


def _bad_inputs(tmp_path: Path, paths: dict) -> dict[str, tuple[dict, str]]:
    events = pd.read_csv(paths["records"], sep="\t")
    early = events.copy()
    early.loc[3, "time"] = "1901-05-05"
    early.to_csv(tmp_path / "early.tsv", sep="\t", index=False)
    events.rename(columns={"patient": "subject"}).to_csv(tmp_path / "nopatient.tsv", sep="\t", index=False)
    folder = write_omop(tmp_path / "omop", paths["records"], paths["births"])
    (folder / "PERSON.csv").unlink()
    births = {"births": str(paths["births"])}
    return {
        "before birth": ({"path": str(tmp_path / "early.tsv"), **births}, "before the patient's birth"),
        "after the end": ({"path": str(paths["records"]), "data_end": "2015-03-01", **births}, "after the data's end"),
        "no patient column": ({"path": str(tmp_path / "nopatient.tsv")}, "no patient column 'patient'"),
        "omop without person": ({"path": str(folder)}, "no PERSON table"),
    }


@pytest.mark.parametrize("case", ["before birth", "after the end", "no patient column", "omop without person"])
def test_bad_records_one_line_error_nothing_written(run_cli, tmp_path, paths, case):
    data, message = _bad_inputs(tmp_path, paths)[case]
    run = tmp_path / "run"
    result = run_cli("pretrain", tiny(tmp_path, data), "--out", run, "--quiet")
    assert result.code != 0
    assert message in result.err and "Traceback" not in result.err
    errors = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0]
    assert not run.exists() or not any(run.iterdir())
