"""The MLlib baseline: real predictions on a separable corpus, and the macro-F1 it reports."""

import pytest

from tokenlake.training.baseline import hash_size, macro_f1, train_baseline


def test_macro_f1_averages_per_label_f1():
    # label 0: tp 3, fp 1, fn 0 -> 6/7; label 1: tp 1, fp 0, fn 1 -> 2/3; label 2 never seen -> 0
    confusion = {(0, 0): 3, (1, 1): 1, (1, 0): 1}
    assert macro_f1(confusion, 3) == pytest.approx((6 / 7 + 2 / 3 + 0) / 3)


def test_the_hashed_space_grows_with_the_n_grams_up_to_its_cap():
    assert hash_size(9, 1 << 18) == 1024  # never below 2^10
    assert hash_size(1000, 1 << 18) == 2048 and hash_size(1025, 1 << 18) == 4096  # two buckets per n-gram
    assert hash_size(10**7, 1 << 18) == 1 << 18


def test_baseline_learns_words_and_scores_the_test_split(spark):
    words = {"sport": "goal match referee striker", "food": "bread butter recipe oven"}
    rows = [
        (f"{label}-{i}", f"{words[label].split()[i % 4]} and {words[label].split()[(i + 1) % 4]} today",
         label, "test" if i % 5 == 0 else "validation" if i % 5 == 1 else "train")
        for label in words for i in range(60)
    ]  # fmt: skip
    rows.append(("odd", "completely unrelated words", "food", "test"))
    silver = spark.createDataFrame(rows, "id string, text string, label string, split string")
    result = train_baseline(silver, ["food", "sport"])
    assert result["test_rows"] == 25
    assert result["test_accuracy"] >= 24 / 25 and result["test_macro_f1"] > 0.9
    assert result["reg_param"] in (1e-5, 1e-4, 1e-3, 1e-2) and result["val_accuracy"] == 1.0
    assert result["features"] == 2 * 1024  # 8 words and ~30 word pairs in the train split


def test_the_baseline_sees_word_pairs_and_tunes_its_regularisation_on_validation(spark):
    """Both classes use the same words; only their order (a bigram) tells them apart, which a bag
    of single words cannot learn."""
    import random

    rng, rows = random.Random(0), []
    for i in range(400):
        a, b = rng.sample(["red", "blue", "green", "gold", "grey", "pink"], 2)
        label = "up" if i % 2 else "down"
        first, second = ("alpha", "beta") if label == "up" else ("beta", "alpha")
        split = "test" if i % 5 == 0 else "validation" if i % 5 == 1 else "train"
        rows.append((str(i), f"{a} {first} {second} {b}", label, split))
    silver = spark.createDataFrame(rows, "id string, text string, label string, split string")
    result = train_baseline(silver, ["down", "up"])
    assert result["test_accuracy"] >= 0.95 and result["val_accuracy"] >= 0.95
