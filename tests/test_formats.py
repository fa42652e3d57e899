"""Web archives, HTML pages and e-mail: real-format files made here (a WARC written by warcio, the
reader's own writer; an mbox written by Python's ``mailbox``) decode to exact texts and meta."""

import gzip
import io
import json
import mailbox
from email.message import EmailMessage

from tokenlake.etl.archives import file_records, path_records
from tokenlake.etl.formats import decode_one, html_of_bytes, html_text

PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>River</title>
<script>var tracking = 1;</script></head><body>
<nav><a href="/">Home</a> | <a href="/news">News</a> | <a href="/contact">Contact</a></nav>
<div class="cookie-banner">We use cookies to improve your experience. Accept all cookies</div>
<article><h1>The river report</h1>
<p>The river rose two metres overnight and the town council met at dawn to plan the evacuation.</p>
<p>Residents were asked to move their cars away from the bank before the afternoon tide.</p>
</article>
<footer><p>Copyright 2024 Example News. All rights reserved.</p><a href="/privacy">Privacy policy</a></footer>
</body></html>"""
PAGE_TEXT = (
    "The river report\n\n"
    "The river rose two metres overnight and the town council met at dawn to plan the evacuation.\n\n"
    "Residents were asked to move their cars away from the bank before the afternoon tide."
)
RECORD_ID = "<urn:uuid:11111111-1111-1111-1111-111111111111>"


def write_warc(fh) -> None:
    """warcinfo, request, an HTML response (Latin-1, named in its header), an image response."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    writer = WARCWriter(fh, gzip=True)
    writer.write_record(writer.create_warcinfo_record("crawl.warc.gz", {"software": "tokenlake tests"}))
    request = io.BytesIO(b"GET /river HTTP/1.1\r\nHost: example.com\r\n\r\n")
    writer.write_record(writer.create_warc_record("http://example.com/river", "request", payload=request))
    page = PAGE.replace("metres", "metres (señal)").encode("latin-1")
    http = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=ISO-8859-1")], protocol="HTTP/1.1")
    headers = {"WARC-Date": "2024-03-01T10:00:01Z", "WARC-Record-ID": RECORD_ID}
    writer.write_record(
        writer.create_warc_record(
            "http://example.com/river", "response", payload=io.BytesIO(page), http_headers=http,
            warc_headers_dict=headers,
        )
    )  # fmt: skip
    image = StatusAndHeaders("200 OK", [("Content-Type", "image/png")], protocol="HTTP/1.1")
    writer.write_record(
        writer.create_warc_record(
            "http://example.com/logo.png", "response", payload=io.BytesIO(b"\x89PNG\r\n"), http_headers=image
        )
    )


def messages() -> list[EmailMessage]:
    """A multipart/alternative message with quoted-printable UTF-8, an HTML part and a PDF; a
    base64 HTML-only message; a base64 Latin-1 plain message with an image attachment."""
    first = EmailMessage()
    first["From"] = "Ana Pérez <ana@Example.ORG>"
    first["To"] = "bob@example.com"
    first["Subject"] = "Reunión del lunes"
    first["Date"] = "Mon, 04 Mar 2024 09:30:00 +0100"
    first.set_content(
        "Hola Bob,\nla reunión es el lunes a las diez.\nFrom now on we meet weekly.\n", cte="quoted-printable"
    )
    first.add_alternative("<html><body><p>Hola Bob,</p><p>la reunión es el lunes.</p></body></html>", subtype="html")
    first.add_attachment(b"%PDF-1.4 agenda", maintype="application", subtype="pdf", filename="agenda.pdf")
    second = EmailMessage()
    second["From"] = "news@shop.example"
    second["Subject"] = "Deals"
    html = "<html><body><nav>Menu | Cart</nav><p>Big deals on garden tools this week only.</p></body></html>"
    second.set_content(html, subtype="html", cte="base64")
    third = EmailMessage()
    third["From"] = "Zoë <zoe@mail.example.net>"
    third["Subject"] = "Photos"
    third.set_content("Les photos de la fête sont jointes.\n", charset="iso-8859-1", cte="base64")
    third.add_attachment(b"\x89PNG\r\n", maintype="image", subtype="png", filename="fete.png")
    return [first, second, third]


