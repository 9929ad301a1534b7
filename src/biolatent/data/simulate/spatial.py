"""A truth-known spatial transcriptomics tissue (10x Visium-like): H&E image + spot counts + the truth.

The tissue is a blob of spots on the Visium hexagonal grid (centre-to-centre 100 um, spot diameter 55 um;
``array_col`` steps by 2 along a row and odd rows are offset by one column). Five cell types mix smoothly
in space: each type has a Gaussian-process-like random field (random Fourier features of an RBF kernel,
Rahimi & Recht 2007) and the per-spot cell fractions are their softmax. ``domain`` = the dominant type.

Image: cells are a Poisson process whose local density follows the composition (each type occupies
1 / density of area per cell), each cell of a type drawn with that type's nuclear size, elongation,
hematoxylin intensity and chromatin texture; the surrounding tissue carries the local mix of the types'
eosin. Stain concentrations become RGB through the Beer-Lambert HED model (Ruifrok & Johnston 2001,
``data.views.stain.hed_to_rgb``). Coordinates: fullres = 1 um per pixel; only the hires (at most
``HIRES_MAX_PX`` on a side) and lowres (``LOWRES_MAX_PX``) images are written, as Space Ranger does.

Expression: the expected counts of a spot are library size x (fractions @ type signatures); the signatures
are the mean expression profiles of five pbmc68k cell types (real data, so sparsity and gene-gene structure
are realistic; which blood type lends its profile to which tissue type is arbitrary). A fraction
(``INDEPENDENT_FRACTION``) of genes is morphology-independent: their expression follows short-range random
fields unrelated to the cell types, so no image model can predict them. Counts are negative binomial
(Gamma-Poisson) around the expectation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from biolatent.errors import DataError

SPOT_PITCH_UM = 100.0
SPOT_DIAMETER_UM = 55.0
FIDUCIAL_DIAMETER_UM = 89.5  # Visium fiducial frame spots (scalefactors' fiducial_diameter_fullres)
FULLRES_UM_PER_PX = 1.0
HIRES_MAX_PX = 2000
LOWRES_MAX_PX = 600
MARGIN_UM = 250.0
INDEPENDENT_FRACTION = 0.2
INDEPENDENT_LENGTH_UM = 100.0  # length scale of the independent genes' own fields (about one spot pitch)
MIN_SPOTS, MIN_GENES = 10, 5
LIBRARY_MEDIAN, LIBRARY_SIGMA = 4000.0, 0.35  # UMIs per spot over the written genes (log-normal)
NB_DISPERSION = 10.0
SHARPNESS = 2.5  # softmax temperature of the composition fields (higher: purer domains)
GENOME = "GRCh38"


@dataclass(frozen=True)
class CellType:
    """Morphology and expression of one cell type (lengths in um, optical densities in OD units)."""

    name: str
    signature: str  # pbmc68k ``bulk_labels`` whose mean profile is this type's expression programme
    nucleus_um: float  # nuclear radius (geometric mean of the semi-axes)
    elongation: float  # major / minor axis of the nucleus
    density: float  # cells per um^2 where the type fills the tissue
    hematoxylin: float  # nuclear hematoxylin OD
    texture: float  # chromatin texture: relative per-pixel variation of the nuclear hematoxylin
    eosin: float  # eosin OD of the tissue around the nuclei (cytoplasm, matrix)


CELL_TYPES = (
    CellType("epithelial", "Dendritic", 4.5, 1.3, 0.010, 1.0, 0.25, 0.35),
    CellType("stromal", "CD56+ NK", 3.5, 3.5, 0.003, 0.8, 0.10, 0.70),
    CellType("lymphoid", "CD8+ Cytotoxic T", 3.0, 1.0, 0.018, 1.5, 0.10, 0.20),
    CellType("myeloid", "CD14+ Monocyte", 5.5, 1.2, 0.005, 0.6, 0.40, 0.45),
    CellType("vascular", "CD19+ B", 3.0, 2.5, 0.002, 0.8, 0.10, 0.12),
)


@dataclass
class RandomField:
    """Random Fourier features of an RBF kernel: ``K`` independent, unit-variance smooth fields of 2D points."""

    freq: np.ndarray  # (M, 2) in 1/um
    phase: np.ndarray  # (M,)
    weight: np.ndarray  # (M, K)

    @classmethod
    def draw(cls, rng: np.random.Generator, n_fields: int, length_um: float, n_features: int = 64) -> RandomField:
        return cls(rng.normal(0.0, 1.0 / length_um, (n_features, 2)), rng.uniform(0, 2 * np.pi, n_features),
                   rng.normal(0.0, 1.0, (n_features, n_fields)))

    def __call__(self, xy: np.ndarray) -> np.ndarray:
        """(n, 2) points in um -> (n, K) field values."""
        features = np.cos(xy @ self.freq.T + self.phase) * np.sqrt(2.0 / len(self.phase))
        return features @ self.weight


@dataclass
class TissueShape:
    """A blob: ``inside(p) = 1 - |p - centre| / R(angle)`` with a wobbly radius (a few random harmonics)."""

    centre: np.ndarray
    radius_um: float
    harmonics: np.ndarray  # (H, 2): cos and sin amplitude of harmonic h + 2

    def inside(self, xy: np.ndarray) -> np.ndarray:
        d = xy - self.centre
        angle = np.arctan2(d[:, 1], d[:, 0])
        order = np.arange(2, 2 + len(self.harmonics))[:, None]
        wobble = (self.harmonics[:, :1] * np.cos(order * angle) + self.harmonics[:, 1:] * np.sin(order * angle))
        return 1.0 - np.hypot(d[:, 0], d[:, 1]) / (self.radius_um * (1.0 + wobble.sum(0)))


@dataclass
class Tissue:
    """Everything the simulator decided: spots, composition, counts and the fields that drew them."""

    spots: pd.DataFrame  # index barcode; array_row, array_col, x_um, y_um
    shape: TissueShape
    edge: float  # inside() threshold of the tissue's edge
    size_um: tuple[float, float]  # (width, height) of the fullres canvas
    field: RandomField  # one field per cell type
    fractions: np.ndarray  # (N, K) cell-type fractions (by number of cells)
    expected: np.ndarray  # (N, G) expected counts
    counts: np.ndarray  # (N, G) int
    genes: list[str]
    gene_kind: list[str]  # morphology | independent

    def composition(self, xy: np.ndarray) -> np.ndarray:
        return composition(self.field, xy)


def composition(field: RandomField, xy: np.ndarray) -> np.ndarray:
    """(n, 2) points in um -> (n, K) cell-type fractions: softmax of ``SHARPNESS`` x the type fields."""
    logits = SHARPNESS * field(xy)
    logits -= logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    return weights / weights.sum(axis=1, keepdims=True)


def barcode(i: int) -> str:
    """A Visium-like 16-base barcode with the ``-1`` GEM-well suffix: the base-4 digits of ``i`` times an odd
    constant modulo 4^16 (a bijection, so distinct spots get distinct barcodes that do not look alike)."""
    code = (i * 0x9E3779B1) & 0xFFFFFFFF
    digits = "".join("ACGT"[(code >> (2 * k)) & 3] for k in range(16))
    return f"{digits[::-1]}-1"


def place_spots(n_spots: int, rng: np.random.Generator) -> tuple[pd.DataFrame, TissueShape, float]:
    """The ``n_spots`` grid spots most inside a random blob, shifted so the canvas starts at (0, 0) um."""
    area = n_spots * SPOT_PITCH_UM ** 2 * np.sqrt(3) / 2
    radius = np.sqrt(area / np.pi)
    half_rows = int(np.ceil(2.0 * radius / (SPOT_PITCH_UM * np.sqrt(3) / 2))) + 2
    half_cols = int(np.ceil(2.0 * radius / (SPOT_PITCH_UM / 2))) + 2
    rows, cols = np.meshgrid(np.arange(2 * half_rows), np.arange(2 * half_cols), indexing="ij")
    keep = (cols % 2) == (rows % 2)  # Visium: odd rows hold odd columns
    rows, cols = rows[keep], cols[keep]
    xy = np.stack([cols * SPOT_PITCH_UM / 2, rows * SPOT_PITCH_UM * np.sqrt(3) / 2], axis=1)
    centre = xy.mean(axis=0) + rng.uniform(-SPOT_PITCH_UM, SPOT_PITCH_UM, 2)
    shape = TissueShape(centre, radius, rng.normal(0.0, 0.08, (3, 2)))
    score = shape.inside(xy)
    chosen = np.sort(np.argsort(-score, kind="stable")[:n_spots])
    edge = float(score[chosen].min()) - 0.6 * SPOT_PITCH_UM / radius
    rows, cols, xy = rows[chosen], cols[chosen], xy[chosen]
    row0 = rows.min() - rows.min() % 2  # keep the row/column parity convention
    origin = xy.min(axis=0) - MARGIN_UM
    shape.centre = shape.centre - origin
    xy = xy - origin
    spots = pd.DataFrame({"array_row": rows - row0, "array_col": cols - (cols.min() - cols.min() % 2),
                          "x_um": xy[:, 0], "y_um": xy[:, 1]},
                         index=pd.Index([barcode(int(i)) for i in chosen], name="barcode"))
    return spots, shape, edge


def pbmc_profiles(types: tuple[CellType, ...], progress: Callable[[str], Any]) -> tuple[np.ndarray, list[str]]:
    """(K, 765) mean expression proportions (counts / cell total, averaged over the cells of each type)."""
    from biolatent.datasets import fetch
    from biolatent.io.h5ad import read_h5ad

    adata = read_h5ad(fetch("pbmc68k", progress=progress) / "pbmc68k.h5ad")
    x = np.asarray(adata.X, dtype=np.float64)
    x = x / adata.obs["n_counts"].to_numpy(dtype=np.float64)[:, None]
    labels = adata.obs["bulk_labels"].astype(str).to_numpy()
    profiles = np.stack([x[labels == t.signature].mean(axis=0) for t in types])
    return profiles, [str(g) for g in adata.var_names]


def choose_genes(profiles: np.ndarray, n_genes: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the morphology genes (most variable across the types on a log scale, among expressed
    genes) and of the independent genes (a random draw among the rest)."""
    n_independent = max(1, round(INDEPENDENT_FRACTION * n_genes))
    n_morphology = n_genes - n_independent
    spread = np.log(profiles + 1e-5).std(axis=0) * (profiles.mean(axis=0) > 1e-4)
    order = np.argsort(-spread, kind="stable")
    morphology = np.sort(order[:n_morphology])
    independent = np.sort(rng.choice(order[n_morphology:], size=n_independent, replace=False))
    return morphology, independent


