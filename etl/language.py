"""Language: each document's language and the identifier's confidence in it, and the gate that
keeps only the languages a run asks for.

The identifier is Lingua (its models ship in its package: nothing is downloaded), in its
low-accuracy mode (character trigrams, all of its 75 languages), on a document's first
``SAMPLE_CHARS`` characters, Arrow-batched. ``lang`` is the ISO 639-1 code, ``und`` where no
language can be told (no letters); ``lang_confidence`` is Lingua's confidence in it, in [0, 1].
"""

from __future__ import annotations

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from tokenlake.etl.reasons import reason

LANGUAGE = reason("language")
LANG_COLUMNS = ("lang", "lang_confidence")
UNDETERMINED = "und"
SAMPLE_CHARS = 2_000
_detector = None


def detector():
    """The process's Lingua detector, built once (about half a second) and kept."""
    global _detector
    if _detector is None:
        from lingua import LanguageDetectorBuilder

        _detector = LanguageDetectorBuilder.from_all_languages().with_low_accuracy_mode().build()
    return _detector


def known_languages() -> set[str]:
    """The ISO 639-1 codes the identifier can give."""
    from lingua import Language

    return {lang.iso_code_639_1.name.lower() for lang in Language.all()}


def identify(text: str | None) -> tuple[str, float]:
    """``(ISO 639-1 code, confidence)`` of ``text``'s language; ``("und", 0.0)`` when there is none."""
    if not text:
        return UNDETERMINED, 0.0
    values = detector().compute_language_confidence_values(text[:SAMPLE_CHARS])
    if not values or values[0].value <= 0:
        return UNDETERMINED, 0.0
    return values[0].language.iso_code_639_1.name.lower(), float(values[0].value)


@F.pandas_udf(T.StructType([T.StructField("lang", T.StringType()), T.StructField("lang_confidence", T.DoubleType())]))
def identify_batch(texts: pd.Series) -> pd.DataFrame:
    return pd.DataFrame([identify(t) for t in texts], columns=list(LANG_COLUMNS))


def with_language(df: DataFrame, *, where: Column | None = None) -> DataFrame:
    """``lang`` and ``lang_confidence`` of ``text`` (on the rows ``where`` holds; null on the others)."""
    found = identify_batch(F.col("text"))
    found = found if where is None else F.when(where, found)
    return df.withColumn("_lang", found).withColumns({c: F.col(f"_lang.{c}") for c in LANG_COLUMNS}).drop("_lang")


def language_reason(languages: tuple[str, ...], min_confidence: float) -> Column:
    """``language`` for a row whose ``lang`` is not one of ``languages`` (any, when empty) or whose
    confidence is below ``min_confidence``; null otherwise."""
    unknown = sorted(set(languages) - known_languages())
    if unknown:
        raise ValueError(
            f"etl.languages: {unknown} are not languages the identifier knows; it knows "
            f"{', '.join(sorted(known_languages()))}"
        )
    wrong = F.lit(False)
    if languages:
        wrong = ~F.col("lang").isin(*languages)
    if min_confidence > 0:
        wrong = wrong | (F.col("lang_confidence") < min_confidence)
    return F.when(wrong, F.lit(LANGUAGE))
