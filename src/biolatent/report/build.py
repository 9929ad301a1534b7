"""Build RUN/report.html from whatever the run directory holds; each missing piece names its command.

Every section is built independently: a missing file gives "not run" with the command that makes it, an
unreadable one gives its error, and neither stops the rest of the report.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from biolatent.errors import DataError
from biolatent.progress import StepProgress
from biolatent.report.figures import figure_to_base64, history_figure, png_file_to_base64, read_history
from biolatent.report.page import Fig, Section, Table, fmt, read_json_object, render
from biolatent.rundir import write_text

EMBEDDING_KEY = "X_biolatent"
PRETRAIN = "biolatent pretrain CONFIG.yaml --out RUN"
EVALUATE = "biolatent evaluate RUN --label COLUMN"


def _flatten(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(obj, dict):
        items: list[tuple[str, Any]] = []
        for key, value in obj.items():
            items += _flatten(value, f"{prefix}.{key}" if prefix else str(key))
        return items
    return [(prefix, obj)]


def _config(run_dir: Path, section: Section) -> None:
    section.pre = (run_dir / section.source).read_text(encoding="utf-8")


def _provenance(run_dir: Path, section: Section) -> None:
    rows = [[key, fmt(value)] for key, value in _flatten(read_json_object(run_dir / section.source))]
    section.tables.append(Table(["key", "value"], rows))


def _metrics(run_dir: Path, section: Section) -> None:
    rows = []
    for name, values in read_json_object(run_dir / section.source).items():
        for key, value in _flatten(values):
            rows.append([name, key, fmt(value)])
    section.tables.append(Table(["section", "key", "value"], rows))


def _history(run_dir: Path, section: Section) -> None:
    history = read_history(run_dir / section.source)
    section.notes.append(f"{len(history)} epochs.")
    section.figures.append(Fig("training-curves", "Training curves (one panel per metric)",
                               figure_to_base64(history_figure(history))))


def _embeddings(run_dir: Path, section: Section) -> None:
    import anndata

    from biolatent.discover.umap_plot import plottable_columns, umap_coordinates, umap_figure
    from biolatent.evaluate.plots import spectrum_figure
    from biolatent.evaluate.quality import effective_rank

    try:
        adata = anndata.read_h5ad(run_dir / section.source)
    except Exception as exc:  # h5py/anndata raise many types for a corrupt file
        raise DataError(f"cannot read {section.source}: {exc}") from None
    if EMBEDDING_KEY not in adata.obsm:
        raise DataError(f"{section.source} has no obsm[{EMBEDDING_KEY!r}]")
    x = np.asarray(adata.obsm[EMBEDDING_KEY], dtype=np.float64)
    rank = effective_rank(x)
    section.tables.append(Table(["samples", "dimensions", "effective rank"],
                                [[str(x.shape[0]), str(x.shape[1]), f"{rank:.2f}"]]))
    section.figures.append(Fig("spectrum", "Singular spectrum of the embeddings (effective rank, Roy & "
                               "Vetterli 2007)", figure_to_base64(spectrum_figure(x))))
    columns = plottable_columns(adata.obs)
    skipped = [str(c) for c in adata.obs.columns if str(c) not in {name for name, _ in columns}]
    if skipped:
        section.notes.append("Not used for colouring (single value or one value per sample): "
                             + ", ".join(skipped) + ".")
    if not columns:
        section.notes.append("No metadata column to colour the UMAP by.")
        return
    coords, index = umap_coordinates(x)
    if index.size < x.shape[0]:
        section.notes.append(f"UMAP on a random subsample of {index.size} of {x.shape[0]} samples.")
    obs = adata.obs.iloc[index]
    for name, kind in columns:
        figure = umap_figure(coords, obs[name], kind, name)
        caption = f"UMAP coloured by {name} ({kind})"
        section.figures.append(Fig(f"umap-{name}", caption, figure_to_base64(figure)))


PROTOCOL_NOTES = {
    "transductive": "Protocol: transductive (SSL pre-training, PCA and scalers saw every sample, test samples "
                    "included, never their labels).",
    "inductive": "Protocol: inductive (SSL pre-training, PCA and scalers were fitted on training samples only; "
                 "the test ids of every split were kept out of pre-training).",
}


def _efficiency(run_dir: Path, section: Section) -> None:
    from biolatent.evaluate.efficiency import headline, read_efficiency
    from biolatent.evaluate.plots import METRIC_LABELS, label_efficiency_figure

    summary = read_efficiency(run_dir / section.source)
    folder = (run_dir / section.source).parent
    settings = read_json_object(folder / "evaluate.json") if (folder / "evaluate.json").is_file() else {}
    classes = settings.get("classes")
    fraction = settings.get("headline_fraction", 0.1)
    head = headline(summary, float(fraction) if isinstance(fraction, (int, float)) else 0.1,
                    n_classes=len(classes) if isinstance(classes, list) else None)
    name = METRIC_LABELS.get(head["metric"], head["metric"])
    at = summary[(summary["metric"] == head["metric"]) & np.isclose(summary["fraction"], head["fraction"])]
    rows = [[r.representation, r.probe, fmt(r.mean), f"[{fmt(r.ci_low)}, {fmt(r.ci_high)}]",
             str(r.n_seeds)] for r in at.itertuples()]
    protocol = str(summary["protocol"].iloc[0]) if len(summary) else "transductive"
    varied = str(at["sources"].iloc[0]) if len(at) else "label_subset"
    caption = (f"{name[:1].upper() + name[1:]} at {head['fraction'] * 100:g}% of the training labels "
               f"(mean, 95% CI over {varied.replace('+', ' x ').replace('_', ' ')}; {protocol} protocol)")
    section.tables.append(Table(["representation", "probe", name, "95% CI", "seeds"], rows, caption))
    section.notes.append(PROTOCOL_NOTES.get(protocol, f"Protocol: {protocol}."))
    ratio = head.get("ssl_fraction_of_supervised")
    if ratio is not None:
        section.notes.append(f"SSL linear probe reaches {ratio * 100:.1f}% of the supervised baseline's "
                             f"{name} with {head['fraction'] * 100:g}% of the labels.")
    elif head.get("ratio_withheld"):
        section.notes.append(f"No SSL / supervised ratio: {head['ratio_withheld']}.")
    supervised = settings.get("supervised")
    if isinstance(supervised, dict) and "lr_grid" in supervised:
        from biolatent.train.supervised import budget_sentence

        section.notes.append(budget_sentence(supervised) + (f" Rule: {supervised['rule']}."
                                                            if supervised.get("rule") else ""))
    sizes = settings.get("labelled_per_fraction")
    if isinstance(sizes, dict) and sizes:
        stratified = (" (stratified fractions keep at least one label per class, so small fractions can give "
                      "the same number)") if isinstance(classes, list) else ""
        section.notes.append("Labelled samples per fraction: " + ", ".join(
            f"{float(f) * 100:g}% = {n}" for f, n in sizes.items()) + stratified + ".")
    try:
        b64 = figure_to_base64(label_efficiency_figure(summary))
    except DataError:
        if not (folder / "efficiency.png").is_file():
            raise
        b64 = png_file_to_base64(folder / "efficiency.png")
    section.figures.append(Fig("efficiency", "Label efficiency: metric vs labelled fraction (95% CI bands; "
                               "supervised dashed)", b64))
    split = settings.get("split")
    if isinstance(split, dict) and split.get("kind") == "spatial blocks":
        section.notes.append(f"Expression of {settings.get('n_genes', '?')} genes predicted from the image alone; "
                             f"test spots are whole held-out tissue regions ({split.get('n_test')} spots), "
                             f"{split.get('n_buffer')} training spots next to them were dropped, "
                             f"{split.get('n_train')} spots form the labelled pool.")
    if (folder / "expression_maps.png").is_file():
        section.figures.append(Fig("expression-maps", "Measured vs predicted expression on the tissue (held-out "
                                   "regions outlined; prediction shown for them only)",
                                   png_file_to_base64(folder / "expression_maps.png")))
    section.details.append(Table(list(summary.columns), [[fmt(v) for v in row] for row in
                                                         summary.itertuples(index=False)], "All results"))


def _anomaly(run_dir: Path, section: Section) -> None:
    import pandas as pd

    table = pd.read_csv(run_dir / section.source, sep="\t")
    section.tables.append(Table(list(table.columns), [[fmt(v) for v in row] for row in table.itertuples(index=False)],
                                "Detection metrics (dice_best is chosen on the test labels: an upper bound)"))
    if (run_dir / "anomaly.json").is_file():
        state = read_json_object(run_dir / "anomaly.json")
        section.notes.append(f"Detector {state['detector']} fitted on healthy data only; threshold "
                             f"{fmt(state['threshold'])} set at a {fmt(state['target_fpr'])} false-positive rate on "
                             f"held-out healthy data (observed {fmt(state['validation_fpr'])}).")
        for warning in state.get("warnings") or []:
            section.notes.append(f"Warning: {warning}")
    if (run_dir / "lesion_sizes.tsv").is_file():
        sizes = pd.read_csv(run_dir / "lesion_sizes.tsv", sep="\t")
        section.tables.append(Table(list(sizes.columns), [[fmt(v) for v in row] for row in
                                                          sizes.itertuples(index=False)],
                                    "Lesion-wise detection by lesion size (pixels or voxels): raw maps at the "
                                    "healthy threshold and the post-processed segmentation"))
    for name, caption in (("anomaly_curves.png", "ROC and precision-recall curves"),
                          ("anomaly_scores.png", "Scores against the labels, with the healthy-validation threshold"),
                          ("anomaly_maps.png", "Images, anomaly maps and ground-truth lesion masks"),
                          ("segmentation_maps.png", "Images, segmentation probabilities and ground-truth masks")):
        if (run_dir / name).is_file():
            section.figures.append(Fig(name.removesuffix(".png"), caption, png_file_to_base64(run_dir / name)))


def _registration(run_dir: Path, section: Section) -> None:
    """Per method: mean over pairs of the mean tissue Dice (95% t interval), HD95, folding, seconds per pair."""
    import pandas as pd
    from scipy import stats

    table = pd.read_csv(run_dir / section.source, sep="\t", keep_default_na=False)
    means = table[table["label"].astype(str) == "mean"]
    rows = []
    for method, group in means.groupby("method", sort=False):
        dice = pd.to_numeric(group["dice"], errors="coerce").dropna().to_numpy()
        half = (float(stats.t.ppf(0.975, dice.size - 1) * dice.std(ddof=1) / np.sqrt(dice.size))
                if dice.size > 1 else float("nan"))
        rows.append([method, fmt(int(group["pair"].nunique())), fmt(float(dice.mean()) if dice.size else None),
                     fmt(half), fmt(float(pd.to_numeric(group["hd95"], errors="coerce").mean())),
                     fmt(float(group["folding_fraction"].astype(float).mean())),
                     fmt(float(group["seconds"].astype(float).mean()))])
    section.tables.append(Table(["method", "pairs", "mean Dice", "95% CI +-", "HD95", "folding fraction",
                                 "seconds / pair"], rows,
                                "Mean over pairs of each pair's mean Dice over labels (identity: no registration)"))
    if (run_dir / "registration_pairs.png").is_file():
        section.figures.append(Fig("registration-pairs", "Checkerboards of fixed vs moving before and after "
                                   "registration, and the Jacobian determinant of the field (folds outlined)",
                                   png_file_to_base64(run_dir / "registration_pairs.png")))


def _is_registration_run(run_dir: Path) -> bool:
    with contextlib.suppress(OSError, DataError):
        return "register" in read_json_object(run_dir / "metrics.json")
    return False


def _pretrain_metrics(run_dir: Path) -> dict:
    """``metrics.json``'s pretrain part, ``{}`` when the file or the part is missing or unreadable (the metrics
    section reports a bad file)."""
    with contextlib.suppress(OSError, DataError):
        pretrain = read_json_object(run_dir / "metrics.json").get("pretrain", {})
        return pretrain if isinstance(pretrain, dict) else {}
    return {}


def _has_pairing(run_dir: Path) -> bool:
    return isinstance(_pretrain_metrics(run_dir).get("pairing"), dict)


def _pairing(run_dir: Path, section: Section) -> None:
    """Images paired with genetics or records (``data.paired``): what each part held, what matched, what was
    dropped, and how well the trained model tells each subject's other part from the others' in a batch (final
    training accuracy)."""
    from biolatent.data.paired import pairing_text

    pretrain = _pretrain_metrics(run_dir)
    report = pretrain["pairing"]
    section.notes.append(pairing_text(report) + ".")
    rows = []
    for name, part in report["parts"].items():
        accuracy = pretrain.get(f"final_accuracy_{name}", pretrain.get("final_accuracy"))
        rows.append([name, str(part.get("source", "")), fmt(part.get("n_features")),
                     fmt(part.get("n_constant_dropped")), fmt(part.get("n_matched")),
                     fmt(part.get("n_images_without")), fmt(accuracy)])
    section.tables.append(Table(
        ["part", "source", "features", "constant, dropped", "images matched", "images without", "final accuracy"],
        rows, "final accuracy (contrastive methods): the last epoch's rate at which an image's projection is closest "
              "to its own subject's other part among the batch (chance = 1 / batch size)"))


def _records(run_dir: Path, section: Section) -> None:
    """Health records as the encoder sees them (``RUN/records.json``): sizes, coding systems, frequent codes and a
    few patients' timelines."""
    from biolatent.report.records_plot import timeline_figure

    overview = read_json_object(run_dir / section.source)
    tokens, visits = overview["tokens_per_patient"], overview["visits_per_patient"]
    section.tables.append(Table(
        ["patients", "codes (vocabulary)", "tokens per patient (median / max)", "visits (median / max)",
         "patients without events", "patients cut at max_length"],
        [[fmt(overview["n_patients"]), fmt(overview["vocab_size"]), f"{fmt(tokens['median'])} / {fmt(tokens['max'])}",
          f"{fmt(visits['median'])} / {fmt(visits['max'])}", fmt(overview["n_without_events"]),
          f"{fmt(overview['n_full'])} (max_length {overview['max_length']})"]]))
    section.tables.append(Table(["coding system", "events"], [[k, fmt(v)] for k, v in
                                                             overview["events_by_system"].items()]))
    section.tables.append(Table(["code", "events"], [[code, fmt(n)] for code, n in overview["top_codes"]],
                                "most frequent codes (value codes as code:qK, the K-th quantile of the values)"))
    if overview["timelines"]:
        section.figures.append(Fig("records-timeline", "Patient timelines: coded events up to the prediction time "
                                   "(seeded choice of patients)", figure_to_base64(timeline_figure(overview))))


