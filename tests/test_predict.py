"""From a trained model to use: the logged classifier carries what it needs, the registry gate,
and ``tokenlake predict`` on files and on a Delta table version (read = scored + quarantined)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tokenlake.jobs.cli import EXIT_CONFIG, EXIT_INPUT, main

TEXTS = ["the striker scored a goal in the match and the team won the league", "Pasta, not stock. A week.",
         "Shares fell as the bank raised interest rates on loans"]  # fmt: skip


@pytest.fixture(scope="module")
def trained(etl_work, tmp_path_factory):
    """A copy of the ETL work dir with one trained, logged and registered classifier."""
    work = tmp_path_factory.mktemp("predict") / "work"
    shutil.copytree(etl_work, work)
    # three epochs: a confident model, whose int8 export keeps its accuracy to a point, not a coin-flip one
    assert main(["train", "--work", str(work), "--epochs", "3", "--num-processes", "1"]) == 0
    report = json.loads((work / "report.json").read_text())
    return work, report


def _tracking(work) -> str:
    import mlflow

    uri = f"sqlite:///{work / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    return uri


def test_the_logged_model_predicts_label_names_from_raw_text_in_a_fresh_process(trained):
    import numpy as np
    import torch
    from mlflow.models import Model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    work, report = trained
    uri = _tracking(work)
    model_uri = report["training"]["model"]["logged_model_uri"]
    script = (
        "import json, sys, mlflow, pandas as pd\n"
        f"mlflow.set_tracking_uri({uri!r})\n"
        f"model = mlflow.pyfunc.load_model({model_uri!r})\n"
        f"out = model.predict(pd.DataFrame({{'text': {TEXTS!r}}}))\n"
        "print(json.dumps(out.to_dict(orient='list')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    labels = report["tokenizer"]["labels"]
    assert set(out["label"]) <= set(labels) and len(out["label"]) == len(TEXTS)
    # the same labels and probabilities as the trained weights, run here on the same token ids
    trained_model = AutoModelForSequenceClassification.from_pretrained(str(work / "model")).eval()
    tok = AutoTokenizer.from_pretrained(str(work / "tokenizer"))
    batch = tok(TEXTS, return_tensors="pt", padding=True, truncation=True, max_length=128)
    with torch.no_grad():
        probs = torch.softmax(trained_model(**batch).logits, dim=1).numpy()
    assert out["label"] == [labels[i] for i in probs.argmax(axis=1)]
    assert np.allclose([out[f"prob_{n}"] for n in labels], probs.T, atol=1e-5)
    assert np.allclose(out["score"], probs.max(axis=1), atol=1e-5)
    # what it carries: a signature, an input example, pinned requirements, nothing pickled
    local = __import__("mlflow").artifacts.download_artifacts(model_uri)
    meta = Model.load(local)
    assert meta.signature is not None and meta.signature.inputs.input_names() == ["text"]
    assert meta.saved_input_example_info is not None
    pinned = (__import__("pathlib").Path(local) / "requirements.txt").read_text()
    assert all(f"{p}==" in pinned for p in ("torch", "transformers", "tokenizers", "mlflow"))
    assert not list(__import__("pathlib").Path(local).rglob("*.pkl"))
    settings = json.loads(next(__import__("pathlib").Path(local).rglob("tokenlake.json")).read_text())
    assert settings["labels"] == labels and settings["max_len"] == 128 and settings["task"] == "classification"
    assert settings["gold"]["version"] == report["training"]["data"]["version"]


def test_every_run_registers_a_candidate_with_a_model_card(trained):
    from mlflow import MlflowClient

    work, report = trained
    _tracking(work)
    registry = report["registry"]
    assert registry["name"] == "tokenlake" and "candidate" in registry["aliases"]
    client = MlflowClient()
    assert int(client.get_model_version_by_alias("tokenlake", "candidate").version) == registry["version"]
    baseline = report["training"]["metrics"]["baseline_test_accuracy"]
    assert registry["promoted"] == (report["training"]["metrics"]["test_accuracy"] > baseline), registry["reason"]
    run = client.get_run(report["training"]["mlflow_run_id"])
    assert run.data.tags["registry.version"] == str(registry["version"])
    card = client.download_artifacts(run.info.run_id, "model_card.md")
    text = __import__("pathlib").Path(card).read_text()
    assert "## Data lineage" in text and f"gold version {report['training']['data']['version']}" in text
    assert f"{baseline:.4f}" in text and "## Limits" in text


def _worse_model(work, good_uri: str) -> str:
    """The good model's bundle with its classifier head zeroed (it predicts one label for every
    text), logged as a new run's model; return its URI."""
    import mlflow
    import torch
    from transformers import AutoModelForSequenceClassification

    from tokenlake.training.packaging import local_bundle, log_classifier

    bundle = local_bundle(good_uri, dst=str(work / "worse-download"))
    copy = work / "worse-bundle"
    shutil.copytree(bundle, copy)
    model = AutoModelForSequenceClassification.from_pretrained(str(copy / "model"))
    with torch.no_grad():
        for p in model.classifier.parameters():
            p.zero_()
    model.save_pretrained(str(copy / "model"))
    with mlflow.start_run():
        return log_classifier(copy, ["an example"]).model_uri


