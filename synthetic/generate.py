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
from pathlib import Path

from tokenlake.synthetic.documents import LANGUAGES, render
from tokenlake.synthetic.lines import Line, base_lines, build_lines, json_line


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
                fh.write(json_line(line, render(line.sentences)) + b"\n")
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
