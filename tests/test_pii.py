import json
import re

import pytest
from pyspark.sql import functions as F

from tokenlake.etl.pii import (
    SECRET_ENV,
    TYPES,
    dni_valid,
    first_card,
    iban_valid,
    luhn_valid,
    mask_pii,
    mask_text,
    pii_counts,
    pseudonym,
)
from tokenlake.synthetic.generate import generate_corpus, truth_path
from tokenlake.synthetic.scores import pii_scores

SCHEMA = "id string, text string"


def test_checksums():
    assert luhn_valid("4111111111111111") and luhn_valid("5500005555555559")
    assert not luhn_valid("4111111111111112")
    assert iban_valid("GB82 WEST 1234 5698 7654 32") and iban_valid("ES9121000418450200051332")
    assert not iban_valid("GB83 WEST 1234 5698 7654 32") and not iban_valid("GB82")
    assert dni_valid("12345678Z") and dni_valid("X1234567L") and dni_valid("Y1234567X")
    assert not dni_valid("12345678A") and not dni_valid("X1234567A")


ROWS = [  # input, masked: every type, its look-alikes, and rows that must not change
    ("email", "write to jo.doe+x@mail.example.co.uk today", "write to <EMAIL> today"),
    ("not-email", "a@b is not an address, x@y.z neither", "a@b is not an address, x@y.z neither"),
    ("cards", "card 4111 1111 1111 1111 and 4111-1111-1111-1112", "card <CARD> and 4111-1111-1111-1112"),
    ("card-plain", "pay 5500005555555559 or 378282246310005.", "pay <CARD> or <CARD>."),
    ("phones-intl", "call +44 20 7946 0958, +34 612 345 678 or +1 (555) 123-4567", "call <PHONE>, <PHONE> or <PHONE>"),
    ("phones-national", "ring (555) 123-4567 or 555-123-4567 today", "ring <PHONE> or <PHONE> today"),
    (
        "phones-es",
        "llama al 612 34 56 78 o al 612345678 o al 912 345 678",
        "llama al <PHONE> o al <PHONE> o al <PHONE>",
    ),
    (
        "ipv4",
        "from 192.168.0.1 and 10.0.0.255. not 256.1.1.1 nor 1.2.3",
        "from <IPV4> and <IPV4>. not 256.1.1.1 nor 1.2.3",
    ),
    (
        "ipv6",
        "hosts 2001:0db8:85a3:0000:0000:8a2e:0370:7334, fe80::1 and ::ffff:192.0.2.128 at 12:30:45",
        "hosts <IPV6>, <IPV6> and <IPV6> at 12:30:45",
    ),
    (
        "iban",
        "to GB82 WEST 1234 5698 7654 32 or ES9121000418450200051332, not GB83 WEST 1234 5698 7654 32",
        "to <IBAN> or <IBAN>, not GB83 WEST 1234 5698 7654 32",
    ),
    ("dni", "DNI 12345678Z, NIE X1234567L; wrong 12345678A", "DNI <DNI>, NIE <DNI>; wrong 12345678A"),
    (
        "decoys",
        "on 2024-03-01 for $19.99 (19,99€) with v2.10.3 in 1987, 42 times, id 123456789, 4111 1111 1111 1112",
        "on 2024-03-01 for $19.99 (19,99€) with v2.10.3 in 1987, 42 times, id 123456789, 4111 1111 1111 1112",
    ),
    ("plain", "Pasta, not stock.", "Pasta, not stock."),
    ("empty", "", ""),
    ("null", None, None),
]


def test_every_type_is_masked_and_look_alikes_are_not(spark):
    df = spark.createDataFrame([(i, text) for i, text, _ in ROWS], SCHEMA)
    assert dict(mask_pii(df).collect()) == {i: masked for i, _, masked in ROWS}
    assert {i: None if t is None else mask_text(t) for i, t, _ in ROWS} == {i: m for i, _, m in ROWS}


def test_pii_counts_every_type_plain_and_pseudonymised(spark, monkeypatch):
    df = spark.createDataFrame([(i, text) for i, text, _ in ROWS], SCHEMA)
    expected = {"email": 1, "phone": 8, "card": 3, "ipv4": 2, "ipv6": 3, "iban": 2, "dni": 2}
    assert pii_counts(mask_pii(df)) == expected
    monkeypatch.setenv(SECRET_ENV, "k1")
    assert pii_counts(mask_pii(df, pseudonymise=True)) == expected
    assert pii_counts(spark.createDataFrame([("a", None), ("b", "")], SCHEMA)) == dict.fromkeys(TYPES, 0)


