"""PII masking: e-mails, phones, payment cards, IPv4/IPv6 addresses, IBANs and Spanish DNI/NIE
numbers become typed placeholders (``<EMAIL>``), or, pseudonymised, keyed hashes (``<EMAIL_1a2b3c4d5e6f>``).

E-mails are a built-in ``regexp_replace``. The other types need a checksum (Luhn, IBAN mod 97, the
DNI check letter) or a parse (IP addresses), so rows that a cheap built-in ``rlike`` says may hold
one go through ONE Arrow-batched pandas UDF; the text of every other row never leaves the JVM (the
UDF gets a null for it: Spark evaluates a UDF inside ``when`` for every row, so the condition goes
into its argument). In the UDF one regular expression of all shapes scans each text left to right:
a shape that fails its check (a Luhn-invalid 16-digit number, an IBAN with a wrong checksum) is
kept *and consumed*, so no later, weaker pattern (a phone) can take a piece of it.

Pseudonyms are HMAC-SHA256 under the key in ``TOKENLAKE_PII_SECRET``, read on the driver and
handed to the UDF in its closure: never a literal in the plan, a log line or an error message.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
from collections.abc import Callable

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

SECRET_ENV = "TOKENLAKE_PII_SECRET"
"""The pseudonymisation key's environment variable ("SECRET" in the name: Spark redacts it)."""
TYPES = ("email", "phone", "card", "ipv4", "ipv6", "iban", "dni")
PLACEHOLDERS = {t: f"<{t.upper()}>" for t in TYPES}

EMAIL_PATTERN = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
CARD_CANDIDATE = r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])"  # Java and Python regex alike
IBAN_CANDIDATE = r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])"
DNI_CANDIDATE = r"(?<![\w-])(?:\d{8}|[XYZ]\d{7})-?[A-Z](?![\w-])"
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
IPV4_CANDIDATE = rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?![\w]|\.\d)"
IPV6_CANDIDATE = r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.\d{1,3}){0,3}(?![\w:]|\.\d)"
PHONE_CANDIDATE = (
    r"(?<![\w+-])(?:\+\d{1,3}(?:[ .-]?(?:\(\d{1,4}\)|\d{1,4})){2,6}"  # +44 20 7946 0958, +1 (555) 123-4567
    r"|\(\d{3}\) ?\d{3}[-. ]\d{4}|\d{3}[-.]\d{3}[-.]\d{4}"  # (555) 123-4567, 555-123-4567
    r"|[6789]\d{2}(?: \d{2}){3}|[6789]\d{2} \d{3} \d{3}|[6789]\d{8})(?![\w-])"  # 612 34 56 78, 612345678
)
PII_PREFILTER = r"\d\d|\d\.\d|:[0-9A-Fa-f]*:"
"""Built-in ``rlike``: a row without a match holds no phone, card, IP, IBAN or DNI (Java regex)."""
_SHAPE_PATTERNS = (
    ("email", EMAIL_PATTERN),
    ("iban", IBAN_CANDIDATE),
    ("card", CARD_CANDIDATE),
    ("dni", DNI_CANDIDATE),
    ("ipv6", IPV6_CANDIDATE),
    ("ipv4", IPV4_CANDIDATE),
    ("phone", PHONE_CANDIDATE),
)
# Leftmost shape wins; at one position the first alternative does: cards and IBANs before phones.
# Without e-mails for the UDF when the JVM has masked them already (the pattern is tried at every word).
_SHAPES = {
    emails: re.compile(
        ("" if emails else r"(?=[0-9A-Za-f:+(])")  # a cheap first test at each position
        + "|".join(f"(?P<{n}>{p})" for n, p in _SHAPE_PATTERNS if emails or n != "email")
    )
    for emails in (True, False)
}
PLACEHOLDER_PATTERNS = {t: rf"<{t.upper()}(?:_[0-9a-f]{{12}})?>" for t in TYPES}
"""What each type's masks look like in a text: the placeholder, or a pseudonym."""
DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum that every payment card number satisfies."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_valid(iban: str) -> bool:
    """ISO 13616: country, two check digits, BBAN; rotated and read as a number, it is 1 mod 97."""
    s = re.sub(r"\s", "", iban).upper()
    if not (15 <= len(s) <= 34 and re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]+", s)):
        return False
    return int("".join(str(int(ch, 36)) for ch in s[4:] + s[:4])) % 97 == 1


def dni_letter(number: int) -> str:
    return DNI_LETTERS[number % 23]


def dni_valid(value: str) -> bool:
    """Spanish DNI (8 digits + letter) or NIE (X/Y/Z = 0/1/2, 7 digits, letter) with its check letter."""
    s = value.replace("-", "").upper()
    digits = str("XYZ".index(s[0])) + s[1:-1] if s[0] in "XYZ" else s[:-1]
    return digits.isdigit() and len(digits) == 8 and dni_letter(int(digits)) == s[-1]


def _ip_valid(value: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(value).version == version and any(c not in ":." for c in value)
    except ValueError:
        return False


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value)


_VALID: dict[str, Callable[[str], bool]] = {
    "email": lambda v: True,
    "iban": iban_valid,
    "card": lambda v: 13 <= len(_digits(v)) <= 19 and luhn_valid(_digits(v)),
    "dni": dni_valid,
    "ipv6": lambda v: _ip_valid(v, 6),
    "ipv4": lambda v: _ip_valid(v, 4),
    "phone": lambda v: 9 <= len(_digits(v)) <= 15,
}
_CANONICAL: dict[str, Callable[[str], str]] = {  # one pseudonym for one value, however it is written
    "email": str.lower,
    "iban": lambda v: re.sub(r"\s", "", v).upper(),
    "card": _digits,
    "dni": lambda v: v.replace("-", "").upper(),
    "ipv6": lambda v: ipaddress.ip_address(v).compressed,
    "ipv4": lambda v: ipaddress.ip_address(v).compressed,
    "phone": lambda v: ("+" if v.startswith("+") else "") + _digits(v),
}


