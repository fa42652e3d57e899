from pyspark.testing import assertDataFrameEqual

from etl.clean import clean_docs


def test_clean_normalises_and_marks_unusable_rows(spark):
    rows = [
        ("1", "Cafe\u0301  au\tlait\n\n", None),  # NFD e + combining accent -> NFC é; white space collapsed
        ("2", "a\u0000b\u0007c", None),  # control characters become spaces
        ("3", " \u00a0\u2003 ", None),  # only (Unicode) white space -> empty
        ("4", "x" * 13, None),  # longer than the cap
        ("5", None, None),  # null text stays null, no new reason
        ("6", "kept", "malformed_json"),  # an earlier reason is kept
    ]
    expected = [
        ("1", "Café au lait", None),
        ("2", "a b c", None),
        ("3", "", "empty_after_clean"),
        ("4", "x" * 13, "too_long"),
        ("5", None, None),
        ("6", "kept", "malformed_json"),
    ]
    schema = "id string, text string, reject_reason string"
    actual = spark.createDataFrame(rows, schema).transform(clean_docs, max_doc_chars=12)
    assertDataFrameEqual(actual, spark.createDataFrame(expected, schema))
