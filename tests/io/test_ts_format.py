"""The .ts reader: values, channels, labels, varying lengths, and one-line errors for malformed files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from biolatent.errors import DataError
from biolatent.io.ts_format import read_ts

HEADER = "# comment\n@problemName Tiny\n@univariate false\n@dimensions 2\n@equalLength false\n@classLabel true a b\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tiny.ts"
    path.write_text(text)
    return path


def test_reads_channels_labels_and_varying_lengths(tmp_path):
    path = write(tmp_path, HEADER + "@data\n1,2,3:4,5,6:a\n0.5,?:1,2:b\n")
    parsed = read_ts(path)
    assert parsed.labels == ["a", "b"]
    assert [s.shape for s in parsed.series] == [(2, 3), (2, 2)]
    np.testing.assert_array_equal(parsed.series[0], [[1, 2, 3], [4, 5, 6]])
    assert np.isnan(parsed.series[1][0, 1]) and parsed.series[1][1, 1] == 2
    assert parsed.header["problemname"] == "Tiny"


def test_percent_lines_are_comments(tmp_path):
    """aeon's UnitTest files open with ARFF-style '%' comment lines."""
    parsed = read_ts(write(tmp_path, "%# a note\n%\n@classLabel true a\n@data\n% inside\n1,2,3:a\n"))
    assert parsed.labels == ["a"] and parsed.series[0].tolist() == [[1, 2, 3]]


def test_without_labels(tmp_path):
    parsed = read_ts(write(tmp_path, "@classLabel false\n@data\n1,2,3\n4,5,6\n"))
    assert parsed.labels is None and len(parsed.series) == 2 and parsed.series[0].shape == (1, 3)


@pytest.mark.parametrize(("text", "message"), [
    ("@problemName x\n@classLabel true a\n", "no @data"),
    ("1,2,3\n@data\n", "expected an @ header"),
    ("@classLabel true a b\n@data\n1,2,3:4,5,6:a\n1,2,3:b\n", "1 channels where the first series has 2"),
    ("@classLabel true a\n@data\n1,2,3:4,5:a\n", "differ in length"),
    ("@classLabel true a\n@data\n1,x,3:a\n", "not a number"),
    ("@classLabel true a\n@data\n(0,1),(1,2):a\n", "timestamped"),
    ("@classLabel true a\n@data\n1,2,3\n", "no ':label'"),
    ("@equalLength true\n@classLabel true a\n@data\n1,2,3:a\n1,2:a\n", "@equalLength true"),
    ("@classLabel maybe\n@data\n1,2\n", "true or false"),
    ("@classLabel false\n@data\n", "no series"),
])
def test_malformed_files_are_one_line_errors(tmp_path, text, message):
    with pytest.raises(DataError, match=message) as info:
        read_ts(write(tmp_path, text))
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_ts(tmp_path / "nope.ts")