def _robustness(run_dir: Path, section: Section) -> None:
    """``robustness.tsv`` (``biolatent robustness``): a plot per check it holds, the whole table in the details."""
    from biolatent.evaluate import plots
    from biolatent.evaluate.robustness import read_robustness

    table = read_robustness(run_dir / section.source)
    settings_path = run_dir / "robustness.json"
    settings = read_json_object(settings_path) if settings_path.is_file() else {}
    sites = settings.get("sites")
    if settings.get("label"):
        section.notes.append(f"Label {settings['label']!r}; site column {settings.get('site_column')!r}; mean and "
                             "95% CI over every pre-training seed x repeat seed (labelled subset, and test split "
                             "where the test set is not a site).")
    checks = set(table["check"])
    figures = [
        ("cross_site", "robustness-cross-site", "Cross-site transfer: probes trained on every other site, tested on "
         "the held-out one", plots.cross_site_figure),
        ("site_leakage", "robustness-site-leakage", "Site leakage: the site predicted from each representation "
         "(dotted: chance)", lambda t: plots.site_leakage_figure(t, len(sites) if isinstance(sites, list) else None)),
        ("label_noise", "robustness-label-noise", "Label noise: training labels flipped (symmetric), test labels "
         "clean", plots.label_noise_figure),
        ("augmentation_ablation", "robustness-ablation", "Augmentation ablation: one view family removed per "
         "pre-training variant (same seeds, same budget)", plots.ablation_figure),
    ]
    for check, key, caption, make in figures:
        if check in checks:
            section.figures.append(Fig(key, caption, figure_to_base64(make(table))))
    skipped = [c for c in ("cross_site", "site_leakage", "label_noise") if c not in checks]
    if skipped and "augmentation_ablation" not in checks:
        section.notes.append("Not run: " + ", ".join(skipped) + " (no site column, or a continuous label).")
    section.details.append(Table(list(table.columns), [[fmt(v) for v in row] for row in
                                                       table.itertuples(index=False)], "All results"))


