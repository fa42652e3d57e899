"""The pseudonymisation key comes from the environment only and is written nowhere: not to the
output, the report, validation results, MLflow (params, tags, store) nor the Delta tables."""

import json
import random

from tokenlake.etl.lake import read_table
from tokenlake.etl.pii import SECRET_ENV
from tokenlake.jobs.cli import EXIT_CONFIG, main
from tokenlake.synthetic.documents import CLASSES, make_document

KEY = "k3y-7f1e9a2c5d"


def test_pseudonymisation_key_never_leaves_the_environment(spark, tmp_path, capsys, caplog, monkeypatch):
    rng, labels = random.Random(3), sorted(CLASSES)
    docs = [{"id": f"d{i}", "text": make_document(rng, labels[i % 4]), "label": labels[i % 4]} for i in range(80)]
    for i in (0, 1):  # the same address in two documents, and another one
        docs[i]["text"] += " Write to jo.doe@example.com today."
    docs[2]["text"] += " Write to ann.roe@example.org today."
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text("".join(json.dumps(d) + "\n" for d in docs))
    work = tmp_path / "work"
    argv = [
        "run",
        "--input",
        str(corpus),
        "--work",
        str(work),
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--set",
        "etl.vocab_size=300",
        "--set",
        "etl.pseudonymise_pii=true",
        "--set",
        "train.baseline=false",
    ]

    monkeypatch.delenv(SECRET_ENV, raising=False)
    assert main(argv) == EXIT_CONFIG  # no key: refused before any work
    refused = capsys.readouterr()
    assert SECRET_ENV in refused.err and not work.exists()

    monkeypatch.setenv(SECRET_ENV, KEY)
    assert main(argv) == 0
    out = capsys.readouterr()
    report = json.loads((work / "report.json").read_text())
    silver = read_table(spark, report["tables"]["silver"]["path"], report["tables"]["silver"]["version"])
    texts = {r["id"]: r["text"] for r in silver.where("id IN ('d0', 'd1', 'd2')").collect()}
    pseudonyms = {i: t.split("Write to ")[1].split(" ")[0] for i, t in texts.items()}
    assert pseudonyms["d0"] == pseudonyms["d1"] != pseudonyms["d2"]  # consistent, and distinct per value
    assert all(
        p.startswith("<EMAIL_") and p.endswith(">") and len(p) == len("<EMAIL_>") + 12 for p in pseudonyms.values()
    )
    assert report["pii"]["email"] == 3

    written = [out.out, out.err, caplog.text]
    for path in work.rglob("*"):
        if path.is_file():
            written.append(path.read_bytes().decode("latin-1"))  # text, Parquet and the MLflow store alike
    from mlflow.tracking import MlflowClient

    run = MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}").get_run(report["training"]["mlflow_run_id"])
    written += [json.dumps(run.data.params), json.dumps(run.data.tags)]
    assert run.data.params["etl.pseudonymise_pii"] == "True" and len(written) > 50  # real content searched
    assert not any(KEY in text for text in written)
    assert not any("jo.doe@example.com" in text for text in written if "Write to" in text)  # no raw address left
