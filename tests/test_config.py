import pytest

from tokenlake.jobs.config import load_config, parse_override


def test_defaults_yaml_set_and_flags_layer_in_order(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("etl:\n  max_len: 64\n  vocab_size: 500\ntrain:\n  lr: 0.01\n  epochs: 5\n")
    cfg = load_config(
        path,
        ["etl.vocab_size=700", "batch_size=8", "split_fractions=[0.7, 0.2, 0.1]"],
        {"train.epochs": 2, "etl.max_len": None},
    )
    assert cfg.etl.max_len == 64 and cfg.etl.vocab_size == 700
    assert cfg.etl.split_fractions == (0.7, 0.2, 0.1)
    assert cfg.train.lr == 0.01 and cfg.train.epochs == 2 and cfg.train.batch_size == 8
    assert cfg.as_dict()["train"]["epochs"] == 2


@pytest.mark.parametrize(
    "override, message",
    [
        ("nonsense=1", "unknown"),
        ("etl.nonsense=1", "unknown setting 'etl.nonsense'"),
        ("gpu.x=1", "unknown setting 'gpu.x'"),
        ("epochs", "key=value"),
        ("train.local_mode=maybe", "true or false"),
        ("etl.split_fractions=[0.5, 0.1, 0.1]", "add up to 1"),
        ("train.model=", "needs a value"),
    ],
)
def test_bad_settings_are_clear_errors(override, message):
    with pytest.raises(ValueError, match=message):
        load_config(None, [override])


def test_override_values_are_yaml_typed_then_coerced_to_the_field_type():
    assert parse_override("train.local_mode=false") == ("train", "local_mode", False)
    assert parse_override("max_len=64") == ("etl", "max_len", 64)
    assert load_config(None, ["train.lr=1e-3"]).train.lr == 1e-3
    assert load_config(None, ["train.lr=null"]).train.lr is None


def test_a_pretrained_model_brings_its_tokenizer_and_a_fine_tuning_rate_and_batch(tmp_path):
    cfg = load_config(None, [], {"train.model": "minilm"})
    # MiniLM (hidden size 384) fine-tunes at a small model's rate, on smaller batches than from scratch
    assert cfg.etl.tokenizer == "minilm" and cfg.train.pretrained and cfg.train.peak_lr == 1e-4
    assert cfg.train.global_batch == 32 and cfg.train.rank_batch == 16
    base = tmp_path / "bert-base"  # a checkpoint directory of BERT-base size takes the usual base rate
    base.mkdir()
    (base / "config.json").write_text('{"model_type": "bert", "hidden_size": 768}')
    assert load_config(None, [], {"train.model": str(base)}).train.peak_lr == 3e-5
    assert load_config(None, ["etl.tokenizer=/my/tok"], {"train.model": "minilm"}).etl.tokenizer == "/my/tok"
    assert load_config(None, []).etl.tokenizer == ""


def test_dp_fine_tunes_a_pretrained_encoders_top_layers_unless_told_otherwise():
    minilm = {"train.model": "minilm"}
    assert load_config(None, [], minilm).train.top_layers is None  # every layer without DP
    private = load_config(None, ["train.dp_epsilon=8"], minilm).train
    assert private.top_layers == 2 and private.peak_lr == 3e-3  # and a rate for clipped, noisy gradients
    assert load_config(None, ["train.dp_epsilon=8", "train.trainable_layers=6"], minilm).train.top_layers == 6
    assert load_config(None, ["train.trainable_layers=0"], minilm).train.top_layers == 0  # the head alone
    assert load_config(None, ["train.dp_epsilon=8"]).train.top_layers is None  # tiny from scratch: all of it
    with pytest.raises(ValueError, match="'tiny' trains from scratch"):
        load_config(None, ["train.trainable_layers=1"])
    with pytest.raises(ValueError, match=r"must be in \[0, 6\] for 'minilm', got 7"):
        load_config(None, ["train.trainable_layers=7"], minilm)


def test_the_batch_is_global_and_split_over_the_ranks():
    train = load_config(None, []).train
    assert (train.global_batch, train.num_processes, train.rank_batch) == (64, 2, 32)
    assert load_config(None, ["train.num_processes=4"]).train.rank_batch == 16  # the step stays 64 rows
    assert load_config(None, ["train.num_processes=3"]).train.global_batch == 63  # the default, split evenly
    with pytest.raises(ValueError, match="64 does not split evenly over 3 processes"):
        load_config(None, ["train.num_processes=3", "train.batch_size=64"])
    assert load_config(None, ["train.num_processes=3", "train.batch_size=63"]).train.rank_batch == 21


def test_learning_rate_defaults_by_model():
    assert load_config(None, []).train.peak_lr == 3e-3
    assert load_config(None, [], {"train.model": "base"}).train.peak_lr == 3e-4
    assert load_config(None, ["train.lr=0.01"], {"train.model": "base"}).train.peak_lr == 0.01


def test_task_flag_selects_the_etl_task_and_rejects_unknown_ones():
    from tokenlake.jobs.cli import build_parser, config_from_args

    args = build_parser().parse_args(["run", "--input", "x.jsonl", "--task", "causal-lm"])
    assert config_from_args(args).etl.task == "causal-lm"
    assert config_from_args(build_parser().parse_args(["etl", "--input", "x.jsonl"])).etl.task == "classification"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--input", "x.jsonl", "--task", "regression"])


def test_distributor_flags_reach_the_train_config():
    from tokenlake.jobs.cli import build_parser, config_from_args

    def cfg(*flags):
        return config_from_args(build_parser().parse_args(["train", *flags])).train

    assert (cfg().local_mode, cfg().use_gpu) == (True, False)
    assert (cfg("--no-local-mode").local_mode, cfg("--local-mode").local_mode) == (False, True)
    assert cfg("--use-gpu").use_gpu is True
    assert cfg("--set", "train.local_mode=false").local_mode is False
