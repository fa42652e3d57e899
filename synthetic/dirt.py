"""The dirt the generator can add, each with the ground truth to score the ETL against: PII values
and look-alike decoys, near-duplicate edits, removable noise, and bad lines with the reject reason
ingest gives them."""

from __future__ import annotations

import ipaddress
import itertools
import json
import random
import re

from tokenlake.etl.ingest import BAD_LABEL_TYPE, MALFORMED_JSON, MISSING_LABEL, MISSING_TEXT, TEXT_NOT_STRING
from tokenlake.etl.pii import DNI_LETTERS, luhn_valid
from tokenlake.etl.sources import INVALID_UTF8
from tokenlake.synthetic.documents import Language, render


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


def insert_words(rng: random.Random, sentences: list[list[str]], values: list[str], lang: Language) -> None:
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
