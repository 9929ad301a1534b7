"""What the records encoder sees, summarised for the run directory (``RUN/records.json``) and the report.

From the packed tokens (``data.records``: int64 (N, 4, L) codes, age, segment, visit position) and the
vocabulary: patients, tokens and visits per patient, how many patients fill every token slot (their oldest events
were cut by ``data.max_length``), codes per coding system (the text before the first ``:``, e.g. ICD10, ATC,
LOINC), the most frequent codes, and the timelines of a few patients (seeded choice): per event its age, visit
and code, which the report draws as a patient timeline.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from biolatent.data.record_tokens import PAD_ID, SPECIAL_TOKENS

TOP_CODES = 15


def code_system(code: str) -> str:
    """``ICD10:I10`` -> ``ICD10``; a code without a system prefix -> ``other``."""
    return code.split(":", 1)[0] if ":" in code else "other"


def records_overview(tokens: torch.Tensor, vocab: Sequence[str], ids: Sequence[str], *, n_timelines: int = 6,
                     seed: int = 0) -> dict[str, Any]:
    """The summary described in the module docstring (JSON-ready)."""
    codes = tokens[:, 0].numpy()
    regular = codes >= len(SPECIAL_TOKENS)
    used = (codes != PAD_ID).sum(axis=1)
    visits = tokens[:, 3].numpy().max(axis=1)
    counts = Counter(int(c) for c in codes[regular])
    by_system: Counter[str] = Counter()
    for code_id, n in counts.items():
        by_system[code_system(vocab[code_id])] += n
    rng = np.random.default_rng(seed)
    with_events = np.flatnonzero(regular.any(axis=1))
    chosen = np.sort(rng.choice(with_events, min(n_timelines, with_events.size), replace=False))
    timelines = []
    for row in chosen:
        keep = regular[row]
        timelines.append({"id": str(ids[row]), "events": [
            [int(age), int(visit), vocab[int(code)]]
            for code, age, visit in zip(codes[row][keep], tokens[row, 1].numpy()[keep], tokens[row, 3].numpy()[keep],
                                        strict=True)]})
    return {
        "n_patients": int(codes.shape[0]),
        "vocab_size": len(vocab),
        "max_length": int(codes.shape[1]),
        "tokens_per_patient": {"median": float(np.median(used)), "max": int(used.max(initial=0))},
        "visits_per_patient": {"median": float(np.median(visits)), "max": int(visits.max(initial=0))},
        "n_without_events": int((~regular.any(axis=1)).sum()),
        "n_full": int((used == codes.shape[1]).sum()),
        "events_by_system": dict(by_system.most_common()),
        "top_codes": [[vocab[c], int(n)] for c, n in counts.most_common(TOP_CODES)],
        "timelines": timelines,
    }