def _discovery(run_dir: Path, section: Section) -> None:
    from biolatent.report.discovery import fill_discovery

    fill_discovery(run_dir, section)


SECTIONS: list[tuple[str, str, str, str, Callable[[Path, Section], None]]] = [
    ("config", "Configuration", "config.yaml", PRETRAIN, _config),
    ("provenance", "Provenance", "provenance.json", PRETRAIN, _provenance),
    ("metrics", "Metrics", "metrics.json", PRETRAIN, _metrics),
    ("pairing", "Paired data: images with genetics or records", "metrics.json", PRETRAIN, _pairing),
    ("records", "Health records", "records.json", PRETRAIN, _records),
    ("training", "Training curves", "history.tsv", PRETRAIN, _history),
    ("embeddings", "Embeddings", "embeddings.h5ad", "biolatent embed RUN", _embeddings),
    ("efficiency", "Label efficiency", "evaluate/LABEL/efficiency.tsv", EVALUATE, _efficiency),
    ("robustness", "Robustness: sites, site leakage, label noise", "robustness.tsv",
     "biolatent robustness RUN --label COLUMN", _robustness),
    ("anomaly", "Anomaly detection", "anomaly_metrics.tsv", "biolatent anomaly evaluate RUN --data PATH", _anomaly),
    ("registration", "Deformable registration", "registration_metrics.tsv",
     "biolatent register evaluate RUN --data COHORT_DIR", _registration),
    ("discovery", "Discovery: latent phenotypes, GWAS and heritability", "discover/summary.json",
     "biolatent discover RUN/embeddings.h5ad --genotypes PLINK_PREFIX|VCF --out RUN/discover", _discovery),
]


