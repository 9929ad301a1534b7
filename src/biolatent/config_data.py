"""The ``data`` section of a run config: one pydantic model per modality, a discriminated union on ``modality``
(``DataConfig``); unknown keys and bad values rejected before any work (``biolatent.config`` builds the run
config around it)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

_STRICT = ConfigDict(extra="forbid")


class _DataBase(BaseModel):
    model_config = _STRICT

    path: Path | None = Field(None, description="input file or folder")
    dataset: str | None = Field(None, description="name in the dataset registry, instead of a path")
    metadata: Path | None = Field(None, description="table (tsv/csv) with an id column + any columns")
    id_column: str = "id"

    @model_validator(mode="after")
    def _path_or_dataset(self) -> _DataBase:
        if (self.path is None) == (self.dataset is None):
            raise ValueError("give exactly one of data.path or data.dataset")
        return self


class CountsData(_DataBase):
    """Single-cell or bulk expression in an AnnData .h5ad file."""

    modality: Literal["counts"] = "counts"
    layer: str | None = Field(None, description="layer holding the values; None = X, 'raw' = raw.X")
    values: Literal["auto", "counts", "continuous"] = "auto"
    min_total: float = Field(0.0, ge=0, description="drop samples whose total is <= this")
    batch_column: str | None = Field(None, description="obs column naming each sample's batch (lab, donor, run): "
                                                       "a batch-aware model (method vae) conditions on it, as scVI")
    backed: bool | Literal["auto"] = Field(
        "auto", description="read the matrix from the file batch by batch instead of loading it (memory independent "
                            "of the number of cells; dense or CSR); 'auto': when its dense float32 copy exceeds 1 GiB")


class DnaData(_DataBase):
    """DNA sequences in FASTA, tokenised as overlapping k-mers (DNABERT) or non-overlapping ones (``nt``): one sample
    per record, or, with ``window``, a genome cut into windows read from the (uncompressed, indexed) file when a
    batch needs them (``biolatent.data.genome``)."""

    modality: Literal["dna"] = "dna"
    kmer: int = Field(6, ge=3, le=6)
    max_length: int | None = Field(None, ge=8, description="bases per sequence; None = the longest (with window: "
                                                           "the window)")
    window: int | None = Field(None, ge=8, description="read the FASTA as a genome: windows of this many bases, "
                                                       "streamed from the file (a .fai index is used or built)")
    window_stride: int | None = Field(None, ge=1, description="bases between window starts; None = window "
                                                              "(adjacent windows)")
    max_n_fraction: float = Field(0.0, ge=0, le=1, description="windows: drop those with more unknown bases (N)")
    exclude_regions: Path | None = Field(None, description="windows: BED file of regions no window may overlap "
                                                           "(e.g. the regions of a held-out evaluation task)")

    @model_validator(mode="after")
    def _windows(self) -> DnaData:
        if self.window is None:
            if self.window_stride is not None or self.exclude_regions is not None:
                raise ValueError("data.window_stride and data.exclude_regions need data.window (a genome read in "
                                 "windows)")
        elif self.max_length is not None and self.max_length != self.window:
            raise ValueError(f"data.max_length ({self.max_length}) must equal data.window ({self.window}) or be unset")
        return self


class RecordsData(_DataBase):
    """Longitudinal health records (``biolatent.data.records``): one sample per patient, a sequence of dated coded
    events. ``path`` is a long table (csv/tsv/parquet: patient, time, code[, value]) or an OMOP CDM folder of CSV
    files (PERSON required). Times are dates or numbers of days; events after the prediction time are dropped."""

    modality: Literal["records"] = "records"
    patient_column: str = "patient"
    time_column: str = "time"
    code_column: str = "code"
    value_column: str | None = Field("value", description="optional numeric value per event (used by value_bins)")
    births: Path | None = Field(None, description="long tables: table with patient_column + birth_column (a date or "
                                                  "days, in the units of time_column); None = no ages (all 0)")
    birth_column: str = "birth"
    prediction_time: str | float | None = Field(None, description="events after this date (or day) are never seen")
    prediction_time_column: str | None = Field(None, description="metadata column with each patient's prediction "
                                                                 "time (e.g. a landmark); patients without one see "
                                                                 "nothing after data_end")
    data_end: str | float | None = Field(None, description="end of the data: an event after it is an error")
    value_bins: int = Field(0, ge=0, le=20, description="> 0: numeric values become per-code quantile tokens "
                                                        "code:q1..qK")
    min_count: int = Field(1, ge=1, description="codes seen fewer times become [UNK]")
    max_length: int = Field(256, ge=8, description="tokens per patient; the most recent events are kept")


class _PairedGenetics(BaseModel):
    """Genetics of the same subjects, paired with the images by id (``biolatent.data.paired``): batches carry
    each part under its name; images of subjects without every part are reported and dropped for training
    (``embed`` still embeds every image)."""

    genotypes: Path | None = Field(None, description="PLINK prefix (.bed/.bim/.fam) or VCF of the same subjects: "
                                                     "standardised dosages in batch['genotypes']")
    genetic_tables: dict[str, Path] = Field(
        default_factory=dict, description="name -> table (id column + numeric columns, e.g. polygenic or burden "
                                          "scores): standardised values in batch[name]")
    max_variants: int | None = Field(None, ge=1, description="genotypes: keep at most this many variants, evenly "
                                                             "spaced along the genome")

    @property
    def paired_parts(self) -> list[str]:
        return (["genotypes"] if self.genotypes is not None else []) + list(self.genetic_tables)


class _PairedRecords(BaseModel):
    """Health records of the same subjects, paired with the images by id (``data.paired.attach_records``): batches
    carry each subject's records tokens under ``records`` (int64 (B, 4, L), as ``modality: records`` packs them);
    images of subjects without records are reported and dropped. The section is a records data section without
    ``modality`` (its ``path`` the long table or OMOP folder, its ``metadata`` e.g. the prediction times)."""

    records: RecordsData | None = Field(None, description="records of the same subjects (a records data section): "
                                                          "tokens in batch['records']")


class Image2dData(_PairedRecords, _PairedGenetics, _DataBase):
    """A folder of PNG/TIFF images (every image of it, or those ``meta.tsv`` lists: columns ``id``, ``path``
    relative to the folder, any metadata) or a whole-slide crop (SVS/TIFF) cut into tiles."""

    modality: Literal["image2d"] = "image2d"
    lesion_column: str | None = Field(None, description="meta.tsv column with a lesion-mask PNG per image (empty: "
                                                        "no lesion), same size as its image: SampleSet.fields"
                                                        "['lesion'] (anomaly evaluation)")
    image_size: int = Field(64, ge=8, description="side of the square images given to the encoder")
    tile_size: int = Field(64, ge=8, description="slides: tile side in pixels at level 0")
    min_tissue_fraction: float = Field(0.5, ge=0, le=1, description="slides: drop background tiles")
    max_samples: int | None = Field(None, ge=1)
    lazy: bool = Field(False, description="slides: find tissue without reading level 0 whole and cut each tile from "
                                          "the file when a batch needs it (memory independent of the slide's size)")


class _VolumeBase(_PairedRecords, _PairedGenetics, _DataBase):
    """NIfTI volumes in a folder: ``meta.tsv`` (columns ``id``, ``path`` relative to the folder, any metadata) or
    every ``*.nii`` / ``*.nii.gz`` of the folder; resampled to one grid, intensities normalised per volume."""

    image_size: int = Field(32, ge=8, description="side of the cube (voxels) given to the encoder")
    spacing: float | None = Field(
        None, gt=0, description="resample to this isotropic spacing (mm), then centre crop/pad to image_size; "
                                "None = every volume must share one spacing and is resized to image_size")
    normalise: Literal["mri", "ct", "minmax", "none"] = Field(
        "mri", description="intensities to [0, 1]: mri = 0.5-99.5 percentiles of the foreground, ct = HU window "
                           "(ct_center, ct_width), minmax, none")
    ct_center: float = 40.0
    ct_width: float = Field(400.0, gt=0)
    group_column: str | None = Field(None, description="metadata column naming each sample's subject/patient: "
                                                       "batches carry another sample of the same subject (micle)")
    max_samples: int | None = Field(None, ge=1)


class VolumeData(_VolumeBase):
    """3D volumes (MRI, CT): ``(N, 1, S, S, S)``."""

    lazy: bool = Field(False, description="read and preprocess each volume when a batch needs it instead of the "
                                          "whole cohort at load (memory independent of the number of volumes)")
    cache_dir: Path | None = Field(None, description="with lazy: folder keeping each preprocessed volume (.npy), "
                                                     "keyed by its file and the grid settings")

    modality: Literal["volume"] = "volume"
    mask_column: str | None = Field(None, description="metadata column with an anatomy-mask NIfTI per volume "
                                                      "(anatomy-aware masking); an empty mask is an error")
    lesion_column: str | None = Field(None, description="meta.tsv column with a lesion-mask NIfTI per volume "
                                                        "(empty: no lesion), on its volume's grid: SampleSet."
                                                        "fields['lesion'] (anomaly evaluation)")
    template: Path | None = Field(None, description="NIfTI template every volume is affinely registered to "
                                                    "(mutual information; SimpleITK) after resizing: volumes and "
                                                    "masks are then on the template's grid, and so are anomaly "
                                                    "maps; None = no registration")


class CineData(_VolumeBase):
    """3D+time cines (4D NIfTI, e.g. cardiac MRI over one cycle): ``(N, T, S, S, S)``."""

    modality: Literal["cine"] = "cine"
    frames: int | None = Field(None, ge=2, description="resample every cine to this many frames per cycle; "
                                                       "None = every cine must have the same number")


class SpatialData(_DataBase):
    """Spatial transcriptomics (10x Visium): one sample per in-tissue spot, an H&E tile centred on the spot
    (``x``) + the spot's expression (``fields["expression"]``).

    ``path`` is a Space Ranger output folder (``spatial/`` + ``filtered_feature_bc_matrix.h5`` or the matrix
    folder) or an ``.h5ad`` with ``obsm["spatial"]`` (scanpy/squidpy convention, image in ``uns["spatial"]``).
    ``image`` replaces the folder's/AnnData's image by another one (e.g. the full-resolution whole-slide image),
    whose pixels the positions are in; ``positions`` replaces the positions table.
    """

    modality: Literal["spatial"] = "spatial"
    image: Path | None = Field(None, description="image the tiles are cut from (PNG/TIFF/whole slide); positions "
                                                 "are in its pixels; None = the folder's / AnnData's own image")
    positions: Path | None = Field(None, description="positions table (Space Ranger tissue_positions format); "
                                                     "None = the folder's / obsm['spatial']")
    spot_diameter_px: float | None = Field(None, gt=0, description="spot diameter in pixels of the image; None = "
                                                                   "from the scale factors")
    spot_um: float = Field(55.0, gt=0, description="spot diameter in micrometres (Visium: 55)")
    tile_diameters: float = Field(2.0, gt=0, description="tile side in spot diameters")
    tile_um: float | None = Field(None, gt=0, description="tile side in micrometres; overrides tile_diameters")
    image_size: int = Field(64, ge=8, description="side of the square tiles given to the encoder")
    resolution: Literal["auto", "hires", "lowres", "fullres"] = Field(
        "auto", description="which Space Ranger image: auto = hires if present, else lowres; fullres = data.image")
    library: str | None = Field(None, description="the uns['spatial'] library of an .h5ad (None = its only one)")
    layer: str | None = Field(None, description=".h5ad: layer with the counts; None = X, 'raw' = raw.X")


class SeriesData(_DataBase):
    """Time series (``biolatent.data.series_sets``), in one of two layouts.

    ``points``: one series in a table (tsv/csv, one row per time point): ``(T, 1)`` values, the points as samples
    (the anomaly detectors). ``samples``: one sample per series, float32 ``(N, C, T)``, from an aeon/UCR ``.ts``
    file (its class labels become the obs column ``label``), a ``.npy`` / ``.npz`` array ``(N, C, T)`` or
    ``(N, T)`` (``.npz`` keys ``x``, optional ``lengths``, ``ids``, ``labels``) or a long table (``id_column``,
    ``time_column``, one column per channel). Series of different lengths are linearly resampled to ``length``
    (default: the longest), their own length kept in obs ``length``. ``auto``: ``samples`` for .ts/.npy/.npz and
    for a table with both ``id_column`` and ``time_column``, else ``points``.
    """

    modality: Literal["series"] = "series"
    layout: Literal["auto", "points", "samples"] = Field("auto", description="points: one series, its time points "
                                                                             "as samples; samples: one sample per "
                                                                             "series (see the class docstring)")
    value_column: str = Field("value", description="points layout: the column of values")
    label_column: str = Field("is_anomaly", description="points layout: 0/1 or True/False column of labelled "
                                                        "points (optional)")
    time_column: str = Field("time", description="long table (samples layout): the column ordering each series")
    value_columns: list[str] | None = Field(None, description="long table: the channels; None = every numeric "
                                                              "column but id and time")
    length: int | None = Field(None, ge=2, description="samples layout: resample every series to this many "
                                                       "points; None = keep equal lengths, resample unequal ones "
                                                       "to the longest")


class FeaturesData(_DataBase):
    """One row per sample: a table (tsv/csv, ``id_column`` + numeric feature columns) or embeddings in an .h5ad
    (``obsm[key]``): ``(N, F)``."""

    modality: Literal["features"] = "features"
    label_column: str = Field("is_anomaly", description="0/1 or True/False column of labelled samples (optional; "
                                                        "never a feature)")
    drop_columns: list[str] = Field(default_factory=list, description="table columns that are not features "
                                                                      "(besides the id and label_column)")
    feature_columns: list[str] | None = Field(None, description="table: the feature columns, picked by name; None "
                                                                "= every column but id, label and drop_columns")
    key: str = Field("X_biolatent", description="obsm key of the features in an .h5ad")


DataConfig = Annotated[CountsData | DnaData | Image2dData | VolumeData | CineData | SpatialData | RecordsData
                       | SeriesData | FeaturesData, Field(discriminator="modality")]
MODALITIES = ("counts", "dna", "image2d", "volume", "cine", "spatial", "records", "series", "features")
DATA_SECTIONS: tuple[type[_DataBase], ...] = (CountsData, DnaData, Image2dData, VolumeData, CineData, SpatialData,
                                               RecordsData, SeriesData, FeaturesData)
