from pyspark.sql import functions as F

from etl.dedup import mark_exact_duplicates, with_content_hash
from etl.pii import first_card, luhn_valid, mask_pii, pii_counts


def test_luhn():
    assert luhn_valid("4111111111111111") and luhn_valid("5500005555555559")
    assert not luhn_valid("4111111111111112")


def test_emails_and_luhn_valid_cards_are_masked(spark):
    rows = [
        ("1", "write to jo.doe+x@mail.example.co.uk today"),
        ("2", "card 4111 1111 1111 1111 and 4111-1111-1111-1112"),  # second fails Luhn: kept
        ("3", "order 2024-01-01, id 123456789, tel 600 123 456"),  # no card-shaped number
        ("4", None),
        ("5", "a@b is not an address, x@y.z neither"),
    ]
    out = dict(mask_pii(spark.createDataFrame(rows, "id string, text string")).collect())
    assert out == {
        "1": "write to <EMAIL> today",
        "2": "card <CARD> and 4111-1111-1111-1112",
        "3": "order 2024-01-01, id 123456789, tel 600 123 456",
        "4": None,
        "5": "a@b is not an address, x@y.z neither",
    }
    assert pii_counts(spark.createDataFrame(list(out.items()), "id string, text string")) == {"email": 1, "card": 1}


def test_exact_duplicates_keep_the_smallest_id(spark):
    df = spark.createDataFrame([("b", "same"), ("a", "same"), ("c", "other"), ("d", "same")], "id string, text string")
    out = {
        r["id"]: r["is_duplicate"] for r in df.transform(with_content_hash).transform(mark_exact_duplicates).collect()
    }
    assert out == {"a": False, "b": True, "c": False, "d": True}


def test_first_card_finds_luhn_valid_numbers_in_the_jvm(spark):
    rows = [
        ("a", "card 4111-1111-1111-1112 then 5500 0055 5555 5559 and 4111111111111111"),  # first fails Luhn
        ("b", "order 2024-01-01, id 123456789, tel 600 123 456"),
        ("c", "4111111111111112 only"),  # 16 digits, wrong check digit
        ("d", None),
    ]
    df = spark.createDataFrame(rows, "id string, text string").select("id", first_card(F.col("text")).alias("card"))
    assert dict(df.collect()) == {"a": "5500 0055 5555 5559", "b": None, "c": None, "d": None}
