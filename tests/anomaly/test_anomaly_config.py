"""``biolatent anomaly fit`` reads the run config of ``pretrain``: a pretrain volume config is accepted as is,
the anomaly-only sections are validated by the same loader, and every key of the former anomaly config is a
one-line error that names its new place, before anything is written."""

from __future__ import annotations

import json

import pytest
import yaml

from biolatent.anomaly.volumes import write_brain_set
from biolatent.build import load_config
from biolatent.data.simulate.brain import ellipsoid_template
from biolatent.errors import ConfigError
from biolatent.workflows.anomaly_config import load_anomaly_config


@pytest.fixture(scope="module")
def brains(tmp_path_factory):
    root = tmp_path_factory.mktemp("brains")
    write_brain_set(root / "healthy", 6, size=32, seed=0, template=ellipsoid_template())
    return root / "healthy"


def _write(tmp_path, body: dict, name: str = "config.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(body))
    return str(path)


def test_a_pretrain_volume_config_is_accepted_by_anomaly_fit(run_cli, brains, tmp_path):
    body = {"data": {"modality": "volume", "path": str(brains), "image_size": 32}, "method": {"name": "cevae"},
            "train": {"epochs": 10, "seed": 0}}
    pretrain = load_config(_write(tmp_path, {**body, "method": {"name": "simclr"}}, "pretrain.yaml"))
    anomaly = load_anomaly_config(_write(tmp_path, body))
    # the same data and train sections, read by the same loader (data defaults, train defaults)
    assert anomaly.data == pretrain.data and anomaly.train.epochs == pretrain.train.epochs == 10
    assert anomaly.train.batch_size == pretrain.train.batch_size == 32  # the volume default
    run = tmp_path / "run"
    result = run_cli("anomaly", "fit", _write(tmp_path, body), "--out", run, "--set", "train.epochs=1",
                     "--set", "train.accelerator=cpu")
    assert result.code == 0, result.err
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["data"]["modality"] == "volume" and saved["train"]["epochs"] == 1
    assert saved["train"]["accelerator"] == "cpu" and saved["method"]["name"] == "cevae"
    assert json.loads((run / "anomaly.json").read_text())["modality"] == "volume"


@pytest.mark.parametrize(("change", "fragments"), [
    ({"data": {"modality": "volume3d"}}, ("volume3d is now 'volume'",)),
    ({"seed": 0}, ("seed: moved to train.seed",)),
    ({"data": {"brain_erosion": 2}}, ("moved to maps.brain_erosion",)),
    ({"data": {"modality": "image2d", "mask_column": "mask"}}, ("data.lesion_column",)),
    ({"data": {"modality": "image2d", "label_column": "sick"}}, ("--label",)),
    ({"window": {"length": 3}}, ("window.length: unknown key", "size, stride")),
    ({"validation": {"target_fpr": 2}}, ("validation.target_fpr",)),
    ({"method": {"name": "cevae", "depth": 3}}, ("depth",)),
    ({"method": {"name": "knn"}}, ("does not work on volume data",)),
    ({"model": {"name": "resnet"}}, ("model: an anomaly detector builds its own network",)),
    ({"data": {"modality": "counts"}}, ("anomaly detectors work on",)),
])
def test_old_and_bad_keys_are_one_line_errors(run_cli, brains, tmp_path, change, fragments):
    body = {"data": {"modality": "volume", "path": str(brains), "image_size": 32}, "method": {"name": "cevae"},
            "train": {"epochs": 1}}
    for section, values in change.items():
        body[section] = {**body[section], **values} if isinstance(values, dict) and section in body else values
    if body["data"]["modality"] == "counts":
        body["data"] = {"modality": "counts", "path": str(brains / "x.h5ad")}
    run = tmp_path / "run"
    run_cli("anomaly", "fit", _write(tmp_path, body), "--out", run).expect_error(*fragments)
    assert not run.exists()


def test_pretrain_refuses_the_anomaly_sections(brains, tmp_path):
    body = {"data": {"modality": "volume", "path": str(brains)}, "method": {"name": "simclr"},
            "validation": {"fraction": 0.2}}
    with pytest.raises(ConfigError, match=r"validation: unknown key .*anomaly fit"):
        load_config(_write(tmp_path, body))
