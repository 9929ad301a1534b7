"""Paired samples: an image ``SampleSet`` joined by subject id with the same subjects' genetics or health records.

The paired-data contract of the design: one ``SampleSet`` whose batches carry one tensor per part under the
part's name, aligned by sample id at load time. The genetic parts (ContIG's inputs, Taleb et al. 2022) are

- ``genotypes`` (``data.genotypes``: a PLINK 1 prefix or a VCF/BCF): the ALT dosages of every variant kept
  (``data.max_variants``: evenly spaced along the genome), standardised per variant over the paired subjects as
  the GRM does (``io.genotype_matrix.standardise_block``: (d - 2p) / sqrt(2p(1 - p)), a missing call 0);
  variants monomorphic among the paired subjects dropped;
- one part per entry of ``data.genetic_tables`` (``name: table``, an id column + numeric columns such as
  polygenic scores or gene burden scores), centred and scaled per column (``standardise_columns``).

- ``records`` (``data.records``: a records data section): each subject's records tokens, int64 (4, L) as
  ``modality: records`` packs them (``attach_records``), for image <-> records methods.

Subjects that lack a part are reported and dropped: ContIG's "inner" aggregation of genetic modalities (the
intersection of the subjects that have every part). Ids never shift: every part is looked up by id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from biolatent.data.lazy_rows import LazyRows
from biolatent.data.samples import SampleSet
from biolatent.errors import DataError
from biolatent.io.genotype_matrix import standardise_block

N_EXAMPLES = 5
GENOTYPES = "genotypes"
# batch keys the data and the trainer already use: a genetic table may not take one of these names
RECORDS = "records"
RESERVED_NAMES = frozenset({"x", "index", "y", "x_pair", "mask", "expression", GENOTYPES, RECORDS})


def match_ids(
    first_ids: Sequence[Any], second_ids: Sequence[Any], names: tuple[str, str] = ("phenotype", "genotype")
) -> tuple[list[str], dict[str, Any]]:
    """Ids (as text) present in both lists, in the order of ``second_ids``, and a report of what did not match.

    ``names`` name the two lists in the report (``n_only_<name>s``) and in the errors (duplicated id, no id in
    common).
    """
    first, second = [str(s) for s in first_ids], [str(s) for s in second_ids]
    for name, ids in zip(names, (first, second), strict=True):
        index = pd.Index(ids)
        if index.has_duplicates:
            raise DataError(f"duplicated {name} sample id {index[index.duplicated()][0]!r}")
    first_set, second_set = set(first), set(second)
    common = [s for s in second if s in first_set]
    only_first = [s for s in first if s not in second_set]
    only_second = [s for s in second if s not in first_set]
    report = {
        "n_matched": len(common), f"n_only_{names[0]}s": len(only_first), f"n_only_{names[1]}s": len(only_second),
        "examples": {"matched": common[:N_EXAMPLES], f"only_{names[0]}s": only_first[:N_EXAMPLES],
                     f"only_{names[1]}s": only_second[:N_EXAMPLES]},
    }
    if not common:
        raise DataError(f"no sample id in common between {names[0]}s ({len(first)}, e.g. {first[:1] or 'none'}) "
                        f"and {names[1]}s ({len(second)}, e.g. {second[:1] or 'none'})")
    return common, report


def standardise_columns(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre and scale every column of a table without missing values (sample SD) -> (float32 values of the
    varying columns, boolean mask of the columns kept)."""
    sd = values.std(axis=0, ddof=1) if values.shape[0] > 1 else np.zeros(values.shape[1])
    keep = sd > 1e-8
    return ((values[:, keep] - values[:, keep].mean(axis=0)) / sd[keep]).astype(np.float32), keep


def evenly_spaced(n: int, keep: int | None) -> np.ndarray:
    """Indices of at most ``keep`` of ``n`` items spread evenly (all of them when ``keep`` is None or >= n)."""
    if keep is None or keep >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, keep).round().astype(np.int64))