def simulate_tissue(n_spots: int, n_genes: int = 200, seed: int = 0,
                    progress: Callable[[str], Any] = lambda _: None) -> Tissue:
    """Spots, compositions and counts (no image; ``render_he`` draws it). See the module docstring."""
    check_arguments(n_spots, n_genes)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)]
    spots, shape, edge = place_spots(n_spots, streams[0])
    xy = spots[["x_um", "y_um"]].to_numpy()
    field = RandomField.draw(streams[1], len(CELL_TYPES), max(250.0, 0.4 * shape.radius_um))
    size = (float(xy[:, 0].max() + MARGIN_UM), float(xy[:, 1].max() + MARGIN_UM))
    fractions = composition(field, xy)
    profiles, names = pbmc_profiles(CELL_TYPES, progress)
    morphology, independent = choose_genes(profiles, n_genes, streams[2])
    expected, genes, kinds = expected_counts(fractions, xy, profiles, names, morphology, independent, streams[2])
    counts = streams[3].poisson(streams[3].gamma(NB_DISPERSION, expected / NB_DISPERSION))
    return Tissue(spots, shape, edge, size, field, fractions, expected, counts, genes, kinds)


def expected_counts(fractions: np.ndarray, xy: np.ndarray, profiles: np.ndarray, names: list[str],
                    morphology: np.ndarray, independent: np.ndarray,
                    rng: np.random.Generator) -> tuple[np.ndarray, list[str], list[str]]:
    """(N, G) expected counts, gene names and kinds, genes in pbmc68k order.

    Morphology genes: library x fractions @ signatures. Independent genes: library x the gene's mean
    proportion x a log-normal short-range spatial field (``INDEPENDENT_LENGTH_UM``, sd 0.8) of its own."""
    genes = np.sort(np.concatenate([morphology, independent]))
    signature = profiles[:, genes]
    signature = signature / signature.sum(axis=1, keepdims=True)
    library = rng.lognormal(np.log(LIBRARY_MEDIAN), LIBRARY_SIGMA, len(xy))
    mean = fractions @ signature
    is_independent = np.isin(genes, independent)
    sigma = 0.8
    own = RandomField.draw(rng, int(is_independent.sum()), INDEPENDENT_LENGTH_UM)(xy)
    mean[:, is_independent] = signature[:, is_independent].mean(axis=0) * np.exp(sigma * own - sigma ** 2 / 2)
    kinds = ["independent" if flag else "morphology" for flag in is_independent]
    return library[:, None] * mean, [names[g] for g in genes], kinds


