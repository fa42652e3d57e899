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

import ipaddress
import itertools
import json
import math
import random
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from tokenlake.etl.ingest import BAD_LABEL_TYPE, MALFORMED_JSON, MISSING_LABEL, MISSING_TEXT, TEXT_NOT_STRING
from tokenlake.etl.pii import DNI_LETTERS, luhn_valid
from tokenlake.etl.sources import INVALID_UTF8

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
CLASSES_ES: dict[str, list[str]] = {
    "sports": "gol partido equipo entrenador liga delantero árbitro temporada estadio marcador portero torneo".split(),
    "science": (
        "átomo célula teoría experimento molécula energía física biología laboratorio hipótesis cuántica datos"
    ).split(),
    "food": "receta pan queso ajo horno salsa sabor cocina postre pasta especia sopa".split(),
    "finance": (
        "mercado acción banco préstamo interés presupuesto invertir beneficio dividendo bono crédito impuesto"
    ).split(),
}
FILLER_ES = (
    "el la los las de y a en que es fue por con para como un una este esta muy hoy ayer gente "
    "muchos algunos tiempo año semana sobre después antes también pero del al se su"
).split()
CLASS_SHARE, PSEUDO_SHARE = 0.35, 0.30
"""Per word: a class word, else a pseudo-word, else filler."""


