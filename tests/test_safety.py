"""What the code never does, checked on its syntax tree: run a shell, unpickle, or torch.load
without ``weights_only=True``. User paths and names therefore never reach a shell, and nothing
loads code hidden in data it did not write."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted(p for d in ("etl", "training", "jobs", "benchmarks") for p in (ROOT / d).rglob("*.py"))


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def unsafe_calls(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = _name(node.func)
        keywords = {k.arg: k.value for k in node.keywords}
        shell = keywords.get("shell")
        if isinstance(shell, ast.Constant) and shell.value is True:
            found.append(f"{name}(shell=True) line {node.lineno}")
        if name in {"os.system", "os.popen", "pickle.load", "pickle.loads", "cloudpickle.load", "cloudpickle.loads"}:
            found.append(f"{name} line {node.lineno}")
        weights_only = keywords.get("weights_only")
        if name == "torch.load" and not (isinstance(weights_only, ast.Constant) and weights_only.value is True):
            found.append(f"torch.load without weights_only=True line {node.lineno}")
    return found


def test_the_scan_sees_each_unsafe_call():
    code = "\n".join(
        [
            "subprocess.run(c, shell=True)",
            "os.system(c)",
            "pickle.loads(b)",
            "torch.load(p)",
            "torch.load(p, weights_only=True)",
        ]
    )
    assert len(unsafe_calls(code)) == 4


def test_no_shell_no_unpickling_of_foreign_data():
    assert ROOT / "training" / "checkpoint.py" in SOURCES and len(SOURCES) > 20
    found = {str(p.relative_to(ROOT)): unsafe_calls(p.read_text()) for p in SOURCES}
    assert {path: calls for path, calls in found.items() if calls} == {}