def write_mbox(path) -> None:
    box = mailbox.mbox(str(path))
    for msg in messages():
        box.add(msg)
    box.flush()
    box.close()


MESSAGE_RECORDS = [
    {
        "text": "Hola Bob,\nla reunión es el lunes a las diez.\nFrom now on we meet weekly.\n",
        "attachments": "1",
        "subject": "Reunión del lunes",
        "sender_domain": "example.org",
        "date": "2024-03-04T09:30:00+01:00",
    },
    {"text": "Big deals on garden tools this week only.", "attachments": "0", "subject": "Deals",
     "sender_domain": "shop.example"},
    {"text": "Les photos de la fête sont jointes.\n", "attachments": "1", "subject": "Photos",
     "sender_domain": "mail.example.net"},
]  # fmt: skip


def test_a_warc_gives_its_html_pages_and_a_reason_for_every_other_record():
    buf = io.BytesIO()
    write_warc(buf)
    buf.seek(0)
    records = list(file_records(buf, "warc"))
    assert [r[1] for r in records] == ["not_html", "not_html", None, "not_html"]
    assert [json.loads(r[0])["warc_type"] for r in records if r[1]] == ["warcinfo", "request", "response"]
    page = json.loads(records[2][0])
    assert page == {
        "text": PAGE_TEXT.replace("metres", "metres (señal)"),
        "id": RECORD_ID,
        "url": "http://example.com/river",
        "crawl_date": "2024-03-01T10:00:01Z",
        "http_status": "200",
        "content_type": "text/html; charset=ISO-8859-1",
    }


def test_a_truncated_warc_keeps_what_it_read_and_says_the_rest_is_unreadable(tmp_path):
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    buf = io.BytesIO()
    writer = WARCWriter(buf, gzip=True)
    http = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
    for i in range(60):
        body = f"<html><body><p>Page {i}: " + " ".join(f"word{i * j % 997}" for j in range(200)) + "</p></body></html>"
        writer.write_record(
            writer.create_warc_record(f"http://example.com/{i}", "response", payload=io.BytesIO(body.encode()),
                                      http_headers=http)
        )  # fmt: skip
    data = buf.getvalue()
    path = tmp_path / "cut.warc.gz"
    path.write_bytes(data[: len(data) - 100])  # the last record's gzip member breaks off
    records = list(path_records(str(path), "warc", text_column="text", id_column="id"))
    pages = [json.loads(raw)["text"] for raw, why in records if why is None]
    assert records[-1][1] == "unreadable_file" and "EOFError" in records[-1][0]
    assert 20 < len(pages) < 60 and [p.split(":")[0] for p in pages] == [f"Page {i}" for i in range(len(pages))]


def test_an_mbox_gives_each_body_without_headers_and_its_meta(tmp_path):
    write_mbox(tmp_path / "list.mbox")
    assert b"\n>From now on" in (tmp_path / "list.mbox").read_bytes()  # mailbox escaped it; we unescape
    with open(tmp_path / "list.mbox", "rb") as fh:
        records = list(file_records(fh, "mbox"))
    assert [r[1] for r in records] == [None, None, None]
    assert [json.loads(r[0]) for r in records] == MESSAGE_RECORDS
    gz = tmp_path / "list.mbox.gz"
    gz.write_bytes(gzip.compress((tmp_path / "list.mbox").read_bytes()))
    assert [json.loads(r[0]) for r in path_records(str(gz), "mbox", text_column="body", id_column="id")] == [
        {"body" if k == "text" else k: v for k, v in m.items()} for m in MESSAGE_RECORDS
    ]


