"""How well the ETL did against the generator's ground truth: PII masked per type (recall,
precision, decoys kept) and near duplicates found."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from tokenlake.etl.pii import PLACEHOLDER_PATTERNS, TYPES

_PLACEHOLDER_RE = {t: re.compile(p) for t, p in PLACEHOLDER_PATTERNS.items()}


def _present(value: str, text: str) -> bool:
    """``value`` is still in ``text`` as a whole word (a decoy is inserted as one)."""
    return re.search(rf"(?<!\S){re.escape(value)}(?!\S)", text) is not None


def pii_scores(pairs: Iterable[tuple[dict, str | None]]) -> dict[str, dict]:
    """Recall and precision per type of masked texts against ground truth (``synthetic.generate``'s
    truth records: ``pii`` and ``decoys`` lists of ``{"type", "value"}``).

    recall = planted values whose string is gone from the masked text / planted; precision = masks
    attributable to planted values (per document, min(placeholders, planted) of the type) / all
    placeholders of the type (1.0 where the denominator is 0). ``"decoys"`` holds ``planted`` and
    ``decoys_lost``: look-alikes no longer present as a word (they must all survive).
    """
    planted, gone, masked, hits = Counter(), Counter(), Counter(), Counter()
    decoys = lost = 0
    for truth, text in pairs:
        text = text or ""
        here = Counter(p["type"] for p in truth.get("pii") or [])
        planted.update(here)
        gone.update(p["type"] for p in truth.get("pii") or [] if p["value"] not in text)
        for t in TYPES:
            n = len(_PLACEHOLDER_RE[t].findall(text))
            masked[t] += n
            hits[t] += min(n, here[t])
        for d in truth.get("decoys") or []:
            decoys += 1
            lost += not _present(d["value"], text)
    scores: dict[str, dict] = {
        t: {
            "recall": gone[t] / planted[t] if planted[t] else 1.0,
            "precision": hits[t] / masked[t] if masked[t] else 1.0,
            "planted": planted[t],
            "masked": masked[t],
        }
        for t in TYPES
    }
    scores["decoys"] = {"planted": decoys, "decoys_lost": lost}
    return scores


def recall_precision(marked: DataFrame) -> dict[str, float]:
    """Score ``near_dup_of`` against ``truth_cluster``: a marked row is right when its keeper is in
    its truth cluster; recall divides by sum(cluster size - 1), precision by the marked rows."""
    keepers = marked.select(F.col("id").alias("near_dup_of"), F.col("truth_cluster").alias("keeper_cluster"))
    hits = marked.where(F.col("near_dup_of").isNotNull()).join(keepers, "near_dup_of", "left")
    got = hits.agg(F.count("*").alias("marked"), F.sum((F.col("truth_cluster") == F.col("keeper_cluster")).cast("int")))
    n_marked, tp = got.first()
    rows, clusters = marked.agg(F.count("*"), F.countDistinct("truth_cluster")).first()
    expected = rows - clusters
    return {
        "recall": (tp or 0) / expected if expected else 1.0,
        "precision": (tp or 0) / n_marked if n_marked else 1.0,
        "marked": n_marked,
        "expected": expected,
    }
