"""Every reject reason a quarantine row can carry: its name, the stage that sets it (the row's
``stage`` column) and what it means. The modules that decide a reason take its name from here, the
quarantine suite's set of allowed reasons is this list, and the README's table is checked against
it (``tests/test_reasons.py``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reason:
    name: str
    stage: str
    """``ingest`` (the record could not become a bronze row) or ``clean`` (its text failed cleaning
    or a quality rule)."""
    meaning: str


REASONS = (
    Reason("malformed_csv", "ingest", "a CSV row Spark cannot parse (an unbalanced quote runs to the end of the file)"),
    Reason(
        "unreadable_file",
        "ingest",
        "a file that cannot be read (a Parquet file that is not one) or read on (a truncated archive): one row",
    ),
    Reason("not_html", "ingest", "a web archive record that is not an HTML page (a request, metadata, a PDF)"),
    Reason("unparseable_email", "ingest", "an e-mail that is not an RFC 822 message, or whose body cannot be decoded"),
    Reason("blank_line", "ingest", "an empty or white-space-only line"),
    Reason("invalid_utf8", "ingest", "a record that is not valid UTF-8"),
    Reason("malformed_json", "ingest", "a line that is not JSON"),
    Reason("not_an_object", "ingest", "JSON that is not an object"),
    Reason("missing_text", "ingest", "no text field, or a null one"),
    Reason("text_not_string", "ingest", "a text field that is not a string"),
    Reason("bad_id", "ingest", "an id that is neither a string nor an integer"),
    Reason("missing_label", "ingest", "no label, or a null one (classification only)"),
    Reason("bad_label_type", "ingest", "a label that is neither a string nor an integer"),
    Reason("duplicate_id", "ingest", "an id seen before in this input, or held by bronze with another text"),
    Reason("language", "clean", "a language outside `etl.languages`, or identified below `etl.min_lang_confidence`"),
    Reason("empty_after_clean", "clean", "nothing left once markup, controls and boilerplate are gone"),
    Reason("too_long", "clean", "longer than `etl.max_doc_chars` once cleaned"),
    Reason("too_few_words", "clean", "fewer words than `etl.min_words`"),
    Reason("too_many_words", "clean", "more words than `etl.max_words`"),
    Reason("mean_word_length", "clean", "mean word length outside `etl.min_mean_word_len`..`etl.max_mean_word_len`"),
    Reason("low_alpha_ratio", "clean", "too few words with a letter (`etl.min_alpha_words`)"),
    Reason("high_symbol_ratio", "clean", "too many `#` and ellipses per word (`etl.max_symbol_ratio`)"),
    Reason("high_digit_ratio", "clean", "too many digits among the characters (`etl.max_digit_ratio`)"),
    Reason("repeated_lines", "clean", "too many lines repeat an earlier one (`etl.max_dup_line_frac`)"),
    Reason("repeated_ngrams", "clean", "too many word 3-grams repeat an earlier one (`etl.max_dup_ngram_frac`)"),
)
BY_NAME = {r.name: r for r in REASONS}


def names(stage: str | None = None) -> tuple[str, ...]:
    """The reasons' names, in the order above; ``stage``: only that stage's."""
    return tuple(r.name for r in REASONS if stage is None or r.stage == stage)


def reason(name: str) -> str:
    """``name``, which must be a registered reason (a typo fails at import, not in a run)."""
    if name not in BY_NAME:
        raise KeyError(f"{name!r} is not a reject reason in etl.reasons.REASONS")
    return name
