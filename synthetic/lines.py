"""The corpus as lines being built, each with its ground truth: base documents (``documents``),
then, drawn from the same seeded generator in a fixed order, bad lines, planted PII and decoys,
exact and near copies and noise (``dirt``). ``generate`` writes them to files.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

from tokenlake.etl.ingest import BAD_LABEL_TYPE, MALFORMED_JSON, MISSING_LABEL
from tokenlake.synthetic.dirt import (
    BAD_KINDS,
    DECOY_TYPES,
    NOISE_KINDS,
    add_noise,
    bad_line,
    decoy_value,
    insert_words,
    near_duplicate,
    pii_value,
)
from tokenlake.synthetic.documents import (
    LANGUAGES,
    Language,
    contrast_sentences,
    document_sentences,
    length_scale,
    render,
)


@dataclass(eq=False)
class Line:
    """One corpus line being built, and its ground truth."""

    id: str
    label: str
    kind: str = "clean"
    sentences: list[list[str]] = field(default_factory=list)
    pii: list[dict] = field(default_factory=list)
    decoys: list[dict] = field(default_factory=list)
    noise: list[str] = field(default_factory=list)
    reason: str | None = None
    duplicate_of: str | None = None
    raw: bytes = b""
    order: tuple[int, int] = (0, 0)
    original: Line | None = None
    meta: dict = field(default_factory=dict)
    """Extra fields of the JSON line (``--group-field``)."""

    def truth(self, file: str, line: int) -> dict:
        bad = self.kind == "bad"
        label = self.label if not bad or self.reason not in (BAD_LABEL_TYPE, MISSING_LABEL) else None
        return {
            "file": file,
            "line": line,
            "id": None if self.reason == MALFORMED_JSON else self.id,
            "kind": self.kind,
            "reason": self.reason,
            "duplicate_of": self.duplicate_of,
            "label": label,
            "clean_text": None if bad else render(self.sentences),
            "pii": self.pii,
            "decoys": self.decoys,
            "noise": self.noise,
        }


def _base(
    rng: random.Random,
    i: int,
    seed: int,
    labels: list[str],
    lang: Language,
    contrast: float,
    skew: float,
    web: bool = False,
) -> Line:
    label = labels[rng.randrange(len(labels))]
    scale = length_scale(rng, skew, web)
    if rng.random() < contrast:
        other = rng.choice([k for k in labels if k != label])
        sentences = contrast_sentences(rng, label, other, lang, scale)
    else:
        sentences = document_sentences(rng, label, lang, scale)
    return Line(f"doc-{seed}-{i:08d}", label, sentences=sentences, order=(i, 0))


def base_lines(
    rng: random.Random,
    docs: int,
    seed: int,
    contrast: float,
    lang: Language,
    skew: float,
    web: bool = False,
    groups: tuple[str, float] | None = None,
):
    """The ``docs`` base documents, in order (the first draws of ``rng``: a clean corpus streams them);
    with ``groups`` (field name, skew), each in a group (``group_of``)."""
    labels = sorted(lang.classes)
    grouping = random.Random(f"groups-{seed}")  # its own draws: the corpus is the same with or without groups
    for i in range(docs):
        line = _base(rng, i, seed, labels, lang, contrast, skew, web)
        if groups:
            group_of(grouping, line, labels, *groups)
        yield line


GROUPS = (("a", 0.70), ("b", 0.25), ("c", 0.05))
"""``--group-field``'s groups and their shares; ``b`` is the one ``--group-skew`` hurts, ``c`` is
small enough to be merged into ``other`` by a fairness report."""


def group_of(rng: random.Random, line: Line, labels: list[str], name: str, skew: float) -> None:
    """Put ``line`` in a group (field ``name`` of its JSON line); in group ``b``, a ``skew`` share
    of the labels is replaced by another label, so a model is that much less accurate there."""
    draw, group = rng.random(), GROUPS[-1][0]
    for candidate, share in GROUPS:
        if draw < share:
            group = candidate
            break
        draw -= share
    line.meta = {name: group}
    if group == "b" and rng.random() < skew:
        line.label = rng.choice([k for k in labels if k != line.label])


def _plant(rng: random.Random, line: Line, lang: str, pii: bool) -> None:
    """1-3 PII values (if ``pii``) and 1-2 decoys, each as its own word."""
    kinds = [rng.choice(LANGUAGES[lang].pii_types) for _ in range(rng.randint(1, 3) if pii else 0)]
    line.pii = [{"type": k, "value": pii_value(rng, k, lang)} for k in kinds]
    decoy_kinds = [rng.choice(DECOY_TYPES) for _ in range(rng.randint(1, 2))]
    line.decoys = [{"type": k, "value": decoy_value(rng, k, lang)} for k in decoy_kinds]
    values = [v["value"] for v in line.pii + line.decoys]
    rng.shuffle(values)
    insert_words(rng, line.sentences, values, LANGUAGES[lang])


def _count(rate: float, n: int) -> int:
    return round(rate * n)


def _mark_bad(rng: random.Random, lines: list[Line], rate: float) -> None:
    """``rate`` of the lines become bad, the reasons in turn (so each appears as often as the others)."""
    bad = sorted(rng.sample(range(len(lines)), _count(rate, len(lines))))
    rng.shuffle(bad)
    for j, i in enumerate(bad):
        lines[i].kind, lines[i].reason = "bad", BAD_KINDS[j % len(BAD_KINDS)]


def _plant_all(rng: random.Random, clean: list[Line], rate: float, lang: str) -> None:
    """PII (and decoys) in ``rate`` of the clean lines; decoys alone in half as many others."""
    with_pii = rng.sample(clean, _count(rate, len(clean)))
    chosen = {id(line) for line in with_pii}
    rest = [line for line in clean if id(line) not in chosen]
    for line in with_pii:
        _plant(rng, line, lang, pii=True)
    for line in rng.sample(rest, min(len(rest), len(with_pii) // 2)):
        _plant(rng, line, lang, pii=False)


def _copies(rng: random.Random, clean: list[Line], docs: int, seed: int, opts: dict) -> list[Line]:
    """Exact and near copies of clean lines, new ids, each placed somewhere after its original."""
    extras = ["duplicate_exact"] * _count(opts["dup_rate"], docs)
    extras += ["duplicate_near"] * _count(opts["near_dup_rate"], docs)
    rng.shuffle(extras)
    copies = []
    for k, kind in enumerate(extras if clean else []):
        original = rng.choice(clean)
        copy = Line(f"doc-{seed}-{docs + k:08d}", original.label, kind, pii=original.pii, decoys=original.decoys)
        copy.duplicate_of, copy.original = original.id, original
        copy.order = (rng.randint(original.order[0], docs - 1), k + 1)
        near = kind == "duplicate_near"
        copy.sentences = (
            near_duplicate(rng, original.sentences, LANGUAGES[opts["lang"]]) if near else original.sentences
        )
        copies.append(copy)
    return copies


def json_line(line: Line, text: str) -> bytes:
    return json.dumps({"id": line.id, "text": text, "label": line.label, **line.meta}, ensure_ascii=False).encode()


def build_lines(docs: int, seed: int, contrast: float, opts: dict) -> list[Line]:
    """Every corpus line in order, with its ground truth (``opts``: the rates, skew and lang)."""
    rng, lang = random.Random(seed), opts["lang"]
    lines = list(base_lines(rng, docs, seed, contrast, LANGUAGES[lang], opts["skew"], opts.get("web", False),
                            opts.get("groups")))  # fmt: skip
    _mark_bad(rng, lines, opts["bad_rate"])
    clean = [line for line in lines if line.kind == "clean"]
    _plant_all(rng, clean, opts["pii_rate"], lang)
    copies = _copies(rng, clean, docs, seed, opts)
    own_text = clean + [c for c in copies if c.kind == "duplicate_near"]
    for line in rng.sample(own_text, _count(opts["noise_rate"], len(own_text))):
        line.noise = sorted(rng.sample(NOISE_KINDS, rng.randint(1, 3)), key=NOISE_KINDS.index)
    for line in lines + copies:
        if line.kind == "bad":
            line.raw = bad_line(rng, line.reason, line.id, render(line.sentences), line.label)
        elif line.kind != "duplicate_exact":
            line.raw = json_line(
                line, add_noise(rng, line.sentences, line.noise, lang) if line.noise else render(line.sentences)
            )
    for copy in copies:
        if copy.kind == "duplicate_exact":  # the original's text, noise and all, under a new id
            copy.noise, copy.raw = copy.original.noise, json_line(copy, json.loads(copy.original.raw)["text"])
    return sorted(lines + copies, key=lambda line: line.order)