def test_pseudonyms_are_consistent_keyed_and_the_key_stays_hidden(spark, monkeypatch, capsys):
    key = "s3cr3t-key-value-9f8e"
    rows = [
        ("1", "mail Jo@Example.com or call +34 612 345 678"),
        ("2", "again jo@example.com, tel +34612345678, card 4111-1111-1111-1111"),
        ("3", "card 4111 1111 1111 1111 and other@example.com"),
        ("4", "no pii here"),
    ]
    df = spark.createDataFrame(rows, SCHEMA)
    monkeypatch.setenv(SECRET_ENV, key)
    masked = mask_pii(df, pseudonymise=True)
    out = dict(masked.collect())
    found = {i: re.findall(r"<[A-Z0-9]+_[0-9a-f]{12}>", t) for i, t in out.items()}
    email, phone = found["1"]
    assert email.startswith("<EMAIL_") and phone.startswith("<PHONE_")
    assert found["2"][:2] == [email, phone]  # same value (however written): same pseudonym
    assert found["3"][0] == found["2"][2] and found["3"][1] != email
    assert out["4"] == "no pii here"
    assert email == pseudonym("email", "jo@example.com", key.encode())
    monkeypatch.setenv(SECRET_ENV, "another key")
    assert dict(mask_pii(df, pseudonymise=True).collect())["1"] != out["1"]
    capsys.readouterr()
    masked.explain(extended=True)
    plan = capsys.readouterr().out
    assert "mask_pii_batch" in plan and key not in plan and "another key" not in plan
    for value in ("", None):
        if value is None:
            monkeypatch.delenv(SECRET_ENV)
        else:
            monkeypatch.setenv(SECRET_ENV, value)
        with pytest.raises(ValueError, match=SECRET_ENV) as err:
            mask_pii(df, pseudonymise=True)
        assert key not in str(err.value)
    assert dict(mask_pii(df).collect())["1"] == "mail <EMAIL> or call <PHONE>"  # plain needs no key


def test_first_card_finds_luhn_valid_numbers_in_the_jvm(spark):
    rows = [
        ("a", "card 4111-1111-1111-1112 then 5500 0055 5555 5559 and 4111111111111111"),  # first fails Luhn
        ("b", "order 2024-01-01, id 123456789, tel 600 123 456"),
        ("c", "4111111111111112 only"),  # 16 digits, wrong check digit
        ("d", None),
        ("e", "IBAN GB82 WEST 0000 0000 0000 00"),  # Luhn-valid digits inside an IBAN are no card
    ]
    df = spark.createDataFrame(rows, SCHEMA).select("id", first_card(F.col("text")).alias("card"))
    assert dict(df.collect()) == {"a": "5500 0055 5555 5559", "b": None, "c": None, "d": None, "e": None}


def test_pii_scores_are_honest():
    truth = {"pii": [{"type": "phone", "value": "555-123-4567"}, {"type": "card", "value": "4111111111111111"}]}
    truth["decoys"] = [{"type": "year", "value": "1987"}]
    scores = pii_scores(
        [
            (truth, "call <PHONE> or pay 4111111111111111 in 1987"),  # card missed
            (truth, "call <PHONE> or pay <CARD> in <PHONE>"),  # decoy destroyed, one mask too many
            ({"pii": [], "decoys": []}, None),
        ]
    )
    assert scores["phone"] == {"recall": 1.0, "precision": 2 / 3, "planted": 2, "masked": 3}
    assert scores["card"] == {"recall": 0.5, "precision": 1.0, "planted": 2, "masked": 1}
    assert scores["email"] == {"recall": 1.0, "precision": 1.0, "planted": 0, "masked": 0}
    assert scores["decoys"] == {"planted": 2, "decoys_lost": 1}


@pytest.mark.parametrize("lang", ["en", "es"])
def test_generated_pii_is_masked_with_high_recall_and_precision(spark, tmp_path, lang):
    out = generate_corpus(tmp_path / f"{lang}.jsonl", 1000, seed=21, pii_rate=0.5, lang=lang)
    truth = [json.loads(line) for line in truth_path(out).read_text(encoding="utf-8").splitlines()]
    df = spark.createDataFrame([(t["id"], t["clean_text"]) for t in truth], SCHEMA)
    masked = dict(mask_pii(df).collect())
    scores = pii_scores((t, masked[t["id"]]) for t in truth)
    types = {"email", "phone", "card", "ipv4", "ipv6", "iban"} | ({"dni"} if lang == "es" else set())
    assert {t for t in TYPES if scores[t]["planted"]} == types
    for t in TYPES:
        assert scores[t]["recall"] >= 0.99 and scores[t]["precision"] >= 0.99, (t, scores[t])
    assert scores["decoys"]["planted"] >= 500 and scores["decoys"]["decoys_lost"] == 0
    assert sum(s["planted"] for t, s in scores.items() if t in TYPES) >= 900