# left out, not "not run", when their file is absent
OPTIONAL_SECTIONS = frozenset({"discovery", "anomaly", "records", "robustness", "registration"})
# left out where the run does not have what they show (their file exists for every run)
APPLIES: dict[str, Callable[[Path], bool]] = {"pairing": _has_pairing}  # images paired with genetics
PRETRAINING_SECTIONS = frozenset({"training", "embeddings", "efficiency"})  # not part of an anomaly run


def _expanded(run_dir: Path):
    """SECTIONS with the label-efficiency entry repeated for every evaluated label (``evaluate/<label>/``)."""
    from biolatent.evaluate.efficiency import evaluated_labels

    for key, title, source, command, fill in SECTIONS:
        folders = evaluated_labels(run_dir) if key == "efficiency" else []
        transfers = evaluated_labels(run_dir, transfer=True) if key == "efficiency" else []
        if not folders:
            yield key, title, source, command, fill
        for folder in [*folders, *transfers]:
            label, data = folder.name, None
            # no or unreadable settings: the folder name stands for the label
            with contextlib.suppress(OSError, DataError):
                settings = read_json_object(folder / "evaluate.json")
                label, data = str(settings.get("label", label)), settings.get("data")
            if folder in transfers:  # RUN/transfer/<name>/evaluate/<label>/
                name = folder.parents[1].name
                yield (f"{key}-transfer-{name}-{folder.name}", f"{title}: {label}, transferred to {name}",
                       str((folder / "efficiency.tsv").relative_to(run_dir)),
                       command.replace("COLUMN", label).replace("evaluate RUN", f"evaluate RUN --data {data or name}"),
                       fill)
                continue
            yield (f"{key}-{folder.name}", f"{title}: {label}", str((folder / "efficiency.tsv").relative_to(run_dir)),
                   command.replace("COLUMN", label), fill)


