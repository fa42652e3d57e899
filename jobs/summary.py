"""The short table a person reads at the end of ``tokenlake run``."""

from __future__ import annotations

from pathlib import Path


def print_summary(report: dict, work: Path) -> None:
    rows, tables, metrics = report["rows"], report["tables"], report["training"]["metrics"]
    lines = [
        "",
        "tokenlake run finished",
        f"  rows        read {rows['read']}  clean {rows['clean']}  quarantined {rows['quarantined']}  "
        f"(train {rows['train']} / validation {rows['validation']} / test {rows['test']})",
        "  tables      " + "  ".join(f"{name} v{t['version']}" for name, t in tables.items()),
        f"  validation  {'passed' if report['validation']['success'] else 'FAILED'}",
        f"  test        accuracy {metrics['test_accuracy']:.4f}  macro-F1 {metrics['test_macro_f1']:.4f}  "
        f"loss {metrics['test_loss']:.4f}",
        f"  report      {work / 'report.json'}",
        f"  mlflow run  {report['training']['mlflow_run_id']}",
    ]
    print("\n".join(lines))
