"""The one place that gets a SparkSession.

Under ``spark-submit`` or on Databricks the JVM already runs with the cluster's settings: the
session is taken as it is (never forcing a master) and only checked for Delta. In a plain Python
process (``tokenlake run``, tests) a local session is built and Delta's JARs are resolved through
Spark's Ivy (local ~/.m2 first, then the Maven repository).

``python -m jobs.session --resolve-delta`` resolves the JARs once (the Makefile calls it).
"""

from __future__ import annotations

import os
import sys

from pyspark.sql import SparkSession

DELTA_SQL_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}
LOCAL_CONF = {
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "8",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.driver.memory": "4g",
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.showConsoleProgress": "false",
    # Delta rebuilds table state with this many tasks; its default (50) is for clusters.
    "spark.databricks.delta.snapshotPartitions": "2",
}


class DeltaJarsMissing(RuntimeError):
    """Delta Lake's JARs are not on the classpath and could not be resolved."""


def _running_in_a_launched_jvm() -> bool:
    """True under spark-submit / pyspark shells / Databricks, where the JVM's settings are given."""
    return "PYSPARK_GATEWAY_PORT" in os.environ or "DATABRICKS_RUNTIME_VERSION" in os.environ


def _check_delta(spark: SparkSession) -> None:
    from py4j.java_gateway import JavaClass

    # py4j resolves through Spark's class loader (where --packages JARs live); an unknown class
    # comes back as a JavaPackage.
    if not isinstance(spark._jvm.io.delta.tables.DeltaTable, JavaClass):
        raise DeltaJarsMissing(
            "Delta Lake is not on this Spark's classpath: pass --packages io.delta:delta-spark_2.13:"
            f"{_delta_version()} and --conf for {', '.join(DELTA_SQL_CONF)} to spark-submit"
        )


def _delta_version() -> str:
    from importlib.metadata import version

    return version("delta-spark")


def get_spark(
    app_name: str = "tokenlake", master: str | None = None, conf: dict[str, str] | None = None
) -> SparkSession:
    """The active session under spark-submit/Databricks; otherwise a local one with Delta."""
    active = SparkSession.getActiveSession()
    if active is not None:  # a notebook, a test run, or a second call in this process
        return active
    if _running_in_a_launched_jvm():
        spark = SparkSession.builder.appName(app_name).getOrCreate()
        _check_delta(spark)
        return spark
    from delta import configure_spark_with_delta_pip

    builder = SparkSession.builder.appName(app_name).master(master or os.environ.get("TOKENLAKE_MASTER", "local[*]"))
    for key, value in {**LOCAL_CONF, **DELTA_SQL_CONF, **(conf or {})}.items():
        builder = builder.config(key, value)
    # Spark's launcher needs to run the workers with this interpreter (STACK.md).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    try:
        spark = configure_spark_with_delta_pip(builder).getOrCreate()
    except Exception as exc:
        if "JAVA_GATEWAY_EXITED" in str(exc) or "Java gateway process exited" in str(exc):
            raise DeltaJarsMissing(
                f"Spark could not start; usually Delta's JARs (io.delta:delta-spark_2.13:{_delta_version()}) "
                "could not be resolved. Run `make delta-jars` (fills ~/.m2 with mvn dependency:get) "
                "or check that `java -version` is 17+."
            ) from exc
        raise
    _check_delta(spark)
    spark.sparkContext.setLogLevel(os.environ.get("TOKENLAKE_SPARK_LOG_LEVEL", "ERROR"))
    return spark


if __name__ == "__main__":
    if sys.argv[1:] != ["--resolve-delta"]:
        sys.exit("usage: python -m jobs.session --resolve-delta")
    try:
        get_spark("tokenlake-resolve-delta", master="local[1]").stop()
    except DeltaJarsMissing as exc:
        sys.exit(f"error: {exc}")
    print(f"Delta {_delta_version()} JARs resolve")