def test_the_champion_moves_only_to_a_model_that_beats_it_on_the_same_test_rows(trained):
    from mlflow import MlflowClient

    from tokenlake.training.registry import register_and_gate

    work, report = trained
    _tracking(work)
    client = MlflowClient()
    good = report["registry"]["version"]
    client.set_registered_model_alias("tokenlake", "champion", str(good))
    silver = report["tables"]["silver"]
    worse_uri = _worse_model(work, report["training"]["model"]["logged_model_uri"])
    # the baseline is out of the way (0.0): the champion alone decides
    refused = register_and_gate(worse_uri, "tokenlake", test_accuracy=1.0, baseline_accuracy=0.0, silver=silver,
                                gate_rows=400)  # fmt: skip
    assert refused["promoted"] is False and "does not beat champion" in refused["reason"]
    assert refused["champion"]["accuracy"] > refused["candidate_accuracy"] and refused["eval_rows"] > 0
    assert int(client.get_model_version_by_alias("tokenlake", "champion").version) == good
    assert int(client.get_model_version_by_alias("tokenlake", "candidate").version) == refused["version"]
    # the other way round: the worse model is champion, the good one takes its place
    client.set_registered_model_alias("tokenlake", "champion", str(refused["version"]))
    again = register_and_gate(f"models:/tokenlake/{good}", "tokenlake", test_accuracy=1.0, baseline_accuracy=0.0,
                              silver=silver, gate_rows=400)  # fmt: skip
    assert again["promoted"] is True and again["champion"]["version"] == refused["version"]
    assert int(client.get_model_version_by_alias("tokenlake", "champion").version) == again["version"]
    # and a model that does not beat the baseline is never promoted
    below = register_and_gate(worse_uri, "tokenlake", test_accuracy=0.5, baseline_accuracy=0.6, silver=silver,
                              gate_rows=400)  # fmt: skip
    assert below["promoted"] is False and "baseline" in below["reason"]


