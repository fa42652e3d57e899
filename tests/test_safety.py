"""What the code never does, checked on its syntax tree with import aliases resolved: run a shell
(``shell=True``, ``os.system``, ``sh -c``, ``exec``/``eval``), unpickle (``pickle``, ``marshal``,
``dill``, ``joblib``, ``shelve``, ``numpy.load(allow_pickle=True)``), or ``torch.load`` without
``weights_only=True``. User paths and names therefore never reach a shell, and nothing loads code
hidden in data it did not write."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted(p for d in ("etl", "training", "jobs", "benchmarks", "synthetic") for p in (ROOT / d).rglob("*.py"))


UNPICKLERS = {
    f"{module}.{fn}"
    for module in ("pickle", "cloudpickle", "dill", "marshal", "joblib", "_pickle")
    for fn in ("load", "loads", "Unpickler")
} | {"shelve.open", "pandas.read_pickle"}
SHELLS = {"os.system", "os.popen", "builtins.exec", "builtins.eval", "builtins.compile"}
SHELL_PROGRAMS = {"sh", "bash", "zsh", "dash", "/bin/sh", "/bin/bash", "/usr/bin/env", "cmd", "cmd.exe"}
RUNNERS = {f"subprocess.{fn}" for fn in ("run", "Popen", "call", "check_call", "check_output")} | {
    f"os.{fn}" for fn in ("execv", "execve", "execvp", "execvpe", "execl", "execlp", "spawnv", "spawnvp")
}


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> what it is: ``import pickle as p`` gives p -> pickle, ``from os import system
    as run`` gives run -> os.system; builtins are themselves."""
    names = {b: f"builtins.{b}" for b in ("exec", "eval", "compile")}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                names[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                names[a.asname or a.name] = f"{node.module}.{a.name}"
    return names


def _name(node: ast.AST, aliases: dict[str, str]) -> str:
    """The dotted name a call goes to, with import aliases resolved."""
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value, aliases)}.{node.attr}"
    return aliases.get(node.id, node.id) if isinstance(node, ast.Name) else ""


def _runs_a_shell(call: ast.Call, name: str) -> bool:
    """``subprocess.run(["sh", "-c", ...])``, ``os.execv("/bin/sh", ...)``: a command line a shell parses."""
    if name not in RUNNERS or not call.args:
        return False
    first = call.args[1] if name.startswith(("os.exec", "os.spawn")) and len(call.args) > 1 else call.args[0]
    if isinstance(first, ast.List | ast.Tuple) and first.elts:
        first = first.elts[0]
    return isinstance(first, ast.Constant) and str(first.value) in SHELL_PROGRAMS


def unsafe_calls(source: str) -> list[str]:
    tree = ast.parse(source)
    aliases = _aliases(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _name(node.func, aliases)
        keywords = {k.arg: k.value for k in node.keywords}
        shell = keywords.get("shell")
        if isinstance(shell, ast.Constant) and shell.value is True:
            found.append(f"{name}(shell=True) line {node.lineno}")
        if name in SHELLS or name in UNPICKLERS or _runs_a_shell(node, name):
            found.append(f"{name} line {node.lineno}")
        allow_pickle = keywords.get("allow_pickle")  # numpy.load unpickles only when allowed to
        if name == "numpy.load" and allow_pickle is not None and getattr(allow_pickle, "value", True) is not False:
            found.append(f"numpy.load(allow_pickle=...) line {node.lineno}")
        weights_only = keywords.get("weights_only")
        if name == "torch.load" and not (isinstance(weights_only, ast.Constant) and weights_only.value is True):
            found.append(f"torch.load without weights_only=True line {node.lineno}")
    return found


def test_the_scan_sees_each_unsafe_call():
    code = "\n".join(
        [
            "import os, subprocess, pickle as p, torch as t",
            "from os import system as run",
            "from marshal import loads",
            "subprocess.run(c, shell=True)",
            "os.system(c)",
            "run(c)",
            "p.loads(b)",
            "loads(b)",
            "t.load(f)",
            "exec(code)",
            "eval(code)",
            "subprocess.Popen(['sh', '-c', c])",
            "os.execv('/bin/bash', ['bash', '-c', c])",
            "subprocess.check_output('bash')",
        ]
    )
    assert len(unsafe_calls(code)) == 11
    safe = "\n".join(
        [
            "import subprocess, torch",
            "subprocess.run(['java', '-version'])",
            "torch.load(p, weights_only=True)",
            "model.eval()",
            "re.compile(r'x')",
        ]
    )
    assert unsafe_calls(safe) == []


def test_no_shell_no_unpickling_of_foreign_data():
    assert ROOT / "training" / "checkpoint.py" in SOURCES and len(SOURCES) > 20
    found = {str(p.relative_to(ROOT)): unsafe_calls(p.read_text()) for p in SOURCES}
    assert {path: calls for path, calls in found.items() if calls} == {}
