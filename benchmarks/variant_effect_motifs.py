"""Zero-shot variant effects on a motif truth: do the LLR and embedding scores separate substitutions that destroy a
TF motif from substitutions elsewhere in real bound sequences (Oct4 / MafK ChIP-seq peaks, registry oct4-mafk)?

1. Sequences: the registry's 7,997 peaks of 200 bp. A seeded fifth of the training peaks of each factor plus every
   test peak is held out; an ``nt`` (or ``bert``) encoder is pre-trained with ``mlm`` on the other peaks (no labels).
2. Truth, in the held-out peaks of each factor: every exact consensus match of its motif (Oct4 octamer
   ATGCAAAT / ATTTGCAT; MafK MARE half-site + core TGCTGA(C|G)TCA / TGA(C|G)TCAGCA). Destroying variants: a
   substitution at a fixed (non-degenerate) motif base (up to ``--per-motif`` per peak). Neutral variants: the same
   number of substitutions in the same peaks at least 10 bases from any match, creating no new match.
3. Scores (``biolatent variant-effect``): -score_llr (the alternative less likely than the reference) and
   score_embedding; baselines: consensus scan (matches lost; the truth's own definition, so a ceiling, not a
   competitor) and an 8-mer count model of the pre-training peaks (sum over the 8-mers holding the base of
   log f(ref 8-mer) - log f(alt 8-mer): a non-neural model learnt from the same unlabelled sequences).
4. AUROC per factor with a 95% interval from a bootstrap over peaks.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import RESULTS_DIR, host_info, markdown_table, write_results

MOTIFS = {"oct4": ["ATGCAAAT", "ATTTGCAT"], "mafk": ["TGCTGA[CG]TCA", "TGA[CG]TCAGCA"]}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="nt", choices=["nt", "bert"])
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup-epochs", type=int, default=0)
    parser.add_argument("--holdout-fraction", type=float, default=0.2)
    parser.add_argument("--per-motif", type=int, default=2, help="destroying variants per motif match")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("runs/variant_effect_motifs"))
    return parser.parse_args(argv)


def motif_spans(sequence: str, tf: str) -> list[tuple[int, int, str]]:
    """(start, end, matched pattern) of every consensus match (regex patterns; [CG] is the degenerate base)."""
    out = []
    for pattern in MOTIFS[tf]:
        for match in re.finditer(f"(?=({pattern}))", sequence):
            out.append((match.start(), match.start() + len(match.group(1)), pattern))
    return out


def fixed_positions(pattern: str) -> list[int]:
    """Offsets of the non-degenerate bases of a pattern like TGCTGA[CG]TCA."""
    tokens = re.findall(r"\[[ACGT]+\]|[ACGT]", pattern)
    return [offset for offset, token in enumerate(tokens) if len(token) == 1]


def n_matches(sequence: str, tf: str) -> int:
    return len(motif_spans(sequence, tf))


def build_truth(peaks: dict[str, str], tf: str, per_motif: int, rng: np.random.Generator) -> list[dict]:
    rows = []
    for peak, seq in peaks.items():
        spans = motif_spans(seq, tf)
        if not spans:
            continue
        destroying = []
        for start, _, pattern in spans:
            offsets = rng.permutation(fixed_positions(pattern))[:per_motif]
            for off in offsets:
                pos0 = start + int(off)
                alt = rng.choice([b for b in "ACGT" if b != seq[pos0]])
                changed = seq[:pos0] + alt + seq[pos0 + 1 :]
                if n_matches(changed, tf) < len(spans):
                    destroying.append((pos0, alt))
        near = np.zeros(len(seq), bool)
        for start, end, _ in spans:
            near[max(0, start - 10) : end + 10] = True
        candidates = [i for i in np.flatnonzero(~near) if seq[i] in "ACGT"]
        neutral = []
        for i in rng.permutation(candidates):
            alt = rng.choice([b for b in "ACGT" if b != seq[i]])
            if n_matches(seq[:i] + alt + seq[i + 1 :], tf) == len(spans):
                neutral.append((int(i), alt))
            if len(neutral) == len(destroying):
                break
        destroying = destroying[: len(neutral)]
        for label, chosen in ((1, destroying), (0, neutral)):
            for pos0, alt in chosen:
                rows.append({"peak": peak, "pos": pos0 + 1, "ref": seq[pos0], "alt": str(alt), "destroys": label})
    return rows


def kmer_model(sequences: list[str], k: int = 8):
    from collections import Counter

    counts = Counter(s[i : i + k] for s in sequences for i in range(len(s) - k + 1))
    total = sum(counts.values())
    return lambda kmer: np.log((counts.get(kmer, 0) + 0.5) / total)


def kmer_score(logf, seq: str, pos0: int, alt: str, k: int = 8) -> float:
    changed = seq[:pos0] + alt + seq[pos0 + 1 :]
    starts = range(max(0, pos0 - k + 1), min(pos0, len(seq) - k) + 1)
    return float(sum(logf(seq[s : s + k]) - logf(changed[s : s + k]) for s in starts))


def auroc_with_interval(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray, n_boot: int,
                        rng: np.random.Generator) -> tuple[float, float, float]:
    from sklearn.metrics import roc_auc_score

    ok = np.isfinite(scores)
    labels, scores, groups = labels[ok], scores[ok], groups[ok]
    point = float(roc_auc_score(labels, scores))
    unique = np.unique(groups)
    index = {g: np.flatnonzero(groups == g) for g in unique}
    values = []
    for _ in range(n_boot):
        rows = np.concatenate([index[g] for g in rng.choice(unique, size=len(unique))])
        if len(np.unique(labels[rows])) == 2:
            values.append(roc_auc_score(labels[rows], scores[rows]))
    low, high = np.percentile(values, [2.5, 97.5])
    return point, float(low), float(high)


def main(argv: list[str] | None = None) -> None:
    import pandas as pd

    from biolatent.build import load_config
    from biolatent.datasets import fetch
    from biolatent.io.fasta import read_fasta, write_fasta
    from biolatent.workflows.pretrain import pretrain
    from biolatent.workflows.variant_effect import variant_effect_run

    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)
    folder = fetch("oct4-mafk")
    meta = pd.read_csv(folder / "meta.tsv", sep="\t").set_index("id")
    sequences = dict(read_fasta(folder / "sequences.fa"))
    held = set(meta.index[meta.split == "test"])
    for tf in MOTIFS:
        train_ids = meta.index[(meta.split == "train") & (meta.tf == tf)].to_numpy()
        held |= set(rng.choice(train_ids, size=int(args.holdout_fraction * len(train_ids)), replace=False))
    pretrain_ids = [i for i in meta.index if i not in held]
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    write_fasta(work / "pretrain.fa", [(i, sequences[i]) for i in pretrain_ids])

    run = work / f"run-{args.model}-e{args.epochs}"
    started = time.perf_counter()
    if not (run / "model.safetensors").is_file():
        config = load_config({
            "data": {"modality": "dna", "path": str((work / "pretrain.fa").resolve()), "kmer": 6},
            "method": {"name": "mlm"},
            "model": {"name": args.model, "hidden_size": args.hidden_size, "layers": args.layers,
                      "heads": max(2, args.hidden_size // 32), "intermediate_size": 4 * args.hidden_size},
            "train": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
                      "warmup_epochs": args.warmup_epochs, "seed": args.seed, "accelerator": "cpu"},
        })
        metrics = pretrain(config, run, progress=False, say=print)
    else:
        metrics = {}
    train_seconds = time.perf_counter() - started

    logf = kmer_model([sequences[i] for i in pretrain_ids])
    rows, payload_rows = [], []
    for tf in MOTIFS:
        peaks = {i: sequences[i] for i in sorted(held) if meta.tf[i] == tf}
        truth = pd.DataFrame(build_truth(peaks, tf, args.per_motif, rng))
        ref_fa = work / f"{tf}_heldout.fa"
        write_fasta(ref_fa, list(peaks.items()))
        vcf = work / f"{tf}_truth.vcf"
        lines = ["##fileformat=VCFv4.2", "#CHROM\tPOS\tID\tREF\tALT"]
        lines += [f"{r.peak}\t{r.pos}\t{r.destroys}\t{r.ref}\t{r.alt}" for r in truth.itertuples()]
        vcf.write_text("\n".join(lines) + "\n")
        out = work / f"scores-{args.model}-e{args.epochs}-{tf}"
        if out.exists():
            import shutil

            shutil.rmtree(out)
        variant_effect_run(run, ref_fa, out, variants_path=vcf, say=lambda _: None)
        scored = pd.read_csv(out / "variant_effects.tsv", sep="\t")
        labels = truth.destroys.to_numpy()
        groups = truth.peak.to_numpy()
        scan = np.array([n_matches(peaks[r.peak], tf) - n_matches(
            peaks[r.peak][: r.pos - 1] + r.alt + peaks[r.peak][r.pos :], tf) for r in truth.itertuples()], float)
        kmer = np.array([kmer_score(logf, peaks[r.peak], r.pos - 1, r.alt) for r in truth.itertuples()])
        for name, values in (("variant-effect -score_llr", -scored.score_llr.to_numpy()),
                             ("variant-effect score_embedding", scored.score_embedding.to_numpy()),
                             ("8-mer count model (pre-training peaks)", kmer),
                             ("consensus motif scan (defines the truth: ceiling)", scan)):
            auc, low, high = auroc_with_interval(labels, values, groups, args.bootstrap, rng)
            row = {"factor": tf, "score": name, "auroc": auc, "ci_low": low, "ci_high": high,
                   "n_destroying": int(labels.sum()), "n_neutral": int((1 - labels).sum()),
                   "n_peaks": int(truth.peak.nunique())}
            rows.append(row)
            payload_rows.append(row)
        print(markdown_table(rows[-4:], ["factor", "score", "auroc", "ci_low", "ci_high", "n_destroying",
                                         "n_neutral", "n_peaks"]))
    columns = ["factor", "score", "auroc", "ci_low", "ci_high", "n_destroying", "n_neutral", "n_peaks"]
    final_loss = metrics.get("final_loss", metrics.get("final_loss_epoch"))
    text = (f"# Zero-shot variant effects on the Oct4 / MafK motif truth ({args.model}, CPU)\n\n"
            f"mlm pre-training of `{args.model}` (hidden {args.hidden_size}, {args.layers} layers) on "
            f"{len(pretrain_ids)} peaks for {args.epochs} epochs ({train_seconds / 60:.1f} min); truth in "
            f"{len(held)} held-out peaks. AUROC of destroying vs neutral substitutions, 95% interval from a "
            f"bootstrap over peaks.\n\n" + markdown_table(rows, columns) + "\n")
    write_results(RESULTS_DIR, f"variant_effect_motifs-{args.model}-e{args.epochs}-cpu",
                  {"rows": payload_rows, "n_pretrain": len(pretrain_ids), "n_heldout": len(held),
                   "train_seconds": train_seconds, "final_loss": final_loss, "host": host_info()}, text, args=args)
    print(text)


if __name__ == "__main__":
    main()
