"""A corpus of documents and their near-duplicate copies (1-10 % of words inserted, deleted or
substituted; Jaccard >= 0.8 to the original), each row with its true cluster, for scoring
near-duplicate detection at any size (``synthetic.scores.recall_precision``)."""

from __future__ import annotations

import random

SCHEMA = "id string, text string, truth_cluster long"


def _pseudo_words(n: int, rng: random.Random) -> list[str]:
    """``n`` distinct lowercase words of 2-4 consonant-vowel syllables."""
    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    out: dict[str, None] = {}
    while len(out) < n:
        out["".join(rng.choices(syllables, k=rng.randint(2, 4)))] = None
    return list(out)


def _edit(words: list[str], vocab: list[str], weights: list[float], rng: random.Random) -> list[str]:
    copy = list(words)
    for _ in range(max(1, round(rng.uniform(0.01, 0.10) * len(words)))):
        op, i = rng.choice(("sub", "ins", "del")), rng.randrange(len(copy))
        if op == "del" and len(copy) > 1:
            del copy[i]
        else:
            new = rng.choices(vocab, cum_weights=weights)[0]
            copy[i : i + (op == "sub")] = [new]
    return copy


def near_dup_corpus(n_base: int, n_copies: int, *, seed: int = 0, vocab_size: int = 3000) -> list[tuple]:
    """Rows (id, text, truth_cluster): ``n_base`` documents, each its own cluster, and ``n_copies``
    near-duplicates of randomly chosen ones (in their original's cluster). Ids are random hex, so
    a copy is as likely as its original to have the smaller id."""
    rng = random.Random(seed)
    vocab = _pseudo_words(vocab_size, rng)
    weights, total = [], 0.0
    for rank in range(1, vocab_size + 1):  # Zipf, exponent 1
        total += 1.0 / rank
        weights.append(total)
    ids: set[str] = set()

    def new_id() -> str:
        while (i := f"{rng.getrandbits(48):012x}") in ids:
            pass
        ids.add(i)
        return i

    base = [rng.choices(vocab, cum_weights=weights, k=rng.randint(20, 60)) for _ in range(n_base)]
    rows = [(new_id(), " ".join(words), c) for c, words in enumerate(base)]
    for _ in range(n_copies):
        c = rng.randrange(n_base)
        original = set(base[c])
        while True:
            copy = _edit(base[c], vocab, weights, rng)
            if len(original & set(copy)) / len(original | set(copy)) >= 0.8:
                break
        rows.append((new_id(), " ".join(copy).capitalize() + ".", c))  # case and punctuation differ too
    rng.shuffle(rows)
    return rows