def test_predict_on_files_scores_every_usable_row_and_quarantines_the_rest(spark, trained, corpus, tmp_path):
    from tokenlake.etl.lake import commit_metadata, read_table

    work, report = trained
    lines = corpus.read_text().splitlines()[:300]
    extra = [json.dumps({"id": "markup-only", "text": "<p> </p>", "label": "food"}),
             json.dumps({"id": "no-label", "text": "The chef cooked pasta with garlic and tomatoes"})]  # fmt: skip
    data = tmp_path / "new.jsonl"
    data.write_text("\n".join([*lines, *extra, "not json", '{"text": 7}']) + "\n")
    out = tmp_path / "scored"
    model = f"models:/tokenlake/{report['registry']['version']}"
    assert main(["predict", "--model", model, "--input", str(data), "--work", str(work), "--output", str(out)]) == 0
    result = json.loads((work / "predict_report.json").read_text())
    rows = result["rows"]
    assert rows["read"] == len(lines) + 4 and rows["read"] == rows["scored"] + rows["quarantined"]
    assert result["reject_reasons"] == {"malformed_json": 1, "text_not_string": 1, "empty_after_clean": 1}
    table = read_table(spark, str(out), result["output"]["version"])
    labels = report["tokenizer"]["labels"]
    assert table.columns == ["id", "label", "score", *[f"prob_{n}" for n in labels]]
    assert table.count() == rows["scored"] and table.select("id").distinct().count() == rows["scored"]
    quarantined = read_table(spark, f"{out}_quarantine").collect()
    assert {(r["reject_reason"], r["stage"]) for r in quarantined} == {
        ("malformed_json", "ingest"), ("text_not_string", "ingest"), ("empty_after_clean", "clean")}  # fmt: skip
    assert len(quarantined) == rows["quarantined"] and all(r["source_line"] is not None for r in quarantined)
    meta = commit_metadata(spark, str(out), result["output"]["version"])
    assert meta["model_uri"] == model and meta["model_version"] == report["registry"]["version"]
    assert result["model"]["version"] == report["registry"]["version"]
    assert 0 < result["metrics"]["accuracy"] <= 1 and result["metrics"]["rows"] == rows["scored"] - 1


def test_predict_on_a_delta_table_version_matches_the_model_run_in_process(spark, trained, tmp_path):
    import numpy as np

    from tokenlake.etl.lake import read_table, write_table
    from tokenlake.training.packaging import local_bundle
    from tokenlake.training.text_classifier import Classifier

    work, report = trained
    silver = report["tables"]["silver"]
    docs = read_table(spark, silver["path"], silver["version"]).select("id", "text", "label").orderBy("id")
    table = str(tmp_path / "docs")  # version 0 holds 600 documents, version 1 all of them
    assert write_table(docs.limit(600), table) == 0 and write_table(docs, table) == 1
    out = tmp_path / "scored"
    model = report["training"]["model"]["logged_model_uri"]
    assert main(["predict", "--model", model, "--input", f"{table}@0", "--work", str(work), "--output", str(out),
                 "--batch-size", "8"]) == 0  # fmt: skip
    result = json.loads((work / "predict_report.json").read_text())
    rows = read_table(spark, table, 0).collect()
    assert result["rows"] == {"read": 600, "scored": 600, "quarantined": 0} and len(rows) == 600
    _tracking(work)
    expected = Classifier(local_bundle(model, dst=str(tmp_path / "m"))).predict_frame([r["text"] for r in rows])
    scored = {r["id"]: r for r in read_table(spark, str(out)).collect()}
    assert [scored[r["id"]]["label"] for r in rows] == expected["label"].tolist()  # silver is clean already
    assert np.allclose([scored[r["id"]]["score"] for r in rows], expected["score"], atol=1e-5)
    right = sum(scored[r["id"]]["label"] == r["label"] for r in rows)
    assert result["metrics"]["accuracy"] == pytest.approx(right / len(rows))