def read_genotype_part(path: Path, max_variants: int | None) -> tuple[list[str], np.ndarray, dict[str, Any]]:
    """(sample ids, dosages float64 (n, m) with NaN = missing, facts) of a PLINK prefix or VCF."""
    from biolatent.io.genotypes import read_genotypes

    genotypes = read_genotypes(path)
    dosages = genotypes.dosages
    if dosages.size == 0:
        raise DataError(f"genotypes {path}: no variants")
    called = ~np.isnan(dosages)
    if not called.any():
        raise DataError(f"genotypes {path}: every call of its {genotypes.n_samples} samples is missing")
    has_calls = called.any(axis=1)
    chosen = evenly_spaced(genotypes.n_variants, max_variants)
    ids = [s for s, ok in zip(genotypes.samples, has_calls, strict=True) if ok]
    facts = {"source": str(path), "n_samples": genotypes.n_samples, "n_variants_in_file": genotypes.n_variants,
             "n_samples_without_calls": int((~has_calls).sum())}
    return ids, np.asarray(dosages[np.ix_(has_calls, chosen)], dtype=np.float64), facts


def read_table_part(name: str, path: Path, id_column: str) -> tuple[list[str], np.ndarray, dict[str, Any]]:
    """(sample ids, values float64 (n, k), facts) of a table of per-subject genetic features."""
    from biolatent.io.tables import read_table

    table = read_table(path, id_column=id_column)
    text = [str(c) for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])]
    if text:
        raise DataError(f"genetic table {name!r} ({path}) has non-numeric columns: {', '.join(text[:5])}; keep only "
                        "the id column and numeric features")
    if table.shape[1] == 0:
        raise DataError(f"genetic table {name!r} ({path}) has no feature column besides {id_column!r}")
    values = table.to_numpy(dtype=np.float64)
    if np.isnan(values).any():
        row, col = (int(v[0]) for v in np.nonzero(np.isnan(values)))
        raise DataError(f"genetic table {name!r} ({path}) has {int(np.isnan(values).sum())} missing values (e.g. "
                        f"sample {table.index[row]!r}, column {table.columns[col]!r}); fill or drop them")
    return [str(i) for i in table.index], values, {"source": str(path), "n_samples": len(table),
                                                    "columns": [str(c) for c in table.columns]}


def attach_genetics(
    samples: SampleSet,
    genotypes: Path | None,
    genetic_tables: Mapping[str, Path],
    *,
    id_column: str = "id",
    max_variants: int | None = None,
) -> SampleSet:
    """``samples`` restricted to the subjects that have every genetic part, each part in ``fields[name]``.

    ``extra["pairing"]`` reports what was matched and dropped (``pairing_text`` says it in one line);
    ``info.genetic_parts`` gives each part's width (what a cross-modal method builds its encoders from).
    """
    bad = sorted(set(genetic_tables) & RESERVED_NAMES)
    if bad:
        raise DataError(f"data.genetic_tables: {', '.join(bad)} is a reserved batch key; name the table otherwise")
    odd = [name for name in genetic_tables if not name.isidentifier()]
    if odd:
        raise DataError(f"data.genetic_tables: {odd[0]!r} is not a valid name (letters, digits, underscores)")
    image_ids = samples.ids
    parts: dict[str, tuple[list[str], np.ndarray, dict[str, Any]]] = {}
    if genotypes is not None:
        parts[GENOTYPES] = read_genotype_part(genotypes, max_variants)
    for name, path in genetic_tables.items():
        parts[name] = read_table_part(name, path, id_column)
    keep = set(image_ids)
    report: dict[str, Any] = {"n_images": len(image_ids), "parts": {}}
    for name, (ids, _, facts) in parts.items():
        try:
            common, matched = match_ids(image_ids, ids, names=("image", name))
        except DataError as exc:
            raise DataError(f"{name} ({facts['source']}): {exc}") from None
        keep &= set(common)
        report["parts"][name] = {**facts, "n_matched": matched["n_matched"],
                                 "n_images_without": matched["n_only_images"],
                                 "examples_images_without": matched["examples"]["only_images"]}
    if not keep:
        counts = ", ".join(f"{name} {part['n_matched']}" for name, part in report["parts"].items())
        raise DataError(f"the parts of the paired data disagree on ids: of {len(image_ids)} images, {counts} match, "
                        "but no subject has every part")
    rows = np.array([i for i, s in enumerate(image_ids) if s in keep], dtype=np.int64)
    paired_ids = [image_ids[i] for i in rows]
    fields = {key: value[torch.from_numpy(rows)] for key, value in samples.fields.items()}  # e.g. anatomy masks
    widths: dict[str, int] = {}
    for name, (ids, values, _) in parts.items():
        position = {s: i for i, s in enumerate(ids)}
        rows_of_part = values[[position[s] for s in paired_ids]]
        standardise = standardise_block if name == GENOTYPES else standardise_columns
        standardised, kept = standardise(rows_of_part)
        if standardised.shape[1] == 0:
            raise DataError(f"{name} ({parts[name][2]['source']}): no column varies among the {len(paired_ids)} "
                            "paired subjects")
        fields[name] = torch.from_numpy(np.ascontiguousarray(standardised, dtype=np.float32))
        widths[name] = int(standardised.shape[1])
        report["parts"][name].update({"n_features": widths[name], "n_constant_dropped": int((~kept).sum())})
    report.update({"n_paired": len(paired_ids), "n_dropped": len(image_ids) - len(paired_ids)})
    return _subset(samples, rows, fields, report, genetic_parts=widths)