def check_arguments(n_spots: int, n_genes: int) -> None:
    if n_spots < MIN_SPOTS:
        raise DataError(f"--spots must be >= {MIN_SPOTS}, got {n_spots}")
    if not MIN_GENES <= n_genes <= 765:
        raise DataError(f"--genes must lie in [{MIN_GENES}, 765] (the signatures are pbmc68k's 765 genes), "
                        f"got {n_genes}")


def scale_factors(tissue: Tissue) -> dict[str, float]:
    """Space Ranger's scalefactors_json.json for a 1 um/px fullres image of the canvas."""
    side_px = max(tissue.size_um) / FULLRES_UM_PER_PX
    return {
        "spot_diameter_fullres": SPOT_DIAMETER_UM / FULLRES_UM_PER_PX,
        "fiducial_diameter_fullres": FIDUCIAL_DIAMETER_UM / FULLRES_UM_PER_PX,
        "tissue_hires_scalef": min(1.0, HIRES_MAX_PX / side_px),
        "tissue_lowres_scalef": min(1.0, LOWRES_MAX_PX / side_px),
    }


def background(tissue: Tissue, height: int, width: int, px_per_um: float) -> tuple[np.ndarray, np.ndarray]:
    """Eosin OD of the tissue between nuclei and the tissue mask, from a coarse grid (every 10 um)."""
    from scipy.ndimage import zoom

    step = 10.0
    gy, gx = np.meshgrid(np.arange(0, tissue.size_um[1] + step, step), np.arange(0, tissue.size_um[0] + step, step),
                         indexing="ij")
    xy = np.stack([gx.ravel(), gy.ravel()], axis=1)
    inside = np.clip((tissue.shape.inside(xy) - tissue.edge) * tissue.shape.radius_um / 10.0, 0.0, 1.0)
    eosin = inside * (tissue.composition(xy) @ np.array([t.eosin for t in CELL_TYPES]))
    factor = (height / gy.shape[0], width / gy.shape[1])
    up = [zoom(a.reshape(gy.shape), factor, order=1)[:height, :width] for a in (eosin, inside)]
    return tuple(np.pad(a, ((0, height - a.shape[0]), (0, width - a.shape[1])), mode="edge") for a in up)