def build_sections(run_dir: Path, say: Callable[[str], None] | None = None) -> list[Section]:
    """One :class:`Section` per run-directory file, in report order (one per evaluated label); with ``say``,
    a progress line with an ETA every few seconds."""
    sections = []
    expanded = list(_expanded(run_dir))
    progress = StepProgress(len(expanded), say, "report sections", every_s=3.0)
    for key, title, source, command, fill in expanded:
        section = _section(run_dir, key, title, source, command, fill)
        progress.step(f" {title}")
        if section is not None:
            sections.append(section)
    return sections


def _section(run_dir: Path, key: str, title: str, source: str, command: str, fill) -> Section | None:
    """One filled section; None where it does not apply to this run (optional and absent, or pretraining
    sections of an anomaly run)."""
    section = Section(key, title, source, command.replace("RUN", str(run_dir)))
    if key in OPTIONAL_SECTIONS and not (run_dir / source).is_file():
        return None
    if key in APPLIES and not APPLIES[key](run_dir):
        return None
    if key.split("-")[0] in PRETRAINING_SECTIONS and (run_dir / "anomaly.json").is_file():
        return None
    if key.split("-")[0] in PRETRAINING_SECTIONS - {"training"} and _is_registration_run(run_dir):
        return None  # a registration run has training curves but no embeddings
    if not (run_dir / source).is_file():
        section.status = "missing"
        section.message = f"{source} not found: this step was not run. Make it with `{section.command}`."
        return section
    try:
        fill(run_dir, section)
    except (DataError, OSError, ValueError, KeyError) as exc:
        section.status = "error"
        section.message = f"{source} could not be used: {' '.join(str(exc).split())}"
        section.figures.clear()
        section.tables.clear()
    return section


def build_report(run_dir: Path, say: Callable[[str], None] | None = None) -> Path:
    """Write ``run_dir/report.html`` (one self-contained file) atomically and return its path; ``say``
    receives progress lines."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"run directory not found: {run_dir}")
    return write_text(run_dir / "report.html", render(run_dir, build_sections(run_dir, say)))
