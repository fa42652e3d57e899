"""The short table a person reads at the end of a run: counts, versions, validation, metrics."""

from __future__ import annotations

from pathlib import Path


def summary_lines(report: dict, work: Path) -> list[str]:
    lines = ["", "tokenlake: done"]
    rows = report.get("rows")
    if rows:
        lines.append(f"  rows        read {rows['read']}  clean {rows['clean']}  quarantined {rows['quarantined']}"
                     f"  (train {rows['train']} / validation {rows['validation']} / test {rows['test']})")
    if report.get("tables"):
        lines.append("  tables      " + "  ".join(f"{n} v{t['version']}" for n, t in sorted(report["tables"].items())))
    if report.get("validation"):
        lines.append(f"  validation  {'passed' if report['validation']['success'] else 'FAILED'}")
    training = report.get("training")
    if training:
        m = training["metrics"]
        lines.append(f"  test        accuracy {m['test_accuracy']:.4f}  macro-F1 {m['test_macro_f1']:.4f}"
                     f"  loss {m['test_loss']:.4f}")
        lines.append(f"  mlflow run  {training['mlflow_run_id']}")
    lines.append(f"  report      {work / 'report.json'}")
    return lines


def print_summary(report: dict, work: Path) -> None:
    print("\n".join(summary_lines(report, work)), flush=True)
