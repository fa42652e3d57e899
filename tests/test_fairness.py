"""The fairness report (``train.fairness_group``): Fairlearn's per-group figures, exact from the
counts, and on a generated corpus whose group ``b`` has a known share of wrong labels, a gap
where the corpus put one."""

import json

import pytest

from tokenlake.jobs.cli import EXIT_CONFIG, main
from tokenlake.jobs.fairness import OTHER, fairness_metrics, merge_small
from tokenlake.synthetic.generate import generate_corpus


def test_group_metrics_from_counts_match_a_hand_count():
    counts = [("a", "x", "x", 80), ("a", "y", "y", 15), ("a", "x", "y", 5), ("b", "x", "x", 10),
              ("b", "y", "x", 10), ("c", "y", "y", 3)]  # fmt: skip
    merged, small = merge_small(counts, min_rows=10)
    assert small == ["c"] and {g for g, *_ in merged} == {"a", "b", OTHER}
    report = fairness_metrics(merged, positive_label="y")
    a, b = report["groups"]["a"], report["groups"]["b"]
    assert a == {"rows": 100, "accuracy": 0.95, "macro_f1": pytest.approx((2 * 80 / 165 + 2 * 15 / 35) / 2, abs=1e-6),
                 "selection_rate": 0.2}  # fmt: skip
    # b: x right 10 of 10, y wrong 10 of 10 -> F1(x) = 20/30, F1(y) = 0
    assert b == {"rows": 20, "accuracy": 0.5, "macro_f1": pytest.approx(1 / 3, abs=1e-6), "selection_rate": 0.0}
    assert report["groups"][OTHER]["rows"] == 3
    assert report["max_accuracy_gap"] == pytest.approx(0.5) and report["max_selection_rate_gap"] == pytest.approx(1)
    assert report["overall"]["accuracy"] == pytest.approx((95 + 10 + 3) / 123, abs=1e-6)


def test_a_fairness_group_outside_meta_is_refused():
    assert main(["train", "--work", "nowhere", "--set", "train.fairness_group=label"]) == EXIT_CONFIG


@pytest.mark.slow
def test_the_fairness_report_shows_the_gap_the_corpus_holds(spark, tmp_path):
    data = generate_corpus(tmp_path / "grouped.jsonl", 2000, seed=11, group_field="region", group_skew=0.4)
    work = tmp_path / "work"
    args = ["run", "--input", str(data), "--work", str(work), "--epochs", "3", "--set", "etl.vocab_size=1000",
            "--set", "train.fairness_group=meta.region", "--set", "train.fairness_min_rows=40",
            "--set", "train.baseline=false"]  # fmt: skip
    assert main(args) == 0
    report = json.loads((work / "report.json").read_text())
    fairness, test = report["fairness"], report["training"]["metrics"]
    groups = fairness["groups"]
    # c holds 5% of the documents (about 10 test rows): merged into other; a and b stay
    assert fairness["merged_into_other"] == ["c"] and set(groups) == {"a", "b", OTHER}
    assert sum(g["rows"] for g in groups.values()) == report["rows"]["test"]
    # the same documents the ranks evaluated as gold's test split, scored again in Spark: same accuracy
    overall = sum(g["accuracy"] * g["rows"] for g in groups.values()) / report["rows"]["test"]
    assert overall == pytest.approx(test["test_accuracy"], abs=2 / report["rows"]["test"])
    # 40% of b's labels are wrong: the model, right on most of a, is right on about 60% of b
    assert groups["a"]["accuracy"] - groups["b"]["accuracy"] >= 0.2, groups
    accuracies = [g["accuracy"] for g in groups.values()]
    # the gap is rounded to 6 places from the unrounded accuracies: up to 1.5e-6 from their rounded difference
    assert fairness["max_accuracy_gap"] == pytest.approx(max(accuracies) - min(accuracies), abs=2e-6)
    assert fairness["positive_label"] == "sports"  # the last of gold's labels (sorted)

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    run_id = report["training"]["mlflow_run_id"]
    logged = {a.path for a in client.list_artifacts(run_id, "fairness")}
    assert logged == {"fairness/report.json", "fairness/by_group.png"}
    assert client.get_run(run_id).data.metrics["fairness_max_accuracy_gap"] == pytest.approx(
        fairness["max_accuracy_gap"]
    )