def pseudo_words(n: int, syllables: list[str], reserved: set[str], seed: int) -> list[str]:
    """``n`` distinct letter-only words of 2-4 syllables, none of them ``reserved``; fixed by ``seed``."""
    rng, words, seen = random.Random(seed), [], set(reserved)
    while len(words) < n:
        word = "".join(rng.choice(syllables) for _ in range(rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


@dataclass(frozen=True)
class Language:
    """The words of one language: class vocabularies, filler, pseudo-words, the negation phrase."""

    classes: dict[str, list[str]]
    filler: list[str]
    negation: str
    but: str
    syllables: str
    pii_types: tuple[str, ...]

    @cached_property
    def pseudo(self) -> list[str]:
        """4,000 pseudo-words, fixed for the language, none a class word, filler or boilerplate."""
        reserved = {w for ws in self.classes.values() for w in ws} | set(self.filler) | {self.negation, self.but}
        reserved |= {"lorem", "ipsum", "cookies", "javascript"}
        return pseudo_words(4000, self.syllables.split(), reserved, seed=len(self.syllables))

    @cached_property
    def cum_weights(self) -> list[float]:
        return list(itertools.accumulate(1 / (rank + 3) for rank in range(len(self.pseudo))))  # Zipf-Mandelbrot

    def neutral(self, rng: random.Random) -> str:
        """A filler word or a pseudo-word, in their per-word proportions."""
        if rng.random() < PSEUDO_SHARE / (1 - CLASS_SHARE):
            return rng.choices(self.pseudo, cum_weights=self.cum_weights)[0]
        return rng.choice(self.filler)


_EN_SYLLABLES = (
    "ba be bo da de di do fa fe fi ga go ka ke ki ko la le li lo ma me mi mo na ne ni no pa pe po ra re ri "
    "ro sa se si so ta te ti to va ve vi vo za zu tor lin mar vel dun sen brak grim plo stu wen"
)
_ES_SYLLABLES = (
    "ba be bi bo da de di do fa fe fi ga go ja je ji la le li lo ma me mi mo na ne ni ño pa pe pi po ra "
    "re ri ro sa se si so ta te ti to va ve vi za zo cha che rra lla bra tre cla"
)
LANGUAGES = {
    "en": Language(CLASSES, FILLER, "not", "but", _EN_SYLLABLES, ("email", "phone", "card", "ipv4", "ipv6", "iban")),
    "es": Language(
        CLASSES_ES, FILLER_ES, "no", "sino", _ES_SYLLABLES, ("email", "phone", "card", "ipv4", "ipv6", "iban", "dni")
    ),
}


def _sentence(words: list[str]) -> list[str]:
    return [words[0].capitalize(), *words[1:-1], words[-1] + "."]


def _length_scale(rng: random.Random, skew: float, web: bool = False) -> int:
    """1 without skew; else Pareto: most documents short, a few 20-50 times longer. ``web``: lengths
    like crawled pages, log-normal (median 5.5, mean about 9 times a short document: over 2 KB),
    with a tail up to 300 times."""
    if web:
        return max(1, min(300, round(rng.lognormvariate(math.log(5.5), 1.0))))
    return 1 if skew <= 0 else min(50, int(rng.paretovariate(1.5 / skew)))  # skew 0.8: 1 in 4 longer


def document_sentences(rng: random.Random, label: str, lang: Language, scale: int = 1) -> list[list[str]]:
    """2-5 sentences (times ``scale``) of 8-18 words: class words (about a third, one at least), the
    rest filler and pseudo-words."""
    words, sentences = lang.classes[label], []
    for _ in range(rng.randint(2, 5) * scale):
        n = rng.randint(8, 18)
        sentence = [rng.choice(words) if rng.random() < CLASS_SHARE else lang.neutral(rng) for _ in range(n)]
        sentence[rng.randrange(n)] = rng.choice(words)  # at least one class word per sentence
        sentences.append(_sentence(sentence))
    return sentences


def contrast_sentences(rng: random.Random, label: str, other: str, lang: Language, scale: int = 1) -> list[list[str]]:
    """ "<Own>, not <other>." or "Not <other> but <own>.", then 1-2 neutral sentences (short, so
    that the opening is a large part of the document)."""
    own, negated = rng.choice(lang.classes[label]), rng.choice(lang.classes[other])
    if rng.random() < 0.5:
        opening = [own.capitalize() + ",", lang.negation, negated + "."]
    else:
        opening = [lang.negation.capitalize(), negated, lang.but, own + "."]
    rest = [_sentence([lang.neutral(rng) for _ in range(rng.randint(8, 18))]) for _ in range(rng.randint(1, 2) * scale)]
    return [opening, *rest]


def render(sentences: list[list[str]]) -> str:
    return " ".join(" ".join(s) for s in sentences)


def make_document(rng: random.Random, label: str, lang: str = "en") -> str:
    """One document of class ``label``: sentences mixing class words with filler and pseudo-words."""
    return render(document_sentences(rng, label, LANGUAGES[lang]))


def make_contrast_document(rng: random.Random, label: str, other: str, lang: str = "en") -> str:
    """One document that opens "<label word>, not <other word>." or "Not <other word> but <label
    word>." and goes on without class words: its bag of words is as likely to come from the
    mirrored document (``other`` and not ``label``); only the order says which topic is negated."""
    return render(contrast_sentences(rng, label, other, LANGUAGES[lang]))


# --- PII and look-alikes -------------------------------------------------------------------------


def _num(rng: random.Random, n: int) -> str:
    return "".join(str(rng.randrange(10)) for _ in range(n))


def _grouped(s: str, sizes: tuple[int, ...], sep: str) -> str:
    cuts = list(itertools.accumulate(sizes))
    return sep.join(s[a:b] for a, b in zip([0, *cuts[:-1]], cuts, strict=True))


def _card(rng: random.Random, valid: bool = True) -> str:
    """16 digits (Visa, Mastercard) or, valid only, 15 (Amex); grouped with spaces or dashes, or not."""
    amex = valid and rng.random() < 0.2
    body = rng.choice(["34", "37"]) + _num(rng, 12) if amex else (rng.choice(["4", "51", "55"]) + _num(rng, 14))[:15]
    digits = rng.choice([body + d for d in "0123456789" if luhn_valid(body + d) == valid])
    sizes, sep = ((4, 6, 5) if amex else (4, 4, 4, 4)), rng.choice([" ", "-", ""] if valid else [" ", "-"])
    return _grouped(digits, sizes, sep) if sep else digits


_IBAN_BBAN = {"GB": "AAAA" + "d" * 14, "DE": "d" * 18, "NL": "AAAA" + "d" * 10, "ES": "d" * 20, "FR": "d" * 23}


def _iban(rng: random.Random, country: str, valid: bool = True) -> str:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    bban = "".join(rng.choice(letters) if c == "A" else str(rng.randrange(10)) for c in _IBAN_BBAN[country])
    check = 98 - int("".join(str(int(c, 36)) for c in bban + country + "00")) % 97
    if not valid:
        check = rng.choice([c for c in range(2, 99) if c != check])
    iban = f"{country}{check:02d}{bban}"
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4)) if rng.random() < 0.6 else iban


def _dni(rng: random.Random, valid: bool = True) -> str:
    if rng.random() < 0.3:  # NIE
        prefix, digits = rng.choice("XYZ"), _num(rng, 7)
        number = int(str("XYZ".index(prefix)) + digits)
        body = prefix + digits
    else:
        body = _num(rng, 8)
        number = int(body)
    letter = DNI_LETTERS[number % 23]
    return body + (letter if valid else rng.choice(DNI_LETTERS.replace(letter, "")))


_NAMES = "ana jo maria li sam pablo lucia omar eva noah".split()


