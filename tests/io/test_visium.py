"""Space Ranger readers: both positions formats and all three matrix formats read to the same values."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from biolatent.errors import DataError
from biolatent.io import visium
from spatial_fixture import write_space_ranger


@pytest.mark.parametrize("header", [False, True])
def test_positions_with_and_without_header(tmp_path, header):
    fx = write_space_ranger(tmp_path / "sr", header=header)
    path = visium.find_positions(fx.folder)
    assert path.name == ("tissue_positions.csv" if header else "tissue_positions_list.csv")
    table = visium.read_positions(path)
    assert list(table.index) == list(fx.positions.index)
    np.testing.assert_array_equal(table.to_numpy(), fx.positions.to_numpy())


def test_positions_missing_column_is_one_line_error(tmp_path):
    path = tmp_path / "tissue_positions.csv"
    path.write_text("barcode,in_tissue,array_row,array_col,pxl_row_in_fullres\nA-1,1,0,0,10\n")
    with pytest.raises(DataError, match="lacks the column\\(s\\) pxl_col_in_fullres") as err:
        visium.read_positions(path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("matrix", ["h5", "h5.gz", "mtx"])
def test_matrix_formats_read_the_same_counts(tmp_path, matrix):
    fx = write_space_ranger(tmp_path / "sr", matrix=matrix)
    adata = visium.read_matrix(visium.find_matrix(fx.folder))
    assert list(adata.obs_names) == fx.barcodes
    assert list(adata.var_names) == fx.genes
    np.testing.assert_array_equal(adata.X.toarray(), fx.counts)


@pytest.mark.parametrize("mode", ["LA", "RGBA", "L"])
def test_read_rgb_channels(tmp_path, mode):
    path = tmp_path / "image.png"
    Image.new(mode, (7, 5), color=(90, 200) if mode == "LA" else None).save(path)
    if mode == "LA":
        with pytest.raises(DataError, match="has 2 channels"):
            visium.read_rgb(path)
        return
    pixels = visium.read_rgb(path)
    assert pixels.shape == (5, 7, 3) and pixels.dtype == np.uint8
