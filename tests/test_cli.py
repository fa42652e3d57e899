"""The command line without Spark: flags, help, configuration errors, ``config show``, ``--dry-run``.

Every configuration error must be found before Spark starts: ``get_spark`` is replaced by one
that fails the test if it is called."""

import argparse
import json
from pathlib import Path

import pytest
import yaml

from tokenlake.jobs import cli, session
from tokenlake.jobs.cli import EXIT_CONFIG, EXIT_INPUT, build_parser, main
from tokenlake.jobs.config import PipelineConfig, keys, load_config


@pytest.fixture
def no_spark(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("Spark was started")

    monkeypatch.setattr(session, "get_spark", refuse)


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "in" / "docs.jsonl"
    path.parent.mkdir()
    path.write_text('{"id": "a", "text": "one two three", "label": "x"}\n')
    return path


def _exit(argv, capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    return code, capsys.readouterr().err


def test_an_abbreviated_flag_is_refused_under_its_subcommand_with_the_nearest_flag(corpus, capsys, no_spark):
    code, err = _exit(["run", "--input", str(corpus), "--epoch", "2"], capsys)
    assert code == EXIT_CONFIG
    assert "usage: tokenlake run" in err and "unrecognized arguments: --epoch 2 (did you mean --epochs?)" in err
    code, err = _exit(["train", "--batch", "4"], capsys)
    assert code == EXIT_CONFIG and "usage: tokenlake train" in err and "did you mean --batch-size?" in err
    from tokenlake.jobs.etl_job import build_parser as etl_job_parser

    with pytest.raises(SystemExit):
        etl_job_parser().parse_args(["--input", "x", "--max", "64"])  # spark-submit's entry points too


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--set", "train.lrr=1"], "unknown setting 'train.lrr' (did you mean 'train.lr'?)"),
        (["--set", "train.epochs=three"], "train.epochs must be an integer, got 'three'"),
        (["--set", "train.epochs=2.5"], "train.epochs must be an integer, got 2.5"),
        (["--set", "train.local_mode=maybe"], "train.local_mode must be true or false, got 'maybe'"),
        (["--model", "tinyy"], "train.model must be one of tiny, small, base, minilm or a checkpoint directory"),
        (["--model", "tinyy"], "got 'tinyy' (did you mean 'tiny'?)"),
        (["--set", "etl.task=clasification"], "got 'clasification' (did you mean 'classification'?)"),
        (["--set", "etl.url_mode=masc"], "(did you mean 'mask'?)"),
        (["--set", "etl.tokenizer=/no/such/tokenizer"], "etl.tokenizer: '/no/such/tokenizer' is neither"),
        (["--task", "causal-lm", "--model", "minilm"], "train.model must be one of tiny, small, base; got 'minilm'"),
        (["--text-column", "label"], "three different names"),
    ],
)
def test_every_configuration_error_names_the_key_and_value_before_spark_starts(
    flags, message, corpus, capsys, no_spark
):
    code, err = _exit(["run", "--input", str(corpus), *flags], capsys)
    assert code == EXIT_CONFIG
    assert err.startswith("error: bad configuration: ") and message in err and len(err.splitlines()) == 1