def _phone(rng: random.Random, lang: str) -> str:
    if lang == "es":
        a = rng.choice("679") + _num(rng, 8)
        return rng.choice([f"+34 {a[:3]} {a[3:6]} {a[6:]}", f"{a[:3]} {a[3:5]} {a[5:7]} {a[7:]}", a, f"+34{a}"])
    area, mid, end = str(rng.randint(200, 989)), str(rng.randint(200, 999)), _num(rng, 4)
    return rng.choice(
        [f"+1 ({area}) {mid}-{end}", f"({area}) {mid}-{end}", f"{area}-{mid}-{end}", f"+44 20 {_num(rng, 4)} {end}"]
    )


def pii_value(rng: random.Random, kind: str, lang: str) -> str:
    """A valid value of one PII type, written as people write it."""
    if kind == "email":
        domain = rng.choice(["correo.es", "ejemplo.com"] if lang == "es" else ["example.com", "mail.example.co.uk"])
        return f"{rng.choice(_NAMES)}.{rng.choice(_NAMES)}{rng.randint(1, 99)}@{domain}"
    if kind == "phone":
        return _phone(rng, lang)
    if kind == "card":
        return _card(rng)
    if kind == "ipv4":
        return ".".join(str(rng.randint(1, 254)) for _ in range(4))
    if kind == "ipv6":
        address = ipaddress.IPv6Address(rng.getrandbits(64) << 64 if rng.random() < 0.5 else rng.getrandbits(128))
        return address.compressed if rng.random() < 0.7 else address.exploded
    if kind == "iban":
        return _iban(rng, "ES" if lang == "es" and rng.random() < 0.7 else rng.choice(["GB", "DE", "NL", "FR"]))
    return _dni(rng)


DECOY_TYPES = ("card_invalid", "iban_invalid", "dni_invalid", "date", "price", "version", "year", "number")


def decoy_value(rng: random.Random, kind: str, lang: str) -> str:
    """A look-alike that must not be masked: a failed checksum, or a number that is not a phone."""
    if kind == "card_invalid":
        return _card(rng, valid=False)
    if kind == "iban_invalid":
        return _iban(rng, rng.choice(list(_IBAN_BBAN)), valid=False)
    if kind == "dni_invalid":
        return _dni(rng, valid=False)
    if kind == "date":
        return f"{rng.randint(1990, 2030)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if kind == "price":
        whole, cents = rng.randint(1, 9999), rng.randint(0, 99)
        return f"{whole},{cents:02d}€" if lang == "es" else f"${whole}.{cents:02d}"
    if kind == "version":
        return f"v{rng.randint(0, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 30)}"
    if kind == "year":
        return str(rng.randint(1900, 2030))
    return str(rng.randint(0, 999))


def _insert_words(rng: random.Random, sentences: list[list[str]], values: list[str], lang: Language) -> None:
    """Each value as its own word between two words of a sentence, never next to another inserted
    value nor right after the negation (so "not <class word>" stays together)."""
    gaps = [
        (s, p)
        for s, sentence in enumerate(sentences)
        for p in range(1, len(sentence))
        if sentence[p - 1].lower() != lang.negation
    ]
    for s, p in sorted(rng.sample(gaps, min(len(values), len(gaps))), reverse=True):
        sentences[s].insert(p, values.pop())


# --- near duplicates ----------------------------------------------------------------------------


def word_set(text: str) -> set[str]:
    return set(text.lower().split())


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def _plain(token: str) -> bool:
    return token.rstrip(".,").isalpha()


def _edit_once(rng: random.Random, sentences: list[list[str]], lang: Language, neutral: set[str]) -> None:
    """Substitute, insert or delete one neutral word (never a class word, PII, the first word or the negation)."""
    op = rng.choice(("substitute", "insert", "delete"))
    spots = [
        (s, p)
        for s, sentence in enumerate(sentences)
        for p in range(1, len(sentence) - 1)
        if sentence[p - 1].lower() != lang.negation
        and (op == "insert" or sentence[p] in neutral)
        and (op != "delete" or (_plain(sentence[p - 1]) and _plain(sentence[p + 1])))
    ]
    if not spots:
        return
    s, p = rng.choice(spots)
    if op == "substitute":
        sentences[s][p] = lang.neutral(rng)
    elif op == "insert":
        sentences[s].insert(p, lang.neutral(rng))
    else:
        del sentences[s][p]


NEAR_DUP_JACCARD = 0.8


