"""The short table a person reads at the end of a run: counts, versions, validation, metrics."""

from __future__ import annotations

from pathlib import Path

from tokenlake.etl.storage import join


def predict_lines(report: dict, work: str | Path) -> list[str]:
    rows, out, model = report["rows"], report["output"], report["model"]
    version = f" version {model['version']}" if model.get("version") is not None else ""
    lines = ["", "tokenlake: done",
             f"  rows        read {rows['read']}  scored {rows['scored']}  quarantined {rows['quarantined']}",
             f"  output      {out['path']} v{out['version']}  (quarantine: {report['quarantine']['path']})",
             f"  model       {model['uri']}{version}"]  # fmt: skip
    if report.get("metrics"):
        m = report["metrics"]
        lines.append(f"  metrics     accuracy {m['accuracy']:.4f}  macro_f1 {m['macro_f1']:.4f}"
                     f"  (against the input's labels, {m['rows']} rows)")  # fmt: skip
    return [*lines, f"  report      {join(work, 'predict_report.json')}"]


def tune_lines(report: dict, work: str | Path) -> list[str]:
    t = report["tuning"]
    trials = t["trials"]
    params = "  ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in t["best_params"].items())
    return ["", "tokenlake: done",
            f"  study       {t['study']}: {trials['finished']} finished, {trials['pruned']} pruned, "
            f"{trials['failed']} failed",
            f"  best        trial {t['best_trial']}: validation loss {t['best_val_loss']:.4f}  {params}",
            f"  config      {t['best_config']}  (tokenlake train --config it)",
            f"  mlflow run  {t['mlflow_run_id']}",
            f"  report      {join(work, 'report.json')}"]  # fmt: skip


def summary_lines(report: dict, work: str | Path, command: str | None = None) -> list[str]:
    if "output" in report:
        return predict_lines(report, work)
    if command == "tune":
        return tune_lines(report, work)
    lines = ["", "tokenlake: done"]
    rows = report.get("rows")
    if rows:
        lines.append(
            f"  rows        read {rows['read']}  clean {rows['clean']}  quarantined {rows['quarantined']}"
            f"  duplicates {rows.get('duplicates_exact', 0)} exact, {rows.get('duplicates_near', 0)} near"
            f"  new {rows.get('new', rows['clean'])}"
            f"  (train {rows['train']} / validation {rows['validation']} / test {rows['test']})"
        )
    if report.get("tables"):
        lines.append("  tables      " + "  ".join(f"{n} v{t['version']}" for n, t in sorted(report["tables"].items())))
    if report.get("packing"):
        lines.append(
            f"  packing     {report['packing']['blocks']} blocks of {report['packing']['block_len']} tokens,"
            f" real-token fraction {report['packing']['real_token_fraction']:.4f}"
        )
    if report.get("validation"):
        lines.append(f"  validation  {'passed' if report['validation']['success'] else 'FAILED'}")
    training = report.get("training")
    if training:
        m = training["metrics"]
        lines.append("  test        " + "  ".join(f"{k[5:]} {v:.4f}" for k, v in m.items() if k.startswith("test_")))
        if "baseline_test_accuracy" in m:
            lines.append(
                f"  baseline    accuracy {m['baseline_test_accuracy']:.4f}  macro_f1 {m['baseline_test_macro_f1']:.4f}"
                "  (TF-IDF of word 1-2 grams + logistic regression, L2 tuned on validation; same test split)"
            )
        privacy = training.get("privacy")
        if privacy:
            lines.append(f"  privacy     ε {privacy['epsilon']:.3f} (target {privacy['target_epsilon']}), δ "
                         f"{privacy['delta']:.2e}, noise {privacy['noise_multiplier']:.3f}"
                         + ("; the tokenizer was trained on this data, outside the guarantee"
                            if privacy["tokenizer_from_data"] else ""))  # fmt: skip
        model = training.get("model")
        if model:
            best = "" if model["is_best_epoch"] else f"; NOT the best epoch: validation loss was lowest at epoch " \
                f"{training['best_epoch']}"  # fmt: skip
            lines.append(f"  model       {model['path']}  (epoch {model['epoch']}{best})")
        lines.append(f"  mlflow run  {training['mlflow_run_id']}")
    fairness = report.get("fairness")
    if fairness:
        groups = "  ".join(f"{n} {g['accuracy']:.3f} ({g['rows']})" for n, g in fairness["groups"].items())
        lines.append(f"  fairness    accuracy by {fairness['group']}: {groups}; largest gap "
                     f"{fairness['max_accuracy_gap']:.3f}")  # fmt: skip
    registry = report.get("registry")
    if registry:
        aliases = ", ".join(registry["aliases"])
        lines.append(
            f"  registry    {registry['name']} version {registry['version']} ({aliases}): {registry['reason']}"
        )
    lines.append(f"  report      {join(work, 'report.json')}")
    return lines


def print_summary(report: dict, work: str | Path, command: str | None = None) -> None:
    print("\n".join(summary_lines(report, work, command)), flush=True)