def pseudonym(kind: str, value: str, key: bytes) -> str:
    """``<TYPE_xxxxxxxxxxxx>``: the first 12 hex digits of HMAC-SHA256(key, "type:canonical value")."""
    digest = hmac.new(key, f"{kind}:{_CANONICAL[kind](value)}".encode(), hashlib.sha256).hexdigest()
    return f"<{kind.upper()}_{digest[:12]}>"


def mask_text(text: str, key: bytes | None = None, *, emails: bool = True) -> str:
    """Every PII value in ``text`` as its placeholder (pseudonym with a ``key``): the UDF's per-row work."""

    def replace(m: re.Match) -> str:
        kind, value = m.lastgroup, m.group()
        if not _VALID[kind](value):
            return value
        return PLACEHOLDERS[kind] if key is None else pseudonym(kind, value, key)

    return _SHAPES[emails].sub(replace, text)


def _masking_udf(key: bytes | None, emails: bool):
    """The pandas UDF, with the key (if any) in its closure rather than in the plan."""

    @F.pandas_udf(T.StringType())
    def mask_pii_batch(text: pd.Series) -> pd.Series:
        return text.map(lambda t: None if t is None else mask_text(t, key, emails=emails))

    return mask_pii_batch


def pii_secret() -> bytes:
    """The pseudonymisation key from ``TOKENLAKE_PII_SECRET``; its value is never echoed."""
    value = os.environ.get(SECRET_ENV, "")
    if not value:
        raise ValueError(
            f"pseudonymisation needs a key: set the environment variable {SECRET_ENV} (it is unset or empty)"
        )
    return value.encode()


def mask_emails(text: Column) -> Column:
    # the pattern backtracks at every word; a plain substring test skips the texts without "@"
    return F.when(text.contains("@"), F.regexp_replace(text, EMAIL_PATTERN, PLACEHOLDERS["email"])).otherwise(text)


def mask_pii(df: DataFrame, *, pseudonymise: bool = False, where: Column | None = None) -> DataFrame:
    """Mask every PII type in ``text``; with ``pseudonymise``, keyed consistent pseudonyms instead
    (key from ``TOKENLAKE_PII_SECRET``, else ``ValueError``). ``where``: only the rows where it
    holds are masked (e.g. those no earlier step rejected); the others' text stays as it is."""
    key = pii_secret() if pseudonymise else None
    todo = F.lit(True) if where is None else where
    text = F.col("text") if pseudonymise else F.when(todo, mask_emails(F.col("text"))).otherwise(F.col("text"))
    prefilter = PII_PREFILTER + "|@" if pseudonymise else PII_PREFILTER
    df = df.withColumn("text", text)
    masked = _masking_udf(key, emails=pseudonymise)(
        F.when(todo & F.col("text").rlike(prefilter), F.col("text"))
    )  # the rest: null
    return df.withColumn("text", F.coalesce(masked, F.col("text")))


def first_card(text: Column) -> Column:
    """The first Luhn-valid card number in ``text``, else null: built-in higher-order functions
    only, so validation scans text without a round trip through Python. IBAN-shaped runs are
    blanked first (as the masker consumes them), so digits inside an IBAN are not a card."""

    def digit_sum(digits: Column) -> Column:  # Luhn: double every second digit from the right
        reversed_digits = F.reverse(F.split(digits, ""))
        doubled = F.transform(
            reversed_digits,
            lambda ch, i: F.when(i % 2 == 0, ch.cast("int")).otherwise(
                F.when(ch.cast("int") > 4, ch.cast("int") * 2 - 9).otherwise(ch.cast("int") * 2)
            ),
        )
        return F.aggregate(doubled, F.lit(0), lambda acc, d: acc + d)

    def is_card(candidate: Column) -> Column:
        digits = F.regexp_replace(candidate, r"\D", "")
        return F.length(digits).between(13, 19) & (digit_sum(digits) % 10 == 0)

    without_ibans = F.regexp_replace(text, IBAN_CANDIDATE, " ")
    cards = F.filter(F.regexp_extract_all(without_ibans, F.lit(CARD_CANDIDATE), F.lit(0)), is_card)
    # Every card candidate holds 13 digits in a row (single separators allowed): one cheap scan
    # spares most texts the extraction and the interpreted Luhn functions.
    return F.when(text.rlike(r"\d(?:[ -]?\d){12}"), F.try_element_at(cards, F.lit(1)))


def first_email(text: Column) -> Column:
    """The first e-mail address in ``text``, else null."""
    found = F.regexp_extract(text, EMAIL_PATTERN, 0)
    return F.when(text.contains("@") & (found != ""), found)


def pii_counts(df: DataFrame) -> dict[str, int]:
    """Placeholders per type in ``text``, plain or pseudonymised (one aggregation pass); every type present."""
    counts = [F.sum(F.regexp_count(F.col("text"), F.lit(p))).alias(t) for t, p in PLACEHOLDER_PATTERNS.items()]
    row = df.agg(*counts).first()
    return {t: int(row[t] or 0) for t in TYPES}
