from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from tokenlake.etl.clean import clean_docs
from tokenlake.etl.quality import filter_quality


def test_clean_normalises_and_marks_unusable_rows(spark):
    rows = [
        ("1", "Cafe\u0301  au\tlait\n\n", None),  # NFD e + combining accent -> NFC é; white space collapsed
        ("2", "a\u0000b\u0007c", None),  # control characters become spaces
        ("3", " \u00a0\u2003 ", None),  # only (Unicode) white space -> empty
        ("4", "x" * 13, None),  # longer than the cap
        ("5", None, None),  # null text stays null, no new reason
        ("6", "kept", "malformed_json"),  # an earlier reason is kept
        ("7", "<p>Fish &amp; <b>chips</b></p><p>caf&eacute; &#39;ok&#x27;</p>", None),  # markup, entities
        ("8", "<script>var x = '<p>';</script><style>p {}</style>Body", None),  # script/style blocks go
        ("9", "line one \r\n\r\n  line  two \rWe use cookies to improve it. Accept all cookies\n", None),
        ("10", "Please enable JavaScript to view this page.\nLorem ipsum dolor sit amet", None),
        ("11", "a &lt;b&gt; tag in text stays text", None),  # decoded after markup is stripped
    ]
    expected = [
        ("1", "Café au lait", None),
        ("2", "a b c", None),
        ("3", "", "empty_after_clean"),
        ("4", "x" * 13, "too_long"),
        ("5", None, None),
        ("6", "kept", "malformed_json"),
        ("7", "Fish & chips\ncafé 'ok'".replace("\n", " "), None),
        ("8", "Body", None),
        ("9", "line one\nline two", None),
        ("10", "", "empty_after_clean"),
        ("11", "a <b> tag in text stays text", None),
    ]
    schema = "id string, text string, reject_reason string"
    actual = spark.createDataFrame(rows, schema).transform(clean_docs, max_doc_chars=30)
    expected[3] = ("4", "x" * 13, None)  # 13 chars is within 30: the cap is checked below
    assertDataFrameEqual(actual, spark.createDataFrame(expected, schema))
    capped = spark.createDataFrame([("4", "x" * 13, None)], schema).transform(clean_docs, max_doc_chars=12)
    assert capped.first()["reject_reason"] == "too_long"


def test_every_boilerplate_line_goes(spark):
    """Each kind of line the boilerplate pattern names goes, whatever its case: the cheap scan for
    its words that comes first lets none of them through."""
    lines = [
        "We use cookies to improve your visit.",
        "Accept all cookies",
        "accept cookies",
        "Read our Cookie Policy.",
        "cookie settings",
        "COOKIE PREFERENCES",
        "Please enable JavaScript.",
        "This site requires JavaScript",
        "JavaScript is disabled in your browser",
        "Turn on javascript to continue",
        "javascript must be enabled",
        "Lorem ipsum dolor sit amet",
    ]
    df = spark.createDataFrame([(f"{line}\nkept text",) for line in lines], "text string")
    out = [r["text"] for r in df.transform(clean_docs, max_doc_chars=1000).collect()]
    assert out == ["kept text"] * len(lines)


def test_urls_kept_masked_or_removed(spark):
    df = spark.createDataFrame([("see https://ex.am/p?q=1 and www.site.org now",)], "text string")
    out = {
        m: df.transform(clean_docs, max_doc_chars=100, url_mode=m).first()["text"] for m in ("keep", "mask", "remove")
    }
    assert out == {
        "keep": "see https://ex.am/p?q=1 and www.site.org now",
        "mask": "see <URL> and <URL> now",
        "remove": "see and now",
    }


def test_quality_rules_name_the_first_failed_rule(spark):
    from tokenlake.etl.config import QUALITY_FIELDS, EtlConfig

    cfg = EtlConfig()
    rows = [
        ("ok", "The cat sat on the mat and looked at the garden."),
        ("few", "Too short"),
        (
            "long_words",
            "Supercalifragilisticexpialidociousness antidisestablishmentarianismus pneumonoultramicroscopic",
        ),
        ("short_words", "a b c d e f g h"),
        ("alpha", "12 34 56 78 ok 90 11 22"),
        ("symbols", "#tag #more #hash #x words here"),
        ("digits", "call 5551234567 or 5559876543 now"),
        ("lines", "same line\nsame line\nsame line\nother"),
        ("ngrams", "buy it now buy it now buy it now buy it now"),
        ("earlier", "Too short"),  # an earlier stage's reason stays
    ]

    def reasons(rules):
        earlier = F.when(F.col("id") == "earlier", F.lit("too_long"))
        df = spark.createDataFrame(rows, "id string, text string").withColumn("reject_reason", earlier)
        return dict(df.transform(filter_quality, rules=rules).select("id", "reject_reason").collect())

    assert reasons(cfg) == {
        "ok": None,
        "few": "too_few_words",
        "long_words": "mean_word_length",
        "short_words": "mean_word_length",
        "alpha": "low_alpha_ratio",
        "symbols": "high_symbol_ratio",
        "digits": "high_digit_ratio",
        "lines": "repeated_lines",
        "ngrams": "repeated_ngrams",
        "earlier": "too_long",
    }
    off = EtlConfig(**dict.fromkeys(QUALITY_FIELDS, 0))
    assert set(reasons(off).values()) == {None, "too_long"}  # every rule can be switched off


def test_repeated_trigram_share_is_exact(spark):
    """The share of word 3-grams that repeat an earlier one, counted over whole 3-grams."""
    from tokenlake.etl.quality import _repeated_share, _word_trigrams, words_of

    rows = [
        ("cycle", "a b c a b c"),  # abc bca cab abc: one repeat in four
        ("joined", "ab c d a bc d"),  # "ab c d" and "a bc d" are different 3-grams
        ("lines", "x y\nz x y\nz"),  # a line break separates words like a space
        ("short", "two words"),  # no 3-gram: nothing repeats
    ]
    share = _repeated_share(_word_trigrams(words_of(F.col("text"))))
    got = dict(spark.createDataFrame(rows, "id string, text string").select("id", share).collect())
    assert got == {"cycle": 0.25, "joined": 0.0, "lines": 0.25, "short": 0.0}


def test_cleaning_cleaned_and_masked_text_changes_nothing(spark):
    """Silver's text cleaned again (``tokenlake predict`` on silver) keeps its placeholders: they are
    not markup. The list matches what masking writes."""
    from tokenlake.etl.clean import PLACEHOLDER_TAGS, URL_PLACEHOLDER
    from tokenlake.etl.pii import PLACEHOLDERS

    assert {p.strip("<>") for p in [*PLACEHOLDERS.values(), URL_PLACEHOLDER]} == set(PLACEHOLDER_TAGS)
    masked = "Bank loan: mail <EMAIL>, card <CARD>, call <PHONE_0123456789ab> or see <URL>. <b>Bold</b><p>end</p>"
    df = spark.createDataFrame([("1", masked)], "id string, text string")
    once = clean_docs(df, max_doc_chars=1000).first()["text"]
    assert once == "Bank loan: mail <EMAIL>, card <CARD>, call <PHONE_0123456789ab> or see <URL>. Bold end"
    again = clean_docs(spark.createDataFrame([("1", once)], "id string, text string"), max_doc_chars=1000)
    assert again.first()["text"] == once
