"""A deterministic, learnable, labelled corpus for demos and tests, with optional dirt and its ground truth.

Each class has its own vocabulary; every sentence also carries filler words shared by all classes
and neutral pseudo-words (a fixed vocabulary of ~4,000, Zipf-sampled), so a model must find the
class words among noise and no two documents share most of their words. A share of the documents
(``contrast``) are about their class *and not* another one ("Pasta, not stock."): the mirrored
document of the other class has the same words, so a bag of words cannot tell the two apart and
only word order can. ``tokenlake generate`` writes it as JSON Lines (``id``, ``text``, ``label``).

By default every document is clean. Optional rates add exact and near duplicates, PII (with
look-alike decoys that must survive masking), removable noise (markup, entities, control
characters, boilerplate lines), bad lines with the reject reason ingest gives them, skewed lengths
and files; then a ground-truth file ``<out>.truth.jsonl`` (one record per corpus line) is written
beside the corpus, for benchmarks of cleaning, dedup and PII masking::

    tokenlake generate --out data/dirty --docs 5000 --files 4 --skew 0.8 --dup-rate 0.05 \\
        --near-dup-rate 0.05 --pii-rate 0.1 --noise-rate 0.2 --bad-rate 0.02 --lang es
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

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


def _json_line(line: Line, text: str) -> bytes:
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
            line.raw = _json_line(
                line, add_noise(rng, line.sentences, line.noise, lang) if line.noise else render(line.sentences)
            )
    for copy in copies:
        if copy.kind == "duplicate_exact":  # the original's text, noise and all, under a new id
            copy.noise, copy.raw = copy.original.noise, _json_line(copy, json.loads(copy.original.raw)["text"])
    return sorted(lines + copies, key=lambda line: line.order)


def split_sizes(n: int, files: int, skew: float) -> list[int]:
    """Rows per file: even, or with ``skew`` (and more than one file) the first file holds that share."""
    if files == 1:
        return [n]
    first = round(skew * n) if skew > 0 else n // files + (n % files > 0)
    q, r = divmod(n - first, files - 1)
    return [first] + [q + (i < r) for i in range(files - 1)]


def truth_path(out: str | Path) -> Path:
    """``data/x.jsonl`` -> ``data/x.truth.jsonl``; ``data/corpus`` (a directory) -> ``data/corpus.truth.jsonl``."""
    out = Path(out)
    return out.with_name((out.stem if out.suffix == ".jsonl" else out.name) + ".truth.jsonl")


CONTRAST = 0.25
"""Default share of contrast documents: a bag of words tops out near 1 - CONTRAST / 2."""


def generate_corpus(
    out: str | Path,
    docs: int,
    seed: int = 0,
    contrast: float = CONTRAST,
    *,
    dup_rate: float = 0.0,
    near_dup_rate: float = 0.0,
    pii_rate: float = 0.0,
    noise_rate: float = 0.0,
    bad_rate: float = 0.0,
    skew: float = 0.0,
    files: int = 1,
    lang: str = "en",
    web_lengths: bool = False,
    group_field: str | None = None,
    group_skew: float = 0.3,
) -> Path:
    """Write ``docs`` labelled documents to ``out`` (JSON Lines; a directory of ``part-NNNNN.jsonl``
    with ``files`` > 1), a ``contrast`` share of them order-dependent; same arguments, same bytes.

    ``bad_rate`` of the ``docs`` lines are bad; ``pii_rate`` and ``noise_rate`` of the clean
    ones carry PII (and decoys) and noise; ``dup_rate * docs`` exact and ``near_dup_rate * docs``
    near copies of clean documents come on top, each after its original. With any of these or
    ``files`` > 1, the ground truth goes to ``truth_path(out)``. ``web_lengths``: document lengths
    like crawled pages (a long tail, mean over 2 KB) instead of short ones. ``group_field``: each
    document gets that field, its group (``GROUPS``), and ``group_skew`` of group ``b``'s labels
    are wrong (``group_of``). Returns ``out``.
    """
    rates = {"dup_rate": dup_rate, "near_dup_rate": near_dup_rate, "pii_rate": pii_rate}
    rates |= {"noise_rate": noise_rate, "bad_rate": bad_rate}
    _check(docs, {**rates, "contrast": contrast, "group_skew": group_skew}, skew, files, lang)
    if group_field in ("id", "text", "label"):
        raise ValueError(f"--group-field cannot be {group_field!r}: the documents have that field already")
    groups = (group_field, group_skew) if group_field else None
    out = Path(out)
    if not any(r > 0 for r in rates.values()) and skew == 0 and files == 1:  # clean: streamed, no truth
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("wb") as fh:
            for line in base_lines(random.Random(seed), docs, seed, contrast, LANGUAGES[lang], skew, web_lengths,
                                   groups):  # fmt: skip
                fh.write(_json_line(line, render(line.sentences)) + b"\n")
        truth_path(out).unlink(missing_ok=True)  # a stale truth file would describe another corpus
        return out
    lines = build_lines(docs, seed, contrast, {**rates, "skew": skew, "lang": lang, "web": web_lengths,
                                               "groups": groups})  # fmt: skip
    truth = _write_files(out, lines, files, skew)
    truth_path(out).write_text("".join(json.dumps(t, ensure_ascii=False) + "\n" for t in truth), encoding="utf-8")
    return out


def _check(docs: int, rates: dict[str, float], skew: float, files: int, lang: str) -> None:
    if docs < 0:
        raise ValueError(f"--docs must be >= 0, got {docs}")
    for name, rate in rates.items():
        if not 0 <= rate <= 1:
            raise ValueError(f"--{name.replace('_', '-')} must be in [0, 1], got {rate}")
    if not 0 <= skew < 1 or files < 1 or lang not in LANGUAGES:
        raise ValueError(
            f"need 0 <= --skew < 1, --files >= 1, --lang in {sorted(LANGUAGES)}; got {skew}, {files}, {lang}"
        )


def _write_files(out: Path, lines: list[Line], files: int, skew: float) -> list[dict]:
    """``out`` itself, or ``files`` part files in the directory ``out``; returns the truth records."""
    names = [out.name] if files == 1 else [f"part-{i:05d}.jsonl" for i in range(files)]
    folder = out.parent if files == 1 else out
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("part-*.jsonl") if files > 1 else []:
        stale.unlink()
    truth, start = [], 0
    for name, size in zip(names, split_sizes(len(lines), files, skew), strict=True):
        chunk = lines[start : start + size]
        (folder / name).write_bytes(b"".join(line.raw + b"\n" for line in chunk))
        truth += [line.truth(name, i) for i, line in enumerate(chunk)]
        start += size
    return truth