def test_an_eml_without_headers_is_unparseable_and_kept_as_read():
    assert list(file_records(io.BytesIO(b"just some words, no headers\n"), "eml")) == [
        ("just some words, no headers\n", "unparseable_email")
    ]
    assert json.loads(next(file_records(io.BytesIO(messages()[1].as_bytes()), "eml"))[0]) == MESSAGE_RECORDS[1]


def test_an_html_page_keeps_its_main_content_and_paragraphs():
    assert html_text(PAGE) == PAGE_TEXT
    assert list(file_records(io.BytesIO(PAGE.encode()), "html")) == [(json.dumps({"text": PAGE_TEXT}), None)]
    latin = "<html><head><meta charset='iso-8859-1'></head><body><p>Caf\xe9 ol\xe9</p></body></html>"
    assert html_text(html_of_bytes(latin.encode("latin-1"))) == "Café olé"


def test_a_text_column_decodes_as_email_or_html():
    text, meta, reason = decode_one(messages()[0].as_string(), "email")
    assert (text, reason) == (MESSAGE_RECORDS[0]["text"], None)
    assert json.loads(meta) == {k: v for k, v in MESSAGE_RECORDS[0].items() if k != "text"}
    assert decode_one("Subject-less words and nothing else", "email") == (
        "Subject-less words and nothing else",
        None,
        "unparseable_email",
    )
    assert decode_one(PAGE, "html") == (PAGE_TEXT, None, None)
    assert decode_one(None, "email") == (None, None, None)


SPANISH_PAGE = """<html><head><title>Noticias</title></head><body><header><nav><a href="/">Inicio</a>
<a href="/deportes">Deportes</a></nav></header><main><h1>El puerto reabre</h1>
<p>El puerto de la ciudad reabrió esta mañana después de tres días de tormenta.</p>
<p>Los pescadores volvieron al mar antes del amanecer.</p></main>
<footer>Aviso legal | Política de privacidad</footer></body></html>"""


MAILDIR_BODY = "The shed roof was repaired on Saturday and the gutters were cleaned at last."


