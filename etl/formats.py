"""Formats: what a document's text holds, decoded to the text a model should read.

``plain`` text goes to cleaning as it is (``etl.clean`` strips stray markup with regular
expressions). An ``html`` page becomes its main content (Resiliparse's extractor: paragraph breaks
kept, navigation, headers, footers and forms dropped). An ``email`` (an RFC 822 message) becomes
its decoded body (quoted-printable and base64 undone, the ``text/plain`` part preferred to the
HTML one, which is extracted as a page; attachments skipped and counted), its subject, sender
domain and date go to ``meta``, and no header reaches the text.

The readers of web archives, pages and mail files (``etl.archives``) call these functions on the
bytes they read; ``decode_text`` calls them on a text column (``etl.text_format``), so that a
document decodes the same wherever it came from.
"""

from __future__ import annotations

import email
import email.policy
import json
from dataclasses import dataclass, field
from email.message import EmailMessage

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from tokenlake.etl.reasons import reason

UNPARSEABLE_EMAIL = reason("unparseable_email")
TEXT_FORMATS = ("auto", "plain", "html", "email")
"""``etl.text_format``: what the text field of JSON Lines, CSV, Parquet and text files holds
(``auto`` and ``plain``: plain text). Web archives and pages are always ``html``, ``.eml`` and
mbox files always ``email``."""
EMAIL_META = ("subject", "sender_domain", "date", "attachments")
"""The ``meta`` fields an e-mail's headers give (``attachments``: how many were skipped)."""
_POLICY = email.policy.default


@dataclass(frozen=True)
class Document:
    text: str
    meta: dict[str, str] = field(default_factory=dict)


class UnparseableEmail(ValueError):
    """A message that is not RFC 822 (no header fields), or whose body cannot be decoded."""


# ---------------------------------------------------------------- HTML


def html_text(html: str) -> str:
    """The main content of an HTML page as text, one paragraph per block, no navigation."""
    from resiliparse.extract.html2text import extract_plain_text

    return extract_plain_text(
        html, main_content=True, alt_texts=False, links=False, form_fields=False, noscript=False, comments=False
    )


def charset_of(content_type: str | None) -> str | None:
    """The ``charset`` parameter of a Content-Type header value, if any."""
    if not content_type:
        return None
    msg = EmailMessage()
    msg["content-type"] = content_type
    return msg.get_content_charset()


def html_of_bytes(body: bytes, content_type: str | None = None) -> str:
    """An HTML page's bytes as text: the charset its header names, else the one Resiliparse
    detects (meta tags, then the bytes themselves); undecodable bytes become U+FFFD."""
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    charset = charset_of(content_type)
    if charset:
        try:
            return body.decode(charset, errors="replace")
        except LookupError:  # a charset Python does not know: detect it instead
            pass
    return bytes_to_str(body, detect_encoding(body))


def is_html(content_type: str | None) -> bool:
    """An HTML (or XHTML) media type; a page served without one counts as HTML."""
    media = (content_type or "text/html").split(";", 1)[0].strip().lower()
    return media in ("text/html", "application/xhtml+xml")


# ---------------------------------------------------------------- e-mail


def parse_message(data: bytes | str) -> EmailMessage:
    """An RFC 822 message from its bytes (as read from a file) or its text (a column's value);
    ``UnparseableEmail`` if it has no header field."""
    if isinstance(data, bytes):
        msg = email.message_from_bytes(data, policy=_POLICY)
    else:
        msg = email.message_from_string(data, policy=_POLICY)
    if not msg.keys():
        raise UnparseableEmail("no header fields: not an RFC 822 message")
    return msg


def _is_attachment(part: EmailMessage) -> bool:
    return part.is_attachment() or part.get_content_maintype() not in ("text", "multipart", "message")


def _part_text(part: EmailMessage) -> str:
    try:
        text = part.get_content()
    except LookupError:  # an unknown charset: the bytes as UTF-8
        text = (part.get_payload(decode=True) or b"").decode("utf-8", errors="replace")
    if not isinstance(text, str):
        raise UnparseableEmail(f"the {part.get_content_type()} body did not decode to text")
    return html_text(text) if part.get_content_subtype() == "html" else text


