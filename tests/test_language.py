"""Language identification, the language gate and quality thresholds per language."""

import json
from collections import Counter

import pytest

from tokenlake.etl.clean import clean_docs
from tokenlake.etl.config import EtlConfig
from tokenlake.etl.language import identify, language_reason, with_language
from tokenlake.etl.quality import filter_quality
from tokenlake.jobs.config import load_config
from tokenlake.synthetic.generate import generate_corpus


def test_each_text_gets_its_language_and_a_confidence():
    assert identify("El río subió dos metros durante la noche y el ayuntamiento se reunió.")[0] == "es"
    assert identify("The river rose two metres overnight and the council met at dawn.")[0] == "en"
    lang, confidence = identify("La rivière a monté de deux mètres pendant la nuit.")
    assert lang == "fr" and 0.5 < confidence <= 1
    assert identify("1234 5678 -- 99") == ("und", 0.0) and identify("") == ("und", 0.0) and identify(None)[0] == "und"


def test_language_settings_are_checked_and_read_from_flags():
    assert load_config(None, ["etl.languages=[en, es]"]).etl.languages == ("en", "es")
    assert load_config(None, ["etl.languages=en"]).etl.languages == ("en",)
    cfg = load_config(None, ["etl.quality_by_lang={es: {min_mean_word_len: 2.5}}", "etl.min_lang_confidence=0.5"])
    assert cfg.etl.quality_by_lang == {"es": {"min_mean_word_len": 2.5}} and cfg.etl.min_lang_confidence == 0.5
    with pytest.raises(ValueError, match="ISO 639 codes"):
        EtlConfig(languages=("English",))
    with pytest.raises(ValueError, match=r"min_lang_confidence must be in \[0, 1\]"):
        EtlConfig(min_lang_confidence=2)
    with pytest.raises(ValueError, match="are not quality thresholds"):
        EtlConfig(quality_by_lang={"es": {"min_wordz": 2}})
    with pytest.raises(ValueError, match="did you mean 'email'"):
        EtlConfig(text_format="emial")
    with pytest.raises(ValueError, match=r"\['xx'\] are not languages the identifier knows"):
        language_reason(("en", "xx"), 0.0)


def test_the_gate_and_per_language_thresholds(spark):
    from pyspark.sql import functions as F

    rows = [
        ("en", "The river rose two metres overnight and the council met at dawn to plan the evacuation."),
        ("es", "El río subió dos metros durante la noche y el ayuntamiento se reunió al amanecer."),
        ("fr", "La rivière a monté de deux mètres pendant la nuit et le conseil municipal s'est réuni."),
    ]
    df = spark.createDataFrame(rows, "id string, text string").withColumn("reject_reason", F.lit(None).cast("string"))
    cfg = EtlConfig(languages=("en", "es"), quality_by_lang={"es": {"min_words": 20}})
    gate = language_reason(cfg.languages, cfg.min_lang_confidence)
    out = (  # as etl.pipeline.clean_pii chains them
        df.transform(with_language)
        .transform(filter_quality, rules=cfg)
        .withColumn("reject_reason", F.coalesce("reject_reason", gate))
    )
    assert {r["id"]: (r["lang"], r["reject_reason"]) for r in out.collect()} == {
        "en": ("en", None),
        "es": ("es", "too_few_words"),  # under Spanish's own floor, above the default one
        "fr": ("fr", "language"),
    }
    confidence = {r["id"]: r["lang_confidence"] for r in out.collect()}
    floor = (min(confidence.values()) + max(confidence.values())) / 2
    flagged = {r["id"] for r in out.where(language_reason((), floor).isNotNull()).collect()}
    assert flagged == {k for k, c in confidence.items() if c < floor} and 0 < len(flagged) < len(rows)


@pytest.mark.parametrize("lang", ["en", "es"])
def test_a_generated_corpus_in_either_language_passes_the_same_quality_rules(spark, tmp_path, lang):
    out = generate_corpus(tmp_path / f"{lang}.jsonl", 300, seed=5, lang=lang)
    docs = [json.loads(line) for line in out.open()]
    df = spark.createDataFrame([(d["id"], d["text"]) for d in docs], "id string, text string")
    cfg = EtlConfig()
    checked = (
        df.transform(clean_docs, max_doc_chars=cfg.max_doc_chars)
        .transform(with_language)
        .transform(filter_quality, rules=cfg)
        .collect()
    )
    assert [r["id"] for r in checked if r["reject_reason"]] == []
    # the generator mixes invented words into real ones, so only most documents read as the language
    found = Counter(r["lang"] for r in checked)
    assert found.most_common(1)[0][0] == lang and found[lang] > len(checked) / 2
