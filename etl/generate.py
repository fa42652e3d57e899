"""A deterministic, learnable, labelled corpus for demos and tests.

Each class has its own vocabulary; every document also carries filler words shared by all
classes, so a model must find the class words among noise. ``tokenlake generate`` writes it as
JSON Lines (``id``, ``text``, ``label``).
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


def generate_corpus(out: str | Path, docs: int, seed: int = 0) -> Path:
    """Write ``docs`` labelled documents to ``out`` (JSON Lines); same seed, same bytes."""
    if docs < 0:
        raise ValueError(f"--docs must be >= 0, got {docs}")
    rng = random.Random(seed)
    labels = sorted(CLASSES)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fh:
        for i in range(docs):
            label = labels[rng.randrange(len(labels))]
            record = {"id": f"doc-{seed}-{i:08d}", "text": make_document(rng, label), "label": label}
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    return out
