"""Metadata tables: separators, string ids, and errors naming file and column."""

from __future__ import annotations

import pandas as pd
import pytest

from biolatent.errors import DataError
from biolatent.io.tables import read_table, write_table


def test_tsv_and_csv_keep_string_ids(tmp_path):
    (tmp_path / "m.tsv").write_text("id\tlabel\tvalue\n001\ta\t1.5\n002\tb\t2\n")
    (tmp_path / "m.csv").write_text("id,label,value\n001,a,1.5\n002,b,2\n")
    for name in ("m.tsv", "m.csv"):
        table = read_table(tmp_path / name)
        assert list(table.index) == ["001", "002"]
        assert list(table.columns) == ["label", "value"]
        assert table.loc["002", "value"] == 2.0


def test_unknown_extension_is_sniffed_and_custom_id_column(tmp_path):
    (tmp_path / "meta.dat").write_text("cell,type\nc1,T\nc2,B\n")
    table = read_table(tmp_path / "meta.dat", id_column="cell")
    assert table.loc["c2", "type"] == "B"
    (tmp_path / "meta2.dat").write_text("cell\ttype\nc1\tT\n")
    assert read_table(tmp_path / "meta2.dat", id_column="cell").loc["c1", "type"] == "T"


def test_write_table_round_trip(tmp_path):
    frame = pd.DataFrame({"label": ["x", "y"], "n": [3, 4]}, index=pd.Index(["a", "b"], name="id"))
    path = write_table(tmp_path / "out" / "t.tsv", frame)
    assert path.read_text().splitlines()[0] == "id\tlabel\tn"
    pd.testing.assert_frame_equal(read_table(path), frame)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ("id\tlabel\n", "has no rows"),
        ("name\tlabel\na\tx\n", "has no id column 'id' (columns: name, label)"),
        ("id\tlabel\na\tx\nb\ty\na\tz\n", "duplicate id 'a' in column 'id' (lines 2 and 4)"),
        ("id\tlabel\na\tx\n\ty\n", "line 3: empty value in id column 'id'"),
    ],
)
def test_bad_tables(tmp_path, content, message):
    path = tmp_path / "bad.tsv"
    path.write_text(content)
    with pytest.raises(DataError) as info:
        read_table(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_missing_table(tmp_path):
    with pytest.raises(DataError, match=r"table not found: .*nope\.tsv"):
        read_table(tmp_path / "nope.tsv")