def near_duplicate(rng: random.Random, sentences: list[list[str]], lang: Language) -> list[list[str]]:
    """A copy with 1-10% of its words edited whose word set keeps Jaccard >= 0.8 with the original."""
    original = render(sentences)
    n, neutral = len(original.split()), set(lang.pseudo) | set(lang.filler)
    for attempt in range(50):
        top = max(1, n // 10) if attempt < 25 else 1
        copy = [list(s) for s in sentences]
        for _ in range(rng.randint(max(1, round(n / 100)), top)):
            _edit_once(rng, copy, lang, neutral)
        text = render(copy)
        close = all(jaccard(f(text), f(original)) >= NEAR_DUP_JACCARD for f in (word_set, _word_chars))
        if text != original and close:
            return copy
    raise RuntimeError("no near duplicate found")  # a document of 16+ words always has a neutral word


def _word_chars(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


# --- noise --------------------------------------------------------------------------------------

NOISE_KINDS = ("markup", "entity", "control", "boilerplate")
BOILERPLATE = {
    "en": [
        "We use cookies to improve your experience. Accept all cookies",
        "JavaScript is required to view this page.",
        "Please enable JavaScript to continue.",
        "Lorem ipsum dolor sit amet, consectetur adipiscing elit.",
    ],
    "es": [
        "We use cookies to improve your experience. Accept all cookies",
        "JavaScript is disabled in your browser.",
        "Lorem ipsum dolor sit amet.",
    ],
}
_NAMED = {"é": "&eacute;", "á": "&aacute;", "í": "&iacute;", "ó": "&oacute;", "ú": "&uacute;", "ñ": "&ntilde;"}
_CONTROLS = ("\x07", "\x0b", "\x1b", "\x7f")


def _entity(rng: random.Random, token: str) -> str:
    spots = [i for i, c in enumerate(token) if c.isalpha() or c == "@"]
    if not spots:
        return token
    i = rng.choice(spots)
    code = _NAMED.get(token[i]) or (f"&#{ord(token[i])};" if rng.random() < 0.5 else f"&#x{ord(token[i]):x};")
    return token[:i] + code + token[i + 1 :]


def add_noise(rng: random.Random, sentences: list[list[str]], kinds: list[str], lang: str) -> str:
    """The document's text with removable noise of ``kinds``: cleaning gives ``render(sentences)`` back."""
    sentences = [list(s) for s in sentences]
    tokens = [(s, p) for s, sentence in enumerate(sentences) for p in range(len(sentence))]
    if "entity" in kinds:
        for s, p in rng.sample(tokens, min(2, len(tokens))):
            sentences[s][p] = _entity(rng, sentences[s][p])
    seps = [" "] * (len(sentences) - 1)  # between sentences
    if "markup" in kinds:
        for s, p in rng.sample(tokens, min(2, len(tokens))):
            tag = rng.choice(["b", "em", "strong", "span", "i"])
            sentences[s][p] = f"<{tag}>{sentences[s][p]}</{tag}>"
        s = rng.randrange(len(sentences))
        tag = rng.choice(["p", "div", "li", "h2"])
        sentences[s][0], sentences[s][-1] = f"<{tag}>{sentences[s][0]}", f"{sentences[s][-1]}</{tag}>"
        if seps:
            j = rng.randrange(len(seps))
            seps[j] = rng.choice(
                ["<br>", " <br/> ", " <script>var seen = 1;</script> ", " <style>p {color: red}</style> "]
            )
    lines = [" ".join(sentence) for sentence in sentences]
    if "control" in kinds:
        s = rng.randrange(len(lines))
        words = lines[s].split(" ")
        if len(words) > 1:  # right after or right before an existing space
            j, control = rng.randrange(1, len(words)), rng.choice(_CONTROLS)
            if rng.random() < 0.5:
                words[j] = control + words[j]
            else:
                words[j - 1] += control
            lines[s] = " ".join(words)
    text = "".join(line + sep for line, sep in zip(lines, [*seps, ""], strict=True))
    if "boilerplate" in kinds:
        line = rng.choice(BOILERPLATE[lang])
        text = f"{line}\n{text}" if rng.random() < 0.5 else f"{text}\n{line}"
    return text


# --- bad lines ----------------------------------------------------------------------------------

BAD_KINDS = (MALFORMED_JSON, INVALID_UTF8, MISSING_TEXT, TEXT_NOT_STRING, BAD_LABEL_TYPE, MISSING_LABEL)
"""Each bad line has exactly one defect, so ingest gives it exactly this reason."""


def bad_line(rng: random.Random, kind: str, doc_id: str, text: str, label: str) -> bytes:
    """One bad JSON line (no newline) of ``kind``, built from a would-be clean document."""
    record: dict = {"id": doc_id, "text": text, "label": label}
    if kind == MALFORMED_JSON:
        line = json.dumps(record, ensure_ascii=False)
        return line[: rng.randrange(2, len(line) - 1)].encode()  # cut inside the object: never valid JSON
    if kind == INVALID_UTF8:
        words = text.split(" ")
        words.insert(rng.randrange(1, len(words)), "\ue000")
        record["text"] = " ".join(words)
        return json.dumps(record, ensure_ascii=False).encode().replace("\ue000".encode(), b"\xff\xfe")
    if kind == MISSING_TEXT:
        del record["text"]
        if rng.random() < 0.5:
            record["text"] = None
    elif kind == TEXT_NOT_STRING:
        record["text"] = rng.choice([42, 3.5, ["a", "list"], {"body": text[:20]}, True])
    elif kind == BAD_LABEL_TYPE:
        record["label"] = rng.choice([1.5, {"name": label}])
    else:
        del record["label"]
        if rng.random() < 0.5:
            record["label"] = None
    return json.dumps(record, ensure_ascii=False).encode()


# --- the corpus ---------------------------------------------------------------------------------


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
    scale = _length_scale(rng, skew, web)
    if rng.random() < contrast:
        other = rng.choice([k for k in labels if k != label])
        sentences = contrast_sentences(rng, label, other, lang, scale)
    else:
        sentences = document_sentences(rng, label, lang, scale)
    return Line(f"doc-{seed}-{i:08d}", label, sentences=sentences, order=(i, 0))


def base_lines(
    rng: random.Random, docs: int, seed: int, contrast: float, lang: Language, skew: float, web: bool = False
):
    """The ``docs`` base documents, in order (the first draws of ``rng``: a clean corpus streams them)."""
    labels = sorted(lang.classes)
    return (_base(rng, i, seed, labels, lang, contrast, skew, web) for i in range(docs))


def _plant(rng: random.Random, line: Line, lang: str, pii: bool) -> None:
    """1-3 PII values (if ``pii``) and 1-2 decoys, each as its own word."""
    kinds = [rng.choice(LANGUAGES[lang].pii_types) for _ in range(rng.randint(1, 3) if pii else 0)]
    line.pii = [{"type": k, "value": pii_value(rng, k, lang)} for k in kinds]
    decoy_kinds = [rng.choice(DECOY_TYPES) for _ in range(rng.randint(1, 2))]
    line.decoys = [{"type": k, "value": decoy_value(rng, k, lang)} for k in decoy_kinds]
    values = [v["value"] for v in line.pii + line.decoys]
    rng.shuffle(values)
    _insert_words(rng, line.sentences, values, LANGUAGES[lang])


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
    return json.dumps({"id": line.id, "text": text, "label": line.label}, ensure_ascii=False).encode()


def build_lines(docs: int, seed: int, contrast: float, opts: dict) -> list[Line]:
    """Every corpus line in order, with its ground truth (``opts``: the rates, skew and lang)."""
    rng, lang = random.Random(seed), opts["lang"]
    lines = list(base_lines(rng, docs, seed, contrast, LANGUAGES[lang], opts["skew"], opts.get("web", False)))
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
) -> Path:
    """Write ``docs`` labelled documents to ``out`` (JSON Lines; a directory of ``part-NNNNN.jsonl``
    with ``files`` > 1), a ``contrast`` share of them order-dependent; same arguments, same bytes.

    ``bad_rate`` of the ``docs`` lines are bad; ``pii_rate`` and ``noise_rate`` of the clean
    ones carry PII (and decoys) and noise; ``dup_rate * docs`` exact and ``near_dup_rate * docs``
    near copies of clean documents come on top, each after its original. With any of these or
    ``files`` > 1, the ground truth goes to ``truth_path(out)``. ``web_lengths``: document lengths
    like crawled pages (a long tail, mean over 2 KB) instead of short ones. Returns ``out``.
    """
    rates = {"dup_rate": dup_rate, "near_dup_rate": near_dup_rate, "pii_rate": pii_rate}
    rates |= {"noise_rate": noise_rate, "bad_rate": bad_rate}
    _check(docs, {**rates, "contrast": contrast}, skew, files, lang)
    out = Path(out)
    if not any(r > 0 for r in rates.values()) and skew == 0 and files == 1:  # clean: streamed, no truth
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("wb") as fh:
            for line in base_lines(random.Random(seed), docs, seed, contrast, LANGUAGES[lang], skew, web_lengths):
                fh.write(_json_line(line, render(line.sentences)) + b"\n")
        truth_path(out).unlink(missing_ok=True)  # a stale truth file would describe another corpus
        return out
    lines = build_lines(docs, seed, contrast, {**rates, "skew": skew, "lang": lang, "web": web_lengths})
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
