"""UCR / UEA classification data sets shipped inside the aeon wheel (``aeon/datasets/data/<Name>/``), one recipe
per data set (``aeon-gunpoint``, ...). Nothing is downloaded beyond the aeon wheel itself (or aeon's installed
copy, when its files carry the pinned sha256).

``convert`` joins the official TRAIN and TEST files into one ``series.ts`` (TRAIN's series first, then TEST's,
under TRAIN's header; the two headers must agree on the channels, the class labels and timestamps) and writes
``meta.tsv`` (id = position in ``series.ts``, ``split`` train / test). The class labels of the file become the
obs column ``label``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from biolatent.datasets.recipe import DatasetRecipe
from biolatent.errors import DataError
from biolatent.io.tables import write_table
from biolatent.io.ts_format import COMMENT

ROOT = "aeon/datasets/data/"
VERSION = "1.6.0"
# name -> (description, sha256 of TRAIN, sha256 of TEST)
SHIPPED = {
    "GunPoint": ("GunPoint: 50 + 150 univariate series of 150 steps, 2 classes (gun draw vs pointing)",
                 "f842401779fd9800d247d8b33121a1a4643710a19b24917dbdd9a060ca8630d5",
                 "79332750788a6227b325b96bd0d70130c8eb707b9731f8d7dec62b7a7d36017e"),
    "ArrowHead": ("ArrowHead: 36 + 175 univariate outlines of 251 steps, 3 classes of projectile points",
                  "a83c470aaf611a5f5284377cce27a5fc9f6292bc3d110257b0fd4905ced5ee72",
                  "5417dab42626d41df5e435bb22458c2df40dfad4bcd3b59559bbe72e20e84904"),
    "ItalyPowerDemand": ("ItalyPowerDemand: 67 + 1029 daily power-demand series of 24 steps, 2 classes (season)",
                         "341269cb7e6cef96846b30e774580beec79addb93848ba360145219115a74b7c",
                         "26122451f87dd0387ef90b18bc8a86c041371b8a1c068004922b939971247144"),
    "BasicMotions": ("BasicMotions: 40 + 40 six-channel accelerometer/gyroscope series of 100 steps, 4 activities",
                     "8dc43cc6306cb679c888c01e26f91772ac4441a916da43bac8b79734a538b9d6",
                     "79213102bc6fca1a398ad98ce1185dff0208fa3d1465e687f48288946b0ff8dc"),
    "JapaneseVowels": ("JapaneseVowels: 270 + 370 twelve-channel series of 7-29 steps (varying), 9 speakers",
                       "68a430eabd919cc77f40b1f5f3bc0dcafacc1486bca9260785aeb7d262cc78cd",
                       "b3d41d6a0ca3bcad3afb9ca7d4365382aa51341e2e58bae2a574babdda5b9462"),
    "ACSF1": ("ACSF1: 100 + 100 univariate power-consumption series of 1460 steps, 10 classes of home appliances",
              "0646b90dc4843e02baed6b2ba345c5601a4991b6796565489cef1b2d92a7537b",
              "93e8aaeb44a10af181d24a156e60da7021193cd990ca28f263fccf3b905bfebf"),
    "OSULeaf": ("OSULeaf: 200 + 242 univariate leaf outlines of 427 steps, 6 classes (tree species)",
                "86b9d6e860414ffd26cebc62fff84ffb37fa588ef3e5bf79e4094a437c36ddfc",
                "6c549dd354f9e42d5985fa5fab75321ca9acefc7873457e71467fc8a31f107ce"),
    "PickupGestureWiimoteZ": ("PickupGestureWiimoteZ: 50 + 50 univariate accelerometer (z) series of 29-361 steps "
                              "(varying), 10 gestures",
                              "4d303d9990df621c066fc454d62626e3721aed008462103500b86b1ac1ca92c8",
                              "a9109bce918e48ee0e924e9cf2fdfdc4de364a3d88ec5e8aa44399ff08b11361"),
    "UnitTest": ("UnitTest: 20 + 22 univariate series of 24 steps, 2 classes (aeon's cut of Chinatown: pedestrian "
                 "counts, weekday vs weekend)",
                 "6ce264a7cd41ccfb285e61831dc977a5572e17558551b251d0f1e427c8b9d335",
                 "1c28892222289640d0fb156823e183dd79e489e340cfcff16e5af3cf575fd218"),
    "Covid3Month_disc": ("Covid3Month_disc: 140 + 61 univariate series of 84 daily Covid-19 cases, 3 classes "
                         "(the regression target of Covid3Month discretised; in aeon's classification 'redux' list)",
                         "95a30074d71d776136ce08426be662ba8b30d0372a517d1602c522a5bc329b8a",
                         "dae04afcd3e4803312357cbc0de382dffa9daf52969140da9797d57cd83781ce"),
}
# Every classification problem in aeon 1.6.0's data folder (a TRAIN and a TEST .ts with ``@classLabel true``) is
# above. Not recipes: Covid3Month and CardanoSentiment (regression: ``@targetLabel``), JapaneseVowels_eq and
# PickupGestureWiimoteZ_eq (aeon's equal-length copies of two sets above), UnitTestTimeStamps (TRAIN only,
# timestamped), the .csv / .tsf folders (forecasting, anomaly detection, segmentation).


def dataset_name(name: str) -> str:
    """The registry name of a shipped set: ``aeon-`` + its name in lower case, ``_`` as ``-``."""
    return f"aeon-{name.lower().replace('_', '-')}"


def member(name: str, split: str) -> str:
    return f"{ROOT}{name}/{name}_{split}.ts"


def split_ts(path: Path) -> tuple[list[str], list[str]]:
    """(header lines up to and including ``@data``, the data lines) of a .ts file."""
    header: list[str] = []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for i, line in enumerate(lines):
        header.append(line)
        if line.strip().lower() == "@data":
            return header, [d for d in lines[i + 1 :] if d.strip() and not d.startswith(COMMENT)]
    raise DataError(f"{path}: no @data line (not a .ts file?)")


# header keys that must agree between TRAIN and TEST when both state them (ArrowHead's TEST lacks @missing)
SHARED_KEYS = ("univariate", "dimensions", "classlabel", "timestamps")


def _fields(header: list[str]) -> dict[str, str]:
    fields = {}
    for line in header:
        if line.startswith("@"):
            key, _, value = line[1:].strip().partition(" ")
            fields[key.lower()] = value.strip().lower()
    return fields


def _headers_agree(train: dict[str, str], test: dict[str, str]) -> bool:
    return ("classlabel" in train) == ("classlabel" in test) and all(
        train[k] == test[k] for k in SHARED_KEYS if k in train and k in test)


def join_splits(train: Path, test: Path, out_dir: Path) -> None:
    """``series.ts`` (TRAIN then TEST) and ``meta.tsv`` (id, split) in ``out_dir``."""
    train_header, train_data = split_ts(train)
    test_header, test_data = split_ts(test)
    if not _headers_agree(_fields(train_header), _fields(test_header)):
        raise DataError(f"{train.name} and {test.name} have different headers; cannot join them")
    (out_dir / "series.ts").write_text("\n".join([*train_header, *train_data, *test_data]) + "\n", encoding="utf-8")
    meta = pd.DataFrame({"id": [str(i) for i in range(len(train_data) + len(test_data))],
                         "split": ["train"] * len(train_data) + ["test"] * len(test_data)})
    write_table(out_dir / "meta.tsv", meta.set_index("id"))


def recipe(name: str) -> DatasetRecipe:
    description, train_sha, test_sha = SHIPPED[name]

    def convert(members: dict[str, Path], out_dir: Path) -> None:
        join_splits(members[member(name, "TRAIN")], members[member(name, "TEST")], out_dir)

    return DatasetRecipe(
        name=dataset_name(name),
        description=description + " (UCR/UEA archive, shipped in aeon; official train/test split in column split)",
        modality="series",
        package="aeon",
        version=VERSION,
        members=(member(name, "TRAIN"), member(name, "TEST")),
        sha256={member(name, "TRAIN"): train_sha, member(name, "TEST"): test_sha},
        convert=convert,
        data_config={"modality": "series", "path": "series.ts", "metadata": "meta.tsv"},
        labels=["label"],
    )


RECIPES = tuple(recipe(name) for name in SHIPPED)