def _message(body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Carol <carol@lists.example.com>"
    msg["Subject"] = "Quarterly garden report"
    msg["Date"] = "Tue, 05 Mar 2024 16:00:00 +0000"
    msg.set_content(body + "\n", cte="base64")
    return msg


def _raw_message() -> str:
    return _message("The tomatoes did well this quarter and the beans need more water.").as_string()


def test_a_run_reads_web_archives_pages_and_mail_and_gates_languages(spark, tmp_path):
    from tokenlake.etl.config import EtlConfig
    from tokenlake.etl.lake import read_table
    from tokenlake.etl.pipeline import run_etl

    src = tmp_path / "in"
    src.mkdir()
    with open(src / "crawl.warc.gz", "wb") as fh:
        write_warc(fh)  # one page, three records that are not
    write_mbox(src / "list.mbox")  # Spanish, English, French (gated out)
    (src / "bad.eml").write_bytes(b"no headers here, only words\n")
    (src / "cur").mkdir()  # a maildir's file names have no extension: with text_format=email, a message each
    (src / "cur" / "1700000000.M1P2.host:2,S").write_bytes(_message(MAILDIR_BODY).as_bytes())
    (src / "puerto.html").write_text(SPANISH_PAGE, encoding="utf-8")
    (src / "raw.jsonl").write_text(  # etl.text_format=email: the text field is a raw message
        json.dumps({"id": "m1", "text": _raw_message(), "label": "x"}) + "\n"
        + json.dumps({"id": "m2", "text": "not a message at all", "label": "x"}) + "\n"
    )  # fmt: skip
    cfg = EtlConfig(
        task="causal-lm", text_format="email", languages=("en", "es"), split_fractions=(1.0, 0.0, 0.0),
        vocab_size=300, min_files=1,
    )  # fmt: skip
    result = run_etl(spark, str(src), tmp_path / "work", cfg)

    assert result.reject_reasons == {"not_html": 3, "unparseable_email": 2, "language": 1}
    rows = result.rows
    assert rows["read"] == 4 + 3 + 1 + 1 + 1 + 2 == rows["clean"] + rows["quarantined"]
    silver = {
        r["source_file"].rsplit("/", 1)[-1] + ":" + r["id"][:8]: r
        for r in read_table(spark, result.tables["silver"]["path"]).collect()
    }
    texts = sorted(r["text"] for r in silver.values())
    assert texts == sorted(
        [
            PAGE_TEXT.replace("metres", "metres (señal)").replace("\n\n", "\n"),
            "El puerto reabre\n"
            "El puerto de la ciudad reabrió esta mañana después de tres días de tormenta.\n"
            "Los pescadores volvieron al mar antes del amanecer.",
            MESSAGE_RECORDS[0]["text"].strip(),
            MESSAGE_RECORDS[1]["text"],
            "The tomatoes did well this quarter and the beans need more water.",
            MAILDIR_BODY,
        ]
    )  # cleaning drops the blank lines between paragraphs
    assert not any(h in t for t in texts for h in ("Subject:", "From:", "Content-Type", "Inicio", "Aviso legal"))
    by_text = {r["text"]: r for r in silver.values()}
    page = by_text[texts[[t.startswith("The river") for t in texts].index(True)]]
    assert (page["id"], page["meta"]["url"], page["meta"]["crawl_date"]) == (
        RECORD_ID, "http://example.com/river", "2024-03-01T10:00:01Z"
    )  # fmt: skip
    mail = by_text["The tomatoes did well this quarter and the beans need more water."]
    assert {k: mail["meta"][k] for k in ("subject", "sender_domain", "date", "attachments")} == {
        "subject": "Quarterly garden report", "sender_domain": "lists.example.com",
        "date": "2024-03-05T16:00:00+00:00", "attachments": "0",
    }  # fmt: skip
    assert by_text[MESSAGE_RECORDS[1]["text"]]["lang"] == "en" and by_text[texts[0]]["lang"] in ("en", "es")
    assert all(0 < r["lang_confidence"] <= 1 for r in silver.values())
    assert sum(result.languages.values()) == 6 and set(result.languages) <= {"en", "es"}
    quarantine = read_table(spark, result.tables["quarantine"]["path"])
    gated = quarantine.where("reject_reason = 'language'").collect()
    assert [(r["lang"], r["stage"]) for r in gated] == [("fr", "clean")]
    assert gated[0]["raw"] == MESSAGE_RECORDS[2]["text"]  # the bronze text, as cleaning read it


def test_predict_reads_its_input_as_the_model_was_trained(spark, tmp_path):
    """``tokenlake predict`` decodes with the model's ``text_format``: raw messages in a JSON Lines
    file, and a folder of extension-less messages, give the same bodies the ETL trained on."""
    from tokenlake.jobs.predict import read_input

    (tmp_path / "in" / "cur").mkdir(parents=True)
    (tmp_path / "in" / "raw.jsonl").write_text(json.dumps({"id": "m1", "text": _raw_message()}) + "\n")
    (tmp_path / "in" / "cur" / "1700000001.M2P3.host:2,S").write_bytes(_message(MAILDIR_BODY).as_bytes())
    settings = {"text_column": "text", "id_column": "id", "label_column": "label", "text_format": "email"}
    rows = read_input(spark, str(tmp_path / "in"), settings).collect()
    assert sorted(r["text"] for r in rows) == [  # as decoded: cleaning comes next
        MAILDIR_BODY + "\n",
        "The tomatoes did well this quarter and the beans need more water.\n",
    ]
    assert [r["reject_reason"] for r in rows] == [None, None]
    before = read_input(spark, str(tmp_path / "in" / "raw.jsonl"), {**settings, "text_format": "auto"}).first()
    assert before["text"].startswith("From: Carol") and "Subject: Quarterly garden report" in before["text"]