def _subset(samples: SampleSet, rows: np.ndarray, fields: dict[str, torch.Tensor], report: dict[str, Any],
            **info_updates: Any) -> SampleSet:
    """``samples`` at ``rows`` with ``fields`` (already at ``rows``), the pairing report merged into
    ``extra["pairing"]`` (an earlier part's report keeps its parts) and ``info`` updated."""
    index = torch.from_numpy(rows)
    groups = None if samples.groups is None else samples.groups[index]
    earlier = samples.extra.get("pairing")
    if isinstance(earlier, dict):
        report = {**report, "parts": {**earlier["parts"], **report["parts"]}}
    x = samples.x.take(index) if isinstance(samples.x, LazyRows) else samples.x[index]  # a lazy matrix stays lazy
    return SampleSet(replace(samples.info, **info_updates), x, samples.obs.iloc[rows],
                     samples.feature_names, {**samples.extra, "pairing": report}, fields, groups)


def attach_records(samples: SampleSet, records: SampleSet) -> SampleSet:
    """``samples`` restricted to the subjects that have records (``records``: a ``modality: records`` sample set,
    ids = patient ids), their tokens in ``fields["records"]``; ``info.records_vocab_size`` /
    ``records_max_length`` say what a records encoder is built for, ``extra["records_vocab"]`` the codes.

    The records' metadata columns (e.g. outcomes defined on them) join the image metadata where the image
    metadata lacks the column. A DataError when no subject has both parts (the parts disagree on ids)."""
    image_ids = samples.ids
    source = str(records.extra.get("source", "data.records"))
    if not set(image_ids) & set(records.ids):
        raise DataError(f"the parts of the paired data disagree on ids: none of the {len(image_ids)} images (e.g. "
                        f"{image_ids[0]!r}) has records in {source} ({len(records)} patients, e.g. "
                        f"{records.ids[0] if len(records) else 'none'!r})")
    common, matched = match_ids(image_ids, records.ids, names=("image", RECORDS))
    keep = set(common)
    rows = np.array([i for i, s in enumerate(image_ids) if s in keep], dtype=np.int64)
    paired_ids = [image_ids[i] for i in rows]
    position = {s: i for i, s in enumerate(records.ids)}
    record_rows = torch.as_tensor([position[s] for s in paired_ids], dtype=torch.long)
    fields = {key: value[torch.from_numpy(rows)] for key, value in samples.fields.items()}
    fields[RECORDS] = records.x[record_rows]
    vocab = list(records.extra.get("vocab", []))
    report = {"n_images": len(image_ids), "n_paired": len(paired_ids), "n_dropped": len(image_ids) - len(paired_ids),
              "parts": {RECORDS: {"source": source, "n_samples": len(records), "n_matched": matched["n_matched"],
                                  "n_features": len(vocab), "n_images_without": matched["n_only_images"],
                                  "examples_images_without": matched["examples"]["only_images"]}}}
    out = _subset(samples, rows, fields, report, records_vocab_size=int(records.info.vocab_size or len(vocab)),
                  records_max_length=int(records.info.max_length or records.x.shape[-1]))
    extra_columns = [c for c in records.obs.columns if c not in out.obs.columns]
    if extra_columns:
        out.obs = out.obs.join(records.obs.loc[paired_ids, extra_columns].set_axis(out.obs.index))
    out.extra["records_vocab"] = vocab
    return out


def pairing_text(report: Mapping[str, Any]) -> str:
    """One line: how many images were paired with which parts, and how many were dropped for lacking one."""
    parts = ", ".join(f"{name} ({part['n_features']} features)" for name, part in report["parts"].items())
    line = f"paired {report['n_paired']} of {report['n_images']} images with {parts}"
    missing = [f"{part['n_images_without']} without {name} (e.g. {', '.join(part['examples_images_without'][:2])})"
               for name, part in report["parts"].items() if part["n_images_without"]]
    return line + ("; dropped " + "; ".join(missing) if missing else "")
