"""The linear baseline a transformer has to beat, and a fair one: Spark MLlib's TF-IDF of word
unigrams and bigrams and a logistic regression with its regularisation tuned on the validation
split, trained on silver's train split and scored on the same test split as the transformer."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def macro_f1(confusion: dict[tuple[int, int], int], num_labels: int) -> float:
    """Mean F1 over the labels, from ``{(true, predicted): count}``."""
    scores = []
    for c in range(num_labels):
        tp = confusion.get((c, c), 0)
        fp = sum(n for (t, p), n in confusion.items() if p == c and t != c)
        fn = sum(n for (t, p), n in confusion.items() if t == c and p != c)
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / num_labels


def confusion_scores(confusion: dict[tuple[int, int], int], num_labels: int) -> dict:
    """``{"accuracy", "macro_f1", "rows"}`` of ``{(true, predicted): count}`` (a true label of -1,
    one the model does not know, counts as wrong)."""
    total = sum(confusion.values())
    accuracy = sum(n for (t, p), n in confusion.items() if t == p) / total
    return {"accuracy": accuracy, "macro_f1": macro_f1(confusion, num_labels), "rows": total}


REG_PARAMS = (1e-5, 1e-4, 1e-3, 1e-2)
"""L2 strengths the baseline tries (on the mean loss: a large train split takes a weak one); the one
with the best validation accuracy is scored on test."""
DEFAULT_REG = 1e-3
"""The strength used when silver has no validation rows to choose by."""


def hash_size(distinct: int, cap: int) -> int:
    """Hashed features for ``distinct`` n-grams: the smallest power of two with two buckets per
    n-gram, at most ``cap``. Each optimizer step of the logistic regression aggregates a dense
    gradient of this size, so a small corpus must not pay for a large one's space."""
    return min(cap, 1 << max(10, (2 * max(distinct, 1) - 1).bit_length()))


def train_baseline(silver: DataFrame, labels: list[str], *, num_features: int = 1 << 18) -> dict:
    """``{"test_accuracy", "test_macro_f1", "test_rows", "reg_param", "val_accuracy", "features"}``:
    TF-IDF of word unigrams and bigrams (hashed, at most ``num_features`` each, ``hash_size``) and a
    logistic regression whose L2 strength is chosen on silver's validation split, trained on its
    train split and scored on its test split. Label ids follow ``labels`` (gold's order), so the
    figures compare with the transformer's."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import IDF, HashingTF, NGram, RegexTokenizer, VectorAssembler

    label_id = F.create_map(*[F.lit(x) for i, n in enumerate(labels) for x in (n, i)])
    data = silver.select("split", "text", label_id[F.col("label")].cast("double").alias("label_id"))
    grams = Pipeline(
        stages=[
            RegexTokenizer(inputCol="text", outputCol="words", pattern=r"\W+", toLowercase=True),
            NGram(n=2, inputCol="words", outputCol="bigrams"),
        ]
    ).fit(data)
    # one pass over the train split counts both kinds: a word never holds a space, a bigram always does
    grams_seen = grams.transform(data.where(F.col("split") == "train")).select(
        F.explode(F.concat("words", "bigrams")).alias("g")
    )
    pair = F.col("g").contains(" ")
    counts = grams_seen.agg(
        F.approx_count_distinct(F.when(~pair, F.col("g"))), F.approx_count_distinct(F.when(pair, F.col("g")))
    ).first()
    sizes = [hash_size(n, num_features) for n in counts]
    features = Pipeline(
        stages=[
            grams,
            HashingTF(inputCol="words", outputCol="tf1", numFeatures=sizes[0]),
            HashingTF(inputCol="bigrams", outputCol="tf2", numFeatures=sizes[1]),
            VectorAssembler(inputCols=["tf1", "tf2"], outputCol="tf"),
            IDF(inputCol="tf", outputCol="features"),
        ]
    ).fit(data.where(F.col("split") == "train"))
    vectors = features.transform(data).select("split", "features", "label_id").cache()
    try:
        train = vectors.where(F.col("split") == "train")
        fits = []
        for reg in REG_PARAMS:
            # Spark scales each feature to unit variance before the penalty by default, which lifts a
            # rare n-gram's weight to a common one's: it cost 1.5 and 3.3 points on two real-sentence sets
            model = LogisticRegression(labelCol="label_id", maxIter=100, regParam=reg, standardization=False).fit(train)
            fits.append((_confusion(model.transform(vectors.where(F.col("split") == "validation"))), reg, model))
        if fits[0][0]:
            scored = [(confusion_scores(c, len(labels))["accuracy"], reg, model) for c, reg, model in fits]
            val_accuracy, reg, model = max(scored, key=lambda s: (s[0], s[1]))  # ties: the stronger regularisation
        else:  # no validation rows to choose by
            val_accuracy, reg, model = None, DEFAULT_REG, next(m for _, r, m in fits if r == DEFAULT_REG)
        confusion = _confusion(model.transform(vectors.where(F.col("split") == "test")))
    finally:
        vectors.unpersist()
    if not confusion:
        raise ValueError("the baseline has no test rows")
    scores = confusion_scores(confusion, len(labels))
    return {
        "test_accuracy": scores["accuracy"],
        "test_macro_f1": scores["macro_f1"],
        "test_rows": scores["rows"],
        "reg_param": reg,
        "val_accuracy": val_accuracy,
        "features": sum(sizes),
    }


def _confusion(scored: DataFrame) -> dict[tuple[int, int], int]:
    return {
        (int(r["label_id"]), int(r["prediction"])): r["count"]
        for r in scored.groupBy("label_id", "prediction").count().collect()
    }