def cells(tissue: Tissue, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Cell centres (n, 2) in um and types (n,): a Poisson process thinned to the local density
    1 / sum_k(f_k / density_k), types drawn from the local fractions."""
    density = np.array([t.density for t in CELL_TYPES])
    width, height = tissue.size_um
    n = rng.poisson(density.max() * width * height)
    xy = rng.uniform((0.0, 0.0), (width, height), (n, 2))
    xy = xy[tissue.shape.inside(xy) > tissue.edge]
    fractions = tissue.composition(xy)
    local = 1.0 / (fractions / density).sum(axis=1)
    keep = rng.uniform(size=len(xy)) < local / density.max()
    xy, fractions = xy[keep], fractions[keep]
    cumulative = fractions.cumsum(axis=1)
    types = (rng.uniform(size=(len(xy), 1)) > cumulative).sum(axis=1).clip(max=len(CELL_TYPES) - 1)
    return xy, types


def nuclei(placed: tuple[np.ndarray, np.ndarray], height: int, width: int, px_per_um: float,
           rng: np.random.Generator, chunk: int = 20000) -> np.ndarray:
    """Hematoxylin OD of all nuclei: anti-aliased rotated ellipses stamped with ``np.bincount`` in chunks."""
    xy, types = placed
    radius = np.array([t.nucleus_um for t in CELL_TYPES])[types] * rng.lognormal(0.0, 0.12, len(types))
    elong = np.sqrt(np.array([t.elongation for t in CELL_TYPES])[types])
    semi = np.stack([radius * elong, radius / elong], axis=1) * px_per_um  # (n, 2) px
    stain = np.array([t.hematoxylin for t in CELL_TYPES])[types] * rng.lognormal(0.0, 0.1, len(types))
    texture = np.array([t.texture for t in CELL_TYPES])[types]
    angle = rng.uniform(0, np.pi, len(types))
    half = int(np.ceil(semi[:, 0].max())) + 1
    offsets = np.arange(-half, half + 1)
    dy, dx = (a.ravel() for a in np.meshgrid(offsets, offsets, indexing="ij"))
    total = np.zeros(height * width)
    centres = xy * px_per_um
    for start in range(0, len(types), chunk):
        part = slice(start, start + chunk)
        base = np.floor(centres[part]).astype(np.int64)
        px, py = base[:, :1] + dx, base[:, 1:] + dy  # (c, window)
        ux, uy = px + 0.5 - centres[part, :1], py + 0.5 - centres[part, 1:]
        cos, sin = np.cos(angle[part])[:, None], np.sin(angle[part])[:, None]
        u, v = (ux * cos + uy * sin) / semi[part, :1], (-ux * sin + uy * cos) / semi[part, 1:]
        coverage = np.clip(0.5 + (1.0 - np.hypot(u, v)) * semi[part, 1:], 0.0, 1.0)
        grain = 1.0 + texture[part, None] * rng.standard_normal(coverage.shape)
        value = coverage * stain[part, None] * grain
        valid = (coverage > 0) & (px >= 0) & (px < width) & (py >= 0) & (py < height)
        total += np.bincount((py * width + px)[valid], weights=value[valid], minlength=height * width)
    return total.reshape(height, width)


def spot_cell_counts(tissue: Tissue, placed: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """(N, K) number of cells of each type whose centre lies under each spot (diameter 55 um)."""
    from scipy.spatial import cKDTree

    xy, types = placed
    tree = cKDTree(xy)
    counts = np.zeros((len(tissue.spots), len(CELL_TYPES)), dtype=np.int64)
    for i, near in enumerate(tree.query_ball_point(tissue.spots[["x_um", "y_um"]].to_numpy(), SPOT_DIAMETER_UM / 2)):
        np.add.at(counts[i], types[near], 1)
    return counts


def write_10x_h5(path: Path, counts: np.ndarray, barcodes: list[str], genes: list[str]) -> None:
    """A 10x Genomics feature-barcode matrix HDF5 (v3): genes x spots CSC under group ``matrix``."""
    import h5py
    import scipy.sparse as sp

    csr = sp.csr_matrix(counts.astype(np.int32))  # spots x genes CSR == genes x spots CSC

    def strings(values: list[str]) -> np.ndarray:
        return np.array([v.encode() for v in values], dtype=f"S{max(len(v) for v in values)}")

    with h5py.File(path, "w", track_order=False) as f:
        f.attrs["filetype"] = "matrix"
        f.attrs["version"] = 2
        f.attrs["library_ids"] = strings(["biolatent_simulated"])
        f.attrs["chemistry_description"] = "Spatial 3' v1"
        m = f.create_group("matrix")
        for name, data in (("barcodes", strings(barcodes)), ("data", csr.data.astype(np.int32)),
                           ("indices", csr.indices.astype(np.int64)), ("indptr", csr.indptr.astype(np.int64)),
                           ("shape", np.array([counts.shape[1], counts.shape[0]], dtype=np.int32))):
            m.create_dataset(name, data=data, track_times=False)
        features = m.create_group("features")
        ids = [f"BLSIM{i:05d}" for i in range(len(genes))]
        for name, values in (("id", ids), ("name", genes), ("feature_type", ["Gene Expression"] * len(genes)),
                             ("genome", [GENOME] * len(genes)), ("_all_tag_keys", ["genome"])):
            features.create_dataset(name, data=strings(values), track_times=False)


def write_image(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(image).save(path, format="PNG")


def write_spatial_dataset(out: str | Path, n_spots: int, n_genes: int = 200, seed: int = 0,
                          progress: Callable[[str], Any] = lambda _: None) -> Path:
    """Simulate a tissue and write the Space-Ranger-like folder ``out`` (see module docstring); returns it.

    The folder appears whole or not at all (``rundir.staged_dir``): ``filtered_feature_bc_matrix.h5``,
    ``spatial/{tissue_positions_list.csv, scalefactors_json.json, tissue_hires_image.png,
    tissue_lowres_image.png}``, ``truth.tsv`` (barcode, frac_<type>, domain, n_cells, cells_<type>) and
    ``truth_genes.tsv`` (gene, kind, mean_count)."""
    import json

    from PIL import Image

    from biolatent.rundir import staged_dir

    check_arguments(n_spots, n_genes)
    out = Path(out)
    with staged_dir(out) as tmp:
        tissue = simulate_tissue(n_spots, n_genes, seed, progress)
        factors = scale_factors(tissue)
        placed = cells(tissue, np.random.default_rng([seed, 1]))
        progress(f"spatial: {n_spots} spots, {n_genes} genes, {len(placed[1])} cells; rendering H&E")
        hires = render_he(tissue, placed, factors["tissue_hires_scalef"], seed)
        spatial = tmp / "spatial"
        spatial.mkdir()
        write_image(spatial / "tissue_hires_image.png", hires)
        lowres_size = tuple(int(np.ceil(s * factors["tissue_lowres_scalef"])) for s in tissue.size_um)
        write_image(spatial / "tissue_lowres_image.png",
                    np.asarray(Image.fromarray(hires).resize(lowres_size, Image.Resampling.BOX)))
        (spatial / "scalefactors_json.json").write_text(json.dumps(factors, indent=2) + "\n")
        positions(tissue).to_csv(spatial / "tissue_positions_list.csv", header=False, index=False)
        write_10x_h5(tmp / "filtered_feature_bc_matrix.h5", tissue.counts, list(tissue.spots.index), tissue.genes)
        truth_table(tissue, spot_cell_counts(tissue, placed)).to_csv(tmp / "truth.tsv", sep="\t", index=False)
        pd.DataFrame({"gene": tissue.genes, "kind": tissue.gene_kind,
                      "mean_count": tissue.counts.mean(axis=0).round(3)}).to_csv(
            tmp / "truth_genes.tsv", sep="\t", index=False)
    return out


def render_he(tissue: Tissue, placed: tuple[np.ndarray, np.ndarray], scale: float, seed: int) -> np.ndarray:
    """The H&E image of the tissue with its ``cells`` at ``scale`` pixels per fullres pixel: uint8 (H, W, 3)."""
    import torch

    from biolatent.data.views.stain import hed_to_rgb

    rng = np.random.default_rng([seed, 2])
    px_per_um = scale / FULLRES_UM_PER_PX
    height, width = (int(np.ceil(s * px_per_um)) for s in tissue.size_um[::-1])
    eosin, mask = background(tissue, height, width, px_per_um)
    hema = nuclei(placed, height, width, px_per_um, rng)
    hema = mask * (hema + 0.05) + 0.02 * rng.standard_normal((height, width))
    eosin = eosin * (1.0 + 0.15 * rng.standard_normal((height, width))) + 0.02
    hed = np.stack([hema, eosin, np.zeros_like(hema)]).astype(np.float32)
    rgb = hed_to_rgb(torch.from_numpy(hed)[None])[0].clamp(0.0, 1.0).numpy()
    return np.round(rgb.transpose(1, 2, 0) * 255).astype(np.uint8)


def positions(tissue: Tissue) -> pd.DataFrame:
    """tissue_positions_list.csv rows: barcode, in_tissue, array_row, array_col, pxl_row/col_in_fullres."""
    s = tissue.spots
    return pd.DataFrame({"barcode": s.index, "in_tissue": 1, "array_row": s["array_row"],
                         "array_col": s["array_col"],
                         "pxl_row_in_fullres": np.round(s["y_um"] / FULLRES_UM_PER_PX).astype(int),
                         "pxl_col_in_fullres": np.round(s["x_um"] / FULLRES_UM_PER_PX).astype(int)})


def truth_table(tissue: Tissue, cell_counts: np.ndarray) -> pd.DataFrame:
    names = [t.name for t in CELL_TYPES]
    table = pd.DataFrame({"barcode": tissue.spots.index})
    for k, name in enumerate(names):
        table[f"frac_{name}"] = tissue.fractions[:, k].round(6)
    table["domain"] = [names[k] for k in tissue.fractions.argmax(axis=1)]
    table["n_cells"] = cell_counts.sum(axis=1)
    for k, name in enumerate(names):
        table[f"cells_{name}"] = cell_counts[:, k]
    return table
