"""Zero-shot variant-effect scores from a masked DNA language model (``bert`` or ``nt`` trained with ``mlm``).

Masked marginal log-likelihood ratio (Meier et al. 2021, NeurIPS, "Language models enable zero-shot prediction of
the effects of mutations on protein function", the score of ESM-1v; used for DNA by the Nucleotide Transformer,
Dalla-Torre et al. 2023): in the reference window around the variant, the tokens that hold a changed base are
masked (every overlapping k-mer that covers it for ``bert``, the one 6-mer for ``nt``), and

    score_llr = sum over those tokens j of  log p(alt token_j | masked ref) - log p(ref token_j | masked ref)

where the alt tokens are the tokens of the same window with the alternative allele. Negative: the model finds the
alternative allele less likely than the reference. Defined for substitutions (REF and ALT of one length, A/C/G/T
only) whose tokenisation keeps its boundaries: NaN otherwise (indels, N, symbolic alleles).

Embedding distance: ``score_embedding = || embed(ref window) - embed(alt window) ||_2`` with the run's pooled
embedding; for indels the alt window keeps the left flank and the window length (right flank refilled from
the reference).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from biolatent.data.sequence import MASK_ID, encode_bases, pad_bases
from biolatent.progress import StepProgress


def window_start(pos0: int, contig_length: int, width: int) -> int:
    """Start of the ``width``-base window centred on 0-based ``pos0``, moved inside the contig."""
    return max(0, min(pos0 - width // 2, contig_length - width))


def alt_window(contig: str, start: int, width: int, pos0: int, ref: str, alt: str) -> str:
    """The window with ``alt`` in place of ``ref`` at ``pos0``, the same length (right flank refilled)."""
    offset = pos0 - start
    right_needed = max(0, width - offset - len(alt))
    right = contig[pos0 + len(ref) : pos0 + len(ref) + right_needed]
    return (contig[start:pos0] + alt + right)[:width].upper()


def _bases(windows: Sequence[str]) -> torch.Tensor:
    return pad_bases([encode_bases(w) for w in windows], max(len(w) for w in windows))


def _valid(starts: torch.Tensor, sizes: torch.Tensor) -> tuple[list[int], list[int]]:
    keep = sizes > 0
    return starts[keep].tolist(), sizes[keep].tolist()


@torch.no_grad()
def llr_scores(method: torch.nn.Module, windows: Sequence[str], offsets: Sequence[int], refs: Sequence[str],
               alts: Sequence[str], batch_size: int = 64, say: Callable[[str], None] | None = None) -> np.ndarray:
    """Masked marginal LLR of every variant (``alts[i]`` for ``refs[i]`` at ``offsets[i]`` of ``windows[i]``).
    Variants at the same site (window, offset, REF) share one forward pass."""
    encoder = method.encoder
    device = next(method.parameters()).device
    scores = np.full(len(windows), np.nan)
    sites: dict[tuple[str, int, int], list[int]] = {}
    for i, (window, offset, ref, alt) in enumerate(zip(windows, offsets, refs, alts, strict=True)):
        if len(ref) == len(alt) and set(ref + alt) <= set("ACGT") and offset + len(ref) <= len(window):
            sites.setdefault((window, offset, len(ref)), []).append(i)
    keys = list(sites)
    progress = StepProgress(len(range(0, len(keys), batch_size)), say, "batches of variant sites scored")
    for first in range(0, len(keys), batch_size):
        batch = keys[first : first + batch_size]
        bases = _bases([window for window, _, _ in batch])
        tokens, mask, starts, sizes = encoder.token_spans(bases)
        lo = torch.tensor([offset for _, offset, _ in batch])[:, None]
        hi = lo + torch.tensor([length for _, _, length in batch])[:, None]
        cover = (sizes > 0) & (starts < hi) & (starts + sizes > lo)
        masked = tokens.masked_fill(cover, MASK_ID)
        logp = torch.log_softmax(method.logits(masked.to(device), mask.to(device)).float(), dim=-1).cpu()
        for row, key in enumerate(batch):
            window, offset, length = key
            covered = cover[row].nonzero().flatten()
            ref_layout = _valid(starts[row], sizes[row])
            ref_ids = tokens[row, covered]
            for i in sites[key]:
                changed = window[:offset] + alts[i] + window[offset + length :]
                alt_tokens, _, alt_starts, alt_sizes = encoder.token_spans(_bases([changed]))
                if _valid(alt_starts[0], alt_sizes[0]) != ref_layout:
                    continue  # an N changes the token boundaries: no token-wise ratio
                alt_ids = alt_tokens[0, covered]
                scores[i] = float((logp[row, covered, alt_ids] - logp[row, covered, ref_ids]).sum())
        progress.step()
    return scores


@torch.no_grad()
def embed_windows(method: torch.nn.Module, windows: Sequence[str], batch_size: int = 64) -> np.ndarray:
    device = next(method.parameters()).device
    out = [method.embed(_bases(windows[i : i + batch_size]).to(device)).float().cpu()
           for i in range(0, len(windows), batch_size)]
    return torch.cat(out).numpy()


def embedding_distances(method: torch.nn.Module, ref_windows: Sequence[str], alt_windows: Sequence[str],
                        batch_size: int = 64) -> np.ndarray:
    """|| embed(ref) - embed(alt) ||_2 per variant (each distinct reference window embedded once)."""
    unique = list(dict.fromkeys(ref_windows))
    ref = embed_windows(method, unique, batch_size)
    index = {w: i for i, w in enumerate(unique)}
    alt = embed_windows(method, alt_windows, batch_size)
    return np.linalg.norm(ref[[index[w] for w in ref_windows]] - alt, axis=1)
