"""``biolatent variant-effect``: zero-shot scores of VCF variants and in-silico mutagenesis of a region with a
masked DNA language model run (``variant_scores``). Every input is checked before anything is written."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from biolatent.build import build_method
from biolatent.errors import ConfigError, DataError
from biolatent.provenance import collect
from biolatent.rundir import staged_dir, write_json
from biolatent.train.checkpoint import load_weights
from biolatent.workflows.common import WEIGHTS_FILE, load_data_info, load_run_config

VARIANT_COLUMNS = ["#CHROM", "POS", "ID", "REF", "ALT", "score_llr", "score_embedding"]
ISM_COLUMNS = ["#CHROM", "POS", "REF", "ALT", "score_llr"]
MAX_ISM_BASES = 10_000
_REGION = re.compile(r"^(?P<chrom>[^:\s]+):(?P<start>[\d,]+)-(?P<end>[\d,]+)$")


def load_scoring_model(run_dir: Path):
    """The run's method in eval mode (weights only) and the window length its positions were trained for."""
    config = load_run_config(run_dir)
    if config.method.name != "mlm" or config.model.name not in ("bert", "nt"):
        raise ConfigError(f"variant-effect needs a masked DNA language model (method mlm, model bert or nt); {run_dir} "
                          f"was pre-trained with method {config.method.name!r}, model {config.model.name!r}")
    info = load_data_info(run_dir)
    method = build_method(config, info)
    load_weights(run_dir / WEIGHTS_FILE, method)
    return method.eval(), int(info.max_length), config


def read_reference(path: Path):
    """The reference's sequences by contig: read from an uncompressed FASTA through its samtools ``.fai`` (used
    when present, else built in one pass) as each window needs them, so a whole genome is never held in memory; a
    gzip FASTA is read whole."""
    from biolatent.io.faidx import indexed_sequences
    from biolatent.io.fasta import is_gzip, read_fasta

    if not Path(path).is_file():
        raise DataError(f"FASTA file not found: {path}")
    return dict(read_fasta(path)) if is_gzip(path) else indexed_sequences(path)


def parse_region(text: str, reference: dict[str, str], fasta: Path) -> tuple[str, int, int]:
    """``CHR:START-END`` (1-based, inclusive) -> (contig, start, end), checked against the reference."""
    match = _REGION.match(text.strip())
    if not match:
        raise DataError(f"--ism {text!r}: expected CHR:START-END (1-based, inclusive), e.g. chr1:1000-1100")
    chrom = match["chrom"]
    start, end = int(match["start"].replace(",", "")), int(match["end"].replace(",", ""))
    _check_contig(chrom, reference, fasta, f"--ism {text}")
    if not 1 <= start <= end <= len(reference[chrom]):
        raise DataError(f"--ism {text}: the region must lie within {chrom} (1-{len(reference[chrom])}) with "
                        "START <= END")
    if end - start + 1 > MAX_ISM_BASES:
        raise DataError(f"--ism {text}: {end - start + 1} bases; mutagenesis is limited to {MAX_ISM_BASES}")
    return chrom, start, end


def _check_contig(chrom: str, reference: dict[str, str], fasta: Path, what: str) -> None:
    if chrom not in reference:
        names = list(reference)
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise DataError(f"{what}: contig {chrom!r} is not in {fasta} (its contigs: {shown})")


def check_variants(variants: list, reference: dict[str, str], fasta: Path, vcf: Path) -> None:
    """Every variant's contig exists, its REF lies inside it and matches the reference bases."""
    for variant in variants:
        where = f"{vcf} line {variant.line}, variant {variant.label}"
        _check_contig(variant.chrom, reference, fasta, where)
        contig = reference[variant.chrom]
        end = variant.pos - 1 + len(variant.ref)
        if end > len(contig):
            raise DataError(f"{where}: REF ends at {end}, beyond the end of {variant.chrom} ({len(contig)} bases)")
        found = contig[variant.pos - 1 : end].upper()
        if found != variant.ref:
            raise DataError(f"{where}: REF {variant.ref} does not match the reference {fasta}, which has {found} "
                            f"there (another genome build?)")


def score_variants(method, width: int, variants: list, reference: dict[str, str], batch_size: int,
                   say=print) -> pd.DataFrame:
    from biolatent.variant_scores import alt_window, embedding_distances, llr_scores, window_start

    windows, offsets, alts_windows = [], [], []
    for v in variants:
        contig = reference[v.chrom]
        start = window_start(v.pos - 1, len(contig), width)
        windows.append(contig[start : start + width].upper())
        offsets.append(v.pos - 1 - start)
        alts_windows.append(alt_window(contig, start, width, v.pos - 1, v.ref, v.alt) if v.alt.isalpha() else None)
    llr = llr_scores(method, windows, offsets, [v.ref for v in variants], [v.alt for v in variants],
                     batch_size=batch_size, say=say)
    distance = np.full(len(variants), np.nan)
    usable = [i for i, w in enumerate(alts_windows) if w is not None and set(variants[i].alt) <= set("ACGTN")]
    if usable:
        distance[usable] = embedding_distances(method, [windows[i] for i in usable],
                                               [alts_windows[i] for i in usable], batch_size)
    return pd.DataFrame({
        "#CHROM": [v.chrom for v in variants], "POS": [v.pos for v in variants], "ID": [v.id for v in variants],
        "REF": [v.ref for v in variants], "ALT": [v.alt for v in variants], "score_llr": llr,
        "score_embedding": distance,
    }, columns=VARIANT_COLUMNS)


