from pathlib import Path

import pytest

from biolatent.build import load_config
from biolatent.config import parse_overrides
from biolatent.errors import ConfigError


def _minimal(modality: str, method: str, path: str = "x") -> dict:
    return {"data": {"modality": modality, "path": path}, "method": {"name": method}}


@pytest.mark.parametrize(
    ("modality", "method", "encoder"),
    [("counts", "vae", "mlp"), ("counts", "simclr", "mlp"), ("dna", "mlm", "bert"),
     ("image2d", "simclr", "resnet"), ("image2d", "mae", "vit")],
)
def test_minimal_config_gets_defaults_per_modality(modality, method, encoder):
    config = load_config(_minimal(modality, method))
    assert config.model.name == encoder
    assert config.train.epochs >= 1 and config.train.batch_size >= 2
    # every hyper-parameter of the method is filled in, so the resolved config is complete
    assert config.method.model_extra


def test_unknown_train_key_names_valid_keys():
    raw = _minimal("counts", "vae") | {"train": {"epoch": 3}}
    with pytest.raises(ConfigError, match=r"train\.epoch: unknown key \(valid keys: epochs, batch_size"):
        load_config(raw)


def test_unknown_method_key_names_valid_keys():
    raw = _minimal("counts", "vae")
    raw["method"]["temprature"] = 0.1
    with pytest.raises(ConfigError, match=r"method\.temprature.*valid keys for 'vae': .*latent_dim"):
        load_config(raw)


def test_bad_value_and_bad_choice():
    with pytest.raises(ConfigError, match=r"data\.modality: must be one of counts, dna, image2d"):
        load_config(_minimal("rna", "vae"))
    with pytest.raises(ConfigError, match=r"data\.kmer"):
        load_config({"data": {"modality": "dna", "path": "x", "kmer": 9}, "method": {"name": "mlm"}})
    with pytest.raises(ConfigError, match=r"unknown method 'simclear' \(valid: simclr"):
        load_config(_minimal("counts", "simclear"))
    with pytest.raises(ConfigError, match=r"method 'mlm' does not work with data.modality 'counts'"):
        load_config(_minimal("counts", "mlm"))
    with pytest.raises(ConfigError, match=r"exactly one of data\.path or data\.dataset"):
        load_config({"data": {"modality": "counts"}, "method": {"name": "vae"}})


def test_set_overrides_parse_yaml_scalars_and_apply():
    assert parse_overrides(["train.epochs=3", "model.hidden_dims=[8, 4]", "train.lr=1e-4"]) == {
        "train": {"epochs": 3, "lr": 1e-4}, "model": {"hidden_dims": [8, 4]}}
    config = load_config(_minimal("counts", "vae"), ["train.epochs=7", "method.latent_dim=4"])
    assert config.train.epochs == 7 and config.method.model_extra["latent_dim"] == 4
    with pytest.raises(ConfigError, match=r"section\.key=value"):
        parse_overrides(["epochs"])


def test_relative_paths_resolve_against_the_yaml_folder(tmp_path: Path):
    (tmp_path / "sub").mkdir()
    config_path = tmp_path / "sub" / "run.yaml"
    config_path.write_text("data: {modality: counts, path: cells.h5ad}\nmethod: {name: vae}\n")
    assert load_config(config_path).data.path == (tmp_path / "sub" / "cells.h5ad").resolve()
    config_path.write_text("data: {modality: volume, path: brains, template: atlas/t1.nii.gz}\nmethod: {name: mae}\n")
    assert load_config(config_path).data.template == (tmp_path / "sub" / "atlas" / "t1.nii.gz").resolve()


def test_missing_and_invalid_yaml(tmp_path: Path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_every_example_config_validates():
    configs = sorted(Path(__file__).parents[1].joinpath("configs").glob("*.yaml"))
    assert len(configs) >= 5
    for path in configs:
        load_config(path)


def test_views_section_is_validated_against_the_modality_views(tmp_path: Path):
    from biolatent.build import build_views
    from biolatent.data.samples import DataInfo

    base = {"data": {"modality": "volume", "path": "brains"}, "method": {"name": "simclr"}}
    config = load_config({**base, "views": {"crop_scale": [1.0, 1.0], "rotate_degrees": 0.0}})
    assert config.views.model_extra["crop_scale"] == (1.0, 1.0) and "noise_prob" in config.views.model_extra
    views = build_views(config, DataInfo("volume", channels=1, image_size=16, spatial_dims=3))
    assert views.image_size == 16
    with pytest.raises(ConfigError, match=r"views.nope: unknown key.*valid keys for 'volume'.*crop_scale"):
        load_config({**base, "views": {"nope": 1}})
    with pytest.raises(ConfigError, match="views"):
        build_views(load_config({**base, "views": {"crop_scale": [0.9, 0.2]}}),
                    DataInfo("volume", channels=1, image_size=16, spatial_dims=3))
    with pytest.raises(ConfigError, match=r"views.image_size: unknown key"):
        load_config({**base, "views": {"image_size": 8}})  # a fact of the data, not a setting


def test_a_method_without_views_resolves_to_an_empty_views_section():
    from biolatent.config import dump_config

    counts = {"data": {"modality": "counts", "path": "x.h5ad"}}
    vae = load_config({**counts, "method": {"name": "vae", "likelihood": "gaussian"}})
    assert vae.views.model_extra == {}
    assert "keep_range" not in dump_config(vae)  # the resolved config.yaml lists no count-only views keys
    assert load_config({**counts, "method": {"name": "simclr"}}).views.model_extra["keep_range"] == (0.5, 1.0)
    with pytest.raises(ConfigError, match=r"^views: method 'vae' uses no augmentation views.*keep_range\)$"):
        load_config({**counts, "method": {"name": "vae"}, "views": {"keep_range": [0.5, 1.0]}})


def test_run_config_of_an_older_vae_run_with_unused_views_still_loads(tmp_path, counts_h5ad):
    """Runs written before methods without views got an empty views section saved the unused count views;
    their config loads with the section dropped, while a new config with such keys is refused."""
    import yaml

    from biolatent.errors import ConfigError
    from biolatent.workflows.common import load_run_config

    old = {"data": {"modality": "counts", "path": str(counts_h5ad)}, "method": {"name": "vae"},
           "views": {"thinning_p": 0.5, "gene_dropout": 0.1}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(old))
    config = load_run_config(tmp_path)
    assert config.method.name == "vae" and not (config.views.model_extra or {})
    with pytest.raises(ConfigError, match="uses no augmentation views"):
        load_config(old)


@pytest.mark.parametrize("data, message", [
    ({"window_stride": 10}, "need data.window"),
    ({"exclude_regions": "x.bed"}, "need data.window"),
    ({"window": 100, "max_length": 50}, "must equal data.window"),
])
def test_dna_window_options_are_checked_at_load_time(data, message):
    from pydantic import ValidationError

    from biolatent.config_data import DnaData

    with pytest.raises(ValidationError, match=message):
        DnaData(path="genome.fa", **data)
    assert DnaData(path="genome.fa", window=100, max_length=100).window_stride is None