def _header(msg: EmailMessage, name: str):
    """A header's parsed value, or None where it is absent or malformed (a defect, not a reject)."""
    try:
        return msg[name]
    except Exception:
        return None


def email_document(msg: EmailMessage) -> Document:
    """A message's body as the text (no header in it) and its subject, sender domain, date and
    number of skipped attachments as meta."""
    try:
        body = msg.get_body(preferencelist=("plain", "html"))
        text = _part_text(body) if body is not None else ""
        attachments = sum(1 for p in msg.walk() if not p.is_multipart() and p is not body and _is_attachment(p))
    except UnparseableEmail:
        raise
    except Exception as exc:  # a structure the parser could not follow
        raise UnparseableEmail(f"{type(exc).__name__}: {exc}") from exc
    meta = {"attachments": str(attachments)}
    subject = _header(msg, "subject")
    if subject:
        meta["subject"] = str(subject)
    sender = _header(msg, "from")
    addresses = getattr(sender, "addresses", ())
    if addresses and addresses[0].domain:
        meta["sender_domain"] = addresses[0].domain.lower()
    date = _header(msg, "date")
    if date:
        when = getattr(date, "datetime", None)
        meta["date"] = when.isoformat() if when is not None else str(date)
    return Document(text, meta)


# ---------------------------------------------------------------- a text column


def unknown_format(text_format: str) -> str:
    """How a file without a known extension is read: a message (``eml``) when the text format is
    ``email`` (a maildir, a directory of raw messages), else JSON Lines."""
    return "eml" if text_format == "email" else "json"


def decode_one(text: str | None, fmt: str) -> tuple[str | None, str | None, str | None]:
    """``(text, meta as JSON, reject reason)`` of one value of a text column in format ``fmt``."""
    if text is None:
        return None, None, None
    if fmt == "html":
        return html_text(text), None, None
    try:
        doc = email_document(parse_message(text))
    except UnparseableEmail:
        return text, None, UNPARSEABLE_EMAIL
    return doc.text, json.dumps(doc.meta), None


def decode_text(df: DataFrame, *, text_format: str, where: Column | None = None) -> DataFrame:
    """Decode ``text`` (``html`` or ``email``) on the rows without a ``reject_reason`` (that
    ``where`` also holds, if given: not the records a reader decoded already); an
    e-mail's header fields go to ``meta`` where there is one (replacing fields of the same name),
    a message that cannot be parsed gets ``unparseable_email``. ``auto`` and ``plain`` leave the
    frame as it is."""
    if text_format not in TEXT_FORMATS:
        raise ValueError(f"text_format must be one of {TEXT_FORMATS}, got {text_format!r}")
    if text_format in ("auto", "plain"):
        return df

    @F.pandas_udf("text string, meta string, reason string")
    def decode(texts: pd.Series) -> pd.DataFrame:
        return pd.DataFrame([decode_one(t, text_format) for t in texts], columns=["text", "meta", "reason"])

    usable = F.col("reject_reason").isNull() if where is None else F.col("reject_reason").isNull() & where
    decoded = df.withColumn("_decoded", F.when(usable, decode(F.col("text"))))
    columns = {
        "text": F.coalesce(F.col("_decoded.text"), F.col("text")),
        "reject_reason": F.coalesce(F.col("reject_reason"), F.col("_decoded.reason")),
    }
    if "meta" in df.columns:
        columns["meta"] = _merge_meta(F.col("meta"), F.from_json(F.col("_decoded.meta"), "map<string,string>"))
    return decoded.withColumns(columns).drop("_decoded")


def _merge_meta(meta: Column, extra: Column) -> Column:
    kept = F.map_filter(meta, lambda k, v: ~k.isin(*EMAIL_META))
    return F.when(extra.isNull(), meta).otherwise(F.map_concat(kept, extra))