def test_predict_refuses_what_it_cannot_use(trained, tmp_path, capsys, monkeypatch):
    work, report = trained
    data = tmp_path / "in.jsonl"
    data.write_text('{"text": "a document"}\n')
    nowhere = str(tmp_path / "nowhere")
    assert main(["predict", "--model", nowhere, "--input", str(data), "--work", str(work)]) == EXIT_CONFIG
    assert f"--model {nowhere}:" in capsys.readouterr().err
    none = str(tmp_path / "none.jsonl")
    assert main(["predict", "--model", "runs:/x/model", "--input", none, "--work", str(work)]) == EXIT_INPUT
    # a Delta table without the model's text column (gold holds token ids): exit 4, and it says which columns
    model = f"models:/tokenlake/{report['registry']['version']}"
    gold = str(work / "lake" / "gold")
    assert main(["predict", "--model", model, "--input", gold, "--work", str(work)]) == EXIT_INPUT
    assert "has no column 'text'" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: exit 2 before anything runs
        main(["predict", "--model", model, "--input", str(data), "--work", str(work), "--batch-size", "0"])
    # a model trained on pseudonymised text needs the key the ETL used: without it, exit 2 before scoring
    from tokenlake.training.packaging import local_bundle

    _tracking(work)
    bundle = shutil.copytree(local_bundle(model, dst=str(tmp_path / "m")), tmp_path / "pseudonymised")
    settings = json.loads((bundle / "tokenlake.json").read_text())
    settings["etl"]["pseudonymise_pii"] = True
    (bundle / "tokenlake.json").write_text(json.dumps(settings))
    monkeypatch.delenv("TOKENLAKE_PII_SECRET", raising=False)
    assert main(["predict", "--model", str(bundle), "--input", str(data), "--work", str(work)]) == EXIT_CONFIG
    assert "trained on pseudonymised text" in capsys.readouterr().err


def test_export_to_int8_onnx_is_verified_on_the_gold_test_split_and_predict_runs_it(spark, trained, tmp_path,
                                                                                       monkeypatch):  # fmt: skip
    import numpy as np
    from mlflow import MlflowClient

    from tokenlake.etl.lake import read_table
    from tokenlake.training import export as exporting
    from tokenlake.training.packaging import local_bundle
    from tokenlake.training.text_classifier import Classifier

    work, report = trained
    _tracking(work)
    model = f"models:/tokenlake/{report['registry']['version']}"
    out = tmp_path / "onnx-int8"
    assert main(["export", "--model", model, "--work", str(work), "--format", "onnx", "--quantize", "int8",
                 "--out", str(out), "--eval-rows", "500"]) == 0  # fmt: skip
    result = json.loads((out / "export.json").read_text())
    gold = report["training"]["data"]
    assert result["gold"]["version"] == gold["version"] and result["eval_rows"] == report["rows"]["test"]
    assert result["size_ratio"] == pytest.approx(result["bytes"]["fp32_onnx"] / result["bytes"]["exported"])
    assert result["size_ratio"] >= 3.5 and result["met"]["size_ratio"]
    assert result["accuracy_delta"] >= -0.01 and result["accuracy"]["pytorch"] == pytest.approx(
        report["training"]["metrics"]["test_accuracy"]
    )  # the same test split training was scored on
    assert set(result["latency_ratio"]) == {"batch_1", "batch_32"} and all(
        r > 0 for r in result["latency_ratio"].values()
    )
    assert not list(out.rglob("*.safetensors")) and (out / "model" / "model.onnx").is_file()
    logged = MlflowClient().list_artifacts(result["model"]["run_id"], f"export/{out.name}")
    assert [a.path for a in logged] == [f"export/{out.name}/export.json"]
    # the export scores like the model it came from, in process and in Spark
    texts = [r["text"] for r in read_table(spark, report["tables"]["silver"]["path"]).limit(200).collect()]
    onnx = Classifier(out).predict_frame(texts)
    torch_side = Classifier(local_bundle(model, dst=str(tmp_path / "m"))).predict_frame(texts)
    assert np.mean(onnx["label"] == torch_side["label"]) >= 0.95
    data = tmp_path / "docs.jsonl"
    data.write_text("".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(texts)))
    assert main(["predict", "--model", str(out), "--input", str(data), "--work", str(work), "--output",
                 str(tmp_path / "scored")]) == 0  # fmt: skip
    scored = {r["id"]: r["label"] for r in read_table(spark, str(tmp_path / "scored")).collect()}
    assert [scored[str(i)] for i in range(len(texts))] == onnx["label"].tolist()
    # an export that loses more accuracy than allowed writes nothing
    monkeypatch.setitem(exporting.TARGETS, "accuracy_delta", 0.5)
    refused = tmp_path / "refused"
    assert main(["export", "--model", model, "--work", str(work), "--quantize", "int8", "--out", str(refused)]) == 3
    assert not refused.exists()
