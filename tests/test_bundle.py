"""Every scheduled task's parameters parse with its job's own argument parser, so a renamed flag
fails here instead of in a 3 a.m. run."""

import importlib
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def _bundle() -> tuple[dict, list[tuple[Path, dict]]]:
    root = yaml.safe_load((REPO / "databricks.yml").read_text())
    resources = [(p, yaml.safe_load(p.read_text())) for pattern in root["include"] for p in sorted(REPO.glob(pattern))]
    return root, resources


def _substitute(value: str, variables: dict) -> str:
    return re.sub(r"\$\{var\.(\w+)\}", lambda m: str(variables[m.group(1)]["default"]), value)


def _tasks():
    root, resources = _bundle()
    for path, doc in resources:
        for job_name, job in doc["resources"]["jobs"].items():
            for task in job["tasks"]:
                yield pytest.param(path, job, task, root["variables"], id=f"{job_name}.{task['task_key']}")


@pytest.mark.parametrize("path, job, task, variables", list(_tasks()))
def test_task_parameters_parse_with_the_jobs_parser(path, job, task, variables):
    python_file = (path.parent / task["spark_python_task"]["python_file"]).resolve()
    assert python_file.is_file() and python_file.parent == REPO / "jobs"
    module = importlib.import_module(f"tokenlake.jobs.{python_file.stem}")
    params = [_substitute(p, variables) for p in task["spark_python_task"]["parameters"]]
    args = module.build_parser().parse_args(params)  # exits (fails the test) on an unknown flag
    from tokenlake.jobs.cli import config_from_args

    config_from_args(args)  # every --set names a real field with a valid value
    assert task["job_cluster_key"] in {c["job_cluster_key"] for c in job["job_clusters"]}


def test_workflow_shape_schedule_and_clusters():
    root, resources = _bundle()
    ((_, doc),) = resources
    job = doc["resources"]["jobs"]["tokenlake"]
    order = {t["task_key"]: [d["task_key"] for d in t.get("depends_on", [])] for t in job["tasks"]}
    assert order == {"etl": [], "validate": ["etl"], "train": ["validate"], "predict": ["train"]}
    assert job["schedule"]["quartz_cron_expression"] == "0 0 3 * * ?"  # daily
    assert root["targets"]["dev"]["mode"] == "development"
    assert root["targets"]["dev"]["variables"]["schedule_pause_status"] == "PAUSED"
    clusters = {c["job_cluster_key"]: c["new_cluster"] for c in job["job_clusters"]}
    tasks = {t["task_key"]: t for t in job["tasks"]}
    assert "gpu" not in clusters[tasks["etl"]["job_cluster_key"]]["spark_version"]
    assert "gpu" in clusters[tasks["train"]["job_cluster_key"]]["spark_version"]
    assert "train.use_gpu=true" in tasks["train"]["spark_python_task"]["parameters"]
    # Unity Catalog (Databricks' default registry) takes three-part names only; predict uses the same one
    model = root["variables"]["registered_model"]["default"]
    assert len(model.split(".")) == 3
    assert "train.registered_model=${var.registered_model}" in tasks["train"]["spark_python_task"]["parameters"]
    assert "models:/${var.registered_model}@champion" in tasks["predict"]["spark_python_task"]["parameters"]
    assert job["tags"]["git_commit"] == "${bundle.git.commit}"


def test_the_wheel_installs_one_tokenlake_namespace_that_a_users_etl_module_cannot_shadow(tmp_path):
    """Installed as top-level ``etl`` and ``jobs``, the package collided with any user module of
    those names on a shared cluster; the wheel now holds ``tokenlake/`` alone."""
    import shutil
    import subprocess
    import sys
    import zipfile

    # built from a copy: setuptools leaves build/ behind, and would reuse a stale one
    source = shutil.copytree(REPO, tmp_path / "src", ignore=shutil.ignore_patterns(
        ".git", "work", "data", "build", "dist", "*.egg-info", "__pycache__", ".*_cache"))  # fmt: skip
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(source)], check=True, capture_output=True, timeout=300)  # fmt: skip
    (wheel,) = tmp_path.glob("tokenlake-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"tokenlake", wheel.name.split("-py")[0] + ".dist-info"}
    for package in ("etl", "training", "jobs", "expectations", "benchmarks"):
        assert f"tokenlake/{package}/__init__.py" in names
    assert "tokenlake/expectations/gold.json" in names
    assert (
        "tokenlake = tokenlake.jobs.cli:main"
        in zipfile.ZipFile(wheel).read(f"{wheel.name.split('-py')[0]}.dist-info/entry_points.txt").decode()
    )
    # a user's own etl.py and jobs.py beside their code do not reach ours
    (tmp_path / "etl.py").write_text("raise ImportError('the user etl module was imported by tokenlake')\n")
    (tmp_path / "jobs.py").write_text("NAME = 'user jobs'\n")
    script = "import jobs\nassert jobs.NAME == 'user jobs'\nfrom tokenlake.jobs.cli import main\n"
    script += "main(['config', 'show'])"
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "etl.max_len" in out.stdout
