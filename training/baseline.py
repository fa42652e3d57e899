"""The linear baseline a transformer has to beat: Spark MLlib's tokenizer, hashing TF, IDF and
logistic regression, trained on silver's train split and scored on the same test split."""

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


def train_baseline(silver: DataFrame, labels: list[str], *, num_features: int = 1 << 18) -> dict:
    """``{"test_accuracy", "test_macro_f1", "train_rows", "test_rows"}``; label ids follow ``labels``
    (gold's order), so the figures compare with the transformer's."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import IDF, HashingTF, RegexTokenizer

    label_id = F.create_map(*[F.lit(x) for i, n in enumerate(labels) for x in (n, i)])
    data = silver.select("split", "text", label_id[F.col("label")].cast("double").alias("label_id"))
    pipeline = Pipeline(
        stages=[
            RegexTokenizer(inputCol="text", outputCol="words", pattern=r"\W+", toLowercase=True),
            HashingTF(inputCol="words", outputCol="tf", numFeatures=num_features),
            IDF(inputCol="tf", outputCol="features"),
            LogisticRegression(featuresCol="features", labelCol="label_id", maxIter=100, regParam=1e-3),
        ]
    )
    train = data.where(F.col("split") == "train")
    model = pipeline.fit(train)
    scored = model.transform(data.where(F.col("split") == "test"))
    confusion = {
        (int(r["label_id"]), int(r["prediction"])): r["count"]
        for r in scored.groupBy("label_id", "prediction").count().collect()
    }
    if not confusion:
        raise ValueError("the baseline has no test rows")
    scores = confusion_scores(confusion, len(labels))
    return {
        "test_accuracy": scores["accuracy"],
        "test_macro_f1": scores["macro_f1"],
        "test_rows": scores["rows"],
    }