def mutagenesis(method, width: int, reference: dict[str, str], chrom: str, start: int, end: int,
                batch_size: int, say=print) -> pd.DataFrame:
    """Every single-base substitution of ``chrom:start-end``: one row per position and alternative base."""
    from biolatent.io.variants import Variant

    contig = reference[chrom]
    variants = []
    for pos in range(start, end + 1):
        base = contig[pos - 1].upper()
        for alt in "ACGT":
            if alt != base:
                variants.append(Variant(chrom, pos, ".", base, alt, 0))
    from biolatent.variant_scores import llr_scores, window_start

    windows, offsets = [], []
    for v in variants:
        s = window_start(v.pos - 1, len(contig), width)
        windows.append(contig[s : s + width].upper())
        offsets.append(v.pos - 1 - s)
    llr = llr_scores(method, windows, offsets, [v.ref for v in variants], [v.alt for v in variants],
                     batch_size=batch_size, say=say)
    return pd.DataFrame({"#CHROM": chrom, "POS": [v.pos for v in variants], "REF": [v.ref for v in variants],
                         "ALT": [v.alt for v in variants], "score_llr": llr}, columns=ISM_COLUMNS)


def ism_heatmap(table: pd.DataFrame, reference_bases: str, start: int, title: str):
    """Bases x positions of the LLR (reference base cells grey), diverging around 0."""
    from biolatent.evaluate.plots import new_figure

    n = len(reference_bases)
    grid = np.full((4, n), np.nan)
    for row in table.itertuples(index=False):
        grid["ACGT".index(row.ALT), row.POS - start] = row.score_llr
    limit = float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 1.0
    figure = new_figure(min(max(4.0, 0.12 * n + 1.5), 30.0), 2.4)
    ax = figure.add_subplot()
    import matplotlib

    cmap = matplotlib.colormaps["RdBu"].with_extremes(bad="lightgrey")  # grey: the reference base
    image = ax.imshow(grid, aspect="auto", cmap=cmap, vmin=-limit, vmax=limit, interpolation="nearest")
    ax.set_yticks(range(4), list("ACGT"))
    step = max(1, n // 20)
    ax.set_xticks(range(0, n, step), [str(start + i) for i in range(0, n, step)], rotation=90, fontsize=7)
    if n <= 120:  # the reference sequence along the top
        top = ax.secondary_xaxis("top")
        top.set_xticks(range(n), list(reference_bases), fontsize=6)
    ax.set_title(title, fontsize=9)
    figure.colorbar(image, ax=ax, label="log-likelihood ratio alt vs ref")
    return figure


def variant_effect_run(run_dir: Path, fasta: Path, out: Path, variants_path: Path | None = None,
                       ism: str | None = None, batch_size: int = 64, say=print) -> Path:
    from biolatent.evaluate.plots import save_figure
    from biolatent.io.variants import read_variants

    if variants_path is None and ism is None:
        raise ConfigError("give --variants VCF, --ism CHR:START-END or both")
    method, width, config = load_scoring_model(run_dir)
    reference = read_reference(fasta)
    variants = read_variants(variants_path) if variants_path is not None else []
    if variants:
        check_variants(variants, reference, fasta, variants_path)
    region = parse_region(ism, reference, fasta) if ism is not None else None
    summary: dict = {"run": str(run_dir.resolve()), "window_bases": width, "reference": str(fasta)}
    with staged_dir(out) as tmp:
        if variants:
            say(f"scoring {len(variants)} variants in {width}-base windows ...")
            table = score_variants(method, width, variants, reference, batch_size, say)
            table.to_csv(tmp / "variant_effects.tsv", sep="\t", index=False, float_format="%.6g", na_rep="nan")
            summary["variants"] = {"n": len(table), "llr_scored": int(table.score_llr.notna().sum()),
                                   "embedding_scored": int(table.score_embedding.notna().sum())}
        if region is not None:
            chrom, start, end = region
            say(f"in-silico mutagenesis of {chrom}:{start}-{end} ({3 * (end - start + 1)} substitutions) ...")
            table = mutagenesis(method, width, reference, chrom, start, end, batch_size, say)
            table.to_csv(tmp / "ism.tsv", sep="\t", index=False, float_format="%.6g", na_rep="nan")
            figure = ism_heatmap(table, reference[chrom][start - 1 : end].upper(), start,
                                 f"in-silico mutagenesis {chrom}:{start}-{end} ({config.model.name})")
            save_figure(figure, tmp / "ism.png")
            summary["ism"] = {"region": f"{chrom}:{start}-{end}", "n": len(table)}
        write_json(tmp / "variant_effect.json", summary)
        write_json(tmp / "provenance.json", collect("variant-effect", config_hash=config.hash()))
    return out