def test_a_yaml_file_with_an_unknown_key_names_it_and_the_nearest(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epoch: 2\n")
    with pytest.raises(ValueError, match=r"unknown setting 'train.epoch' \(did you mean 'train.epochs'\?\)"):
        load_config(path)
    path.write_text("trian:\n  epochs: 2\n")
    with pytest.raises(ValueError, match=r"got 'trian' \(did you mean 'train'\?\)"):
        load_config(path)


def test_version(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"tokenlake {version('tokenlake')}"


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = sub
                found.update({f"{name} {k}": v for k, v in _subparsers(sub).items()})
    return found


def test_help_shows_exit_codes_an_example_per_command_and_every_flag_with_help(capsys):
    parser = build_parser()
    top = parser.format_help()
    assert "exit codes:" in top and all(f"  {code}  " in top for code in (0, 2, 3, 4, 5, 6, 7))
    assert "``" not in top
    commands = _subparsers(parser)
    assert {"generate", "etl", "validate", "train", "run", "config show", "runs", "tables", "ui"} <= set(commands)
    for name, sub in commands.items():
        text = sub.format_help()
        assert "example:\n  tokenlake " in text, name
        for action in sub._actions:
            assert action.help, f"tokenlake {name} {action.option_strings}: no help"
    run = " ".join(commands["run"].format_help().split())
    assert "[train.epochs; default: 3]" in run and "(default: work)" in run
    assert "minilm" in run and "checkpoint directory" in run


def test_column_flags_set_the_config_and_config_show_says_where_each_value_came_from(tmp_path, capsys):
    args = build_parser().parse_args(
        ["run", "--input", "x", "--text-column", "body", "--label-column", "topic", "--id-column", "doc_id"]
    )
    etl = cli.config_from_args(args).etl
    assert (etl.text_column, etl.label_column, etl.id_column) == ("body", "topic", "doc_id")
    path = tmp_path / "my.yaml"
    path.write_text("train:\n  epochs: 5\n  batch_size: 8\netl:\n  vocab_size: 900\n")
    argv = ["config", "show", "--config", str(path), "--set", "etl.vocab_size=500", "--epochs", "2", "--model", "small"]
    assert main(argv) == 0
    shown = {line.split()[0]: line.split(None, 2)[1:] for line in capsys.readouterr().out.splitlines()[1:]}
    assert set(shown) == set(keys())
    assert shown["train.epochs"] == ["2", "--epochs"]
    assert shown["train.batch_size"] == ["8", str(path)]
    assert shown["etl.vocab_size"] == ["500", "--set"]
    assert shown["train.model"] == ['"small"', "--model"]
    assert shown["etl.max_len"] == ["128", "default"]
    assert shown["train.lr"] == ["0.001", "default: by train.model (small)"]  # the effective rate, not null


def test_dry_run_lists_the_input_checks_names_and_writes_nothing(tmp_path, corpus, capsys, no_spark):
    (corpus.parent / "more.csv.gz").write_bytes(b"\x1f\x8b" + b"\0" * 30)
    (corpus.parent / "_SUCCESS").write_text("")
    work = tmp_path / "work"
    assert main(["run", "--input", str(corpus.parent), "--work", str(work), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "input: 2 file(s), 83 bytes" in out
    assert f"json                 51  {corpus}" in out and "csv                  32  " in out
    assert "model: tiny (task classification, lr 0.003)" in out and "Delta JARs: " in out
    assert out.rstrip().endswith("dry run: nothing was written")
    assert not work.exists()
    code, err = _exit(["etl", "--input", str(tmp_path / "none-*.jsonl"), "--work", str(work), "--dry-run"], capsys)
    assert code == EXIT_INPUT and "input not found" in err
    code, err = _exit(["run", "--input", str(corpus), "--work", str(work), "--dry-run", "--model", "bse"], capsys)
    assert code == EXIT_CONFIG and "did you mean 'base'?" in err


def test_the_example_config_holds_every_field_at_its_default():
    path = Path(__file__).parents[1] / "examples" / "config.yaml"
    text = path.read_text()
    loaded = yaml.safe_load(text)
    defaults = PipelineConfig().as_dict()
    flat = {f"{s}.{k}": v for s, fields in loaded.items() for k, v in fields.items()}
    assert set(flat) == set(keys())
    for key, value in flat.items():
        section, name = key.split(".")
        expected = defaults[section][name]
        assert (list(expected) if isinstance(expected, tuple) else expected) == value, key
    assert load_config(path) == PipelineConfig()
    for key in keys():  # each field is explained by a comment above it
        name = key.split(".")[1]
        above = text.split(f"\n  {name}:")[0].rstrip().splitlines()[-1]
        assert above.strip().startswith("#"), key
    assert json.dumps(loaded)  # plain YAML: no tags


def test_the_jvm_output_goes_to_a_file_and_this_process_keeps_its_own(tmp_path, capfd):
    """Spark's launcher and Ivy write to the stdout and stderr the JVM inherits: a child started
    inside ``_output_to`` writes to the log file, and this process's output is its own again after."""
    import subprocess

    log = tmp_path / "logs" / "spark.log"
    with session._output_to(log):
        child = subprocess.Popen(["sh", "-c", "sleep 0.3; echo ivy-noise; echo spark-warning >&2"])
    print("ours")
    child.wait()
    captured = capfd.readouterr()
    assert captured.out == "ours\n" and "ivy-noise" not in captured.err + captured.out
    assert log.read_text() == "ivy-noise\nspark-warning\n"


def test_make_clean_removes_what_make_run_made_and_keeps_the_users_corpora(tmp_path):
    import shutil
    import subprocess

    root = Path(__file__).parents[1]
    for name in ("Makefile", "pyproject.toml", "benchmarks/peer-requirements.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / name, tmp_path / name)
    for name in ("data/sample.jsonl", "data/mine.jsonl", "work/report.json"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}\n")
    subprocess.run(["make", "-s", "clean"], cwd=tmp_path, check=True, capture_output=True)
    assert (tmp_path / "data/mine.jsonl").is_file()
    assert not (tmp_path / "data/sample.jsonl").exists() and not (tmp_path / "work").exists()


def test_the_summary_says_where_the_model_is_and_when_it_is_not_the_best_epoch():
    from tokenlake.jobs.summary import summary_lines

    metrics = {"test_accuracy": 0.9, "test_loss": 0.3}
    training = {"metrics": metrics, "mlflow_run_id": "abc", "best_epoch": 2,
                "model": {"path": "/w/model", "epoch": 3, "is_best_epoch": False}}  # fmt: skip
    lines = summary_lines({"training": training}, "/w")
    assert "  model       /w/model  (epoch 3; NOT the best epoch: validation loss was lowest at epoch 2)" in lines
    training["model"] |= {"epoch": 2, "is_best_epoch": True}
    assert "  model       /w/model  (epoch 2)" in summary_lines({"training": training}, "/w")


def test_an_error_nobody_foresaw_is_one_line_and_its_traceback_is_kept(tmp_path, corpus, capsys, monkeypatch):
    """Not a traceback on the terminal: one line with the error and where its traceback is (exit 1)."""

    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero in a stage")

    monkeypatch.setattr(cli, "_run_command", broken)
    code, err = _exit(["etl", "--input", str(corpus), "--work", str(tmp_path / "work")], capsys)
    assert code == cli.EXIT_UNEXPECTED == 1
    (line,) = err.strip().splitlines()
    assert line.startswith("error: unexpected ZeroDivisionError: division by zero in a stage (traceback in ")
    log = Path(line.split("(traceback in ", 1)[1].rstrip(")"))
    assert log.parent == tmp_path / "work" / "logs" and 'raise ZeroDivisionError("division' in log.read_text()
