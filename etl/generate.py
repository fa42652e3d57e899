"""A deterministic, learnable, labelled corpus for demos and tests.

Each class has its own vocabulary; every document also carries filler words shared by all
classes, so a model must find the class words among noise. A share of the documents (``contrast``)
are about their class *and not* another one ("Pasta, not stock."): the mirrored document of the
other class has the same words, so a bag of words cannot tell the two apart and only word order
can. ``tokenlake generate`` writes it as JSON Lines (``id``, ``text``, ``label``).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

CLASSES: dict[str, list[str]] = {
    "sports": "goal match team coach league striker referee season stadium score keeper tournament".split(),
    "science": "atom cell theory experiment molecule energy physics biology lab hypothesis quantum data".split(),
    "food": "recipe bread cheese garlic oven sauce flavor kitchen dessert pasta spice soup".split(),
    "finance": "market stock bank loan interest budget invest profit dividend bond credit tax".split(),
}
FILLER = (
    "the a of and to in is was it for on with as at by this that from or an be are were "
    "very really quite today yesterday people many some time year week about after before"
).split()


def make_document(rng: random.Random, label: str) -> str:
    """One document: a few sentences mixing class words (about a third) with shared filler."""
    words = CLASSES[label]
    sentences = []
    for _ in range(rng.randint(1, 4)):
        n = rng.randint(6, 18)
        sentence = [rng.choice(words) if rng.random() < 0.35 else rng.choice(FILLER) for _ in range(n)]
        sentence[rng.randrange(n)] = rng.choice(words)  # at least one class word per sentence
        sentence[0] = sentence[0].capitalize()
        sentences.append(" ".join(sentence) + ".")
    return " ".join(sentences)


def make_contrast_document(rng: random.Random, label: str, other: str) -> str:
    """One document that opens "<label word>, not <other word>." or "Not <other word> but <label
    word>." and goes on in filler: its bag of words is as likely to come from the mirrored document
    (``other`` and not ``label``); only the order says which topic is negated."""
    own, negated = rng.choice(CLASSES[label]), rng.choice(CLASSES[other])
    opening = f"{own.capitalize()}, not {negated}." if rng.random() < 0.5 else f"Not {negated} but {own}."
    sentences = [opening]
    for _ in range(rng.randint(1, 3)):  # filler after it: two such documents are (almost) never the same
        filler = [rng.choice(FILLER) for _ in range(rng.randint(5, 14))]
        sentences.append(" ".join(filler).capitalize() + ".")
    return " ".join(sentences)


CONTRAST = 0.25
"""Default share of contrast documents: a bag of words tops out near 1 - CONTRAST / 2."""


def generate_corpus(out: str | Path, docs: int, seed: int = 0, contrast: float = CONTRAST) -> Path:
    """Write ``docs`` labelled documents to ``out`` (JSON Lines), a ``contrast`` share of them
    order-dependent; same arguments, same bytes."""
    if docs < 0:
        raise ValueError(f"--docs must be >= 0, got {docs}")
    if not 0 <= contrast <= 1:
        raise ValueError(f"--contrast must be in [0, 1], got {contrast}")
    rng = random.Random(seed)
    labels = sorted(CLASSES)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fh:
        for i in range(docs):
            label = labels[rng.randrange(len(labels))]
            if rng.random() < contrast:
                other = rng.choice([k for k in labels if k != label])
                text = make_contrast_document(rng, label, other)
            else:
                text = make_document(rng, label)
            record = {"id": f"doc-{seed}-{i:08d}", "text": text, "label": label}
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    return out
