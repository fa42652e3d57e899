"""The one place that gets a SparkSession.

Under ``spark-submit`` or on Databricks the JVM already runs with the cluster's settings: the
session is taken as it is (never forcing a master) and only checked for Delta. In a plain Python
process (``tokenlake run``, tests) a local session is built and Delta's JARs are resolved through
Spark's Ivy (local ~/.m2 first, then the Maven repository).

Where the work directory or the input is on S3 (``s3a://``), ``hadoop-aws`` matching Spark's own
Hadoop client is added the same way, and s3a gets the endpoint and region of the standard
variables (``storage_settings``); the credentials stay with the AWS SDK's chain. A local
session's driver maps Spark's classes from a class-data-sharing archive where one was built
(``jobs.class_archive``).

``python -m tokenlake.jobs.session --resolve-delta`` resolves the JARs once (the Makefile calls it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path

from pyspark.sql import SparkSession

from tokenlake.jobs import class_archive

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


def hadoop_version() -> str:
    """The Hadoop client version pip's PySpark carries (its ``hadoop-client-api`` JAR)."""
    import glob

    import pyspark

    jars = glob.glob(os.path.join(os.path.dirname(pyspark.__file__), "jars", "hadoop-client-api-*.jar"))
    if not jars:
        raise DeltaJarsMissing("no hadoop-client-api JAR in this PySpark: cannot pick a matching hadoop-aws")
    return os.path.basename(jars[0])[len("hadoop-client-api-") : -len(".jar")]


def storage_settings(uris: list[str]) -> tuple[dict[str, str], list[str]]:
    """``(Spark settings, Maven packages)`` for reading and writing ``uris``: for ``s3a://``,
    hadoop-aws and the endpoint/region of ``AWS_ENDPOINT_URL``/``AWS_REGION`` (path-style access
    for an S3-compatible store). Keys are not copied into Spark's settings: s3a's default chain
    reads ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, profiles and instance roles itself."""
    from urllib.parse import urlsplit

    if not any(urlsplit(u).scheme == "s3a" for u in uris):
        return {}, []
    conf = {}
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        conf |= {
            "spark.hadoop.fs.s3a.endpoint": endpoint,
            "spark.hadoop.fs.s3a.path.style.access": "true",
            "spark.hadoop.fs.s3a.connection.ssl.enabled": str(endpoint.startswith("https:")).lower(),
        }
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        conf["spark.hadoop.fs.s3a.endpoint.region"] = region
    return conf, [f"org.apache.hadoop:hadoop-aws:{hadoop_version()}"]


def driver_gpu_settings(count: int) -> dict[str, str]:
    """Spark settings that give a local session's driver ``count`` GPUs, which TorchDistributor's
    local mode with ``use_gpu`` requires (it asks Spark, not CUDA, which GPUs the driver owns).
    Spark learns the addresses from a discovery script: one is written that prints ``0..count-1``."""
    import json
    import tempfile

    addresses = json.dumps({"name": "gpu", "addresses": [str(i) for i in range(count)]})
    script = os.path.join(tempfile.mkdtemp(prefix="tokenlake-gpus-"), "gpus.py")
    with open(script, "w") as fh:
        fh.write(f"#!{sys.executable}\nprint({addresses!r})\n")
    os.chmod(script, 0o755)
    return {"spark.driver.resource.gpu.amount": str(count), "spark.driver.resource.gpu.discoveryScript": script}


def apply_conf(spark: SparkSession, conf: dict[str, str]) -> None:
    """Settings for a session that already runs: ``spark.hadoop.*`` into its Hadoop configuration,
    the rest as runtime SQL settings (a static one is an error: give it to spark-submit)."""
    for key, value in conf.items():
        if key.startswith("spark.hadoop."):
            spark.sparkContext._jsc.hadoopConfiguration().set(key[len("spark.hadoop.") :], value)
        elif spark.conf.get(key, None) != value:
            if not spark.conf.isModifiable(key):
                raise ValueError(f"--conf {key}: Spark cannot change it in a running session; pass it to spark-submit")
            spark.conf.set(key, value)


@contextlib.contextmanager
def _output_to(path: Path | None):
    """While the JVM is launched, point this process's stdout and stderr at ``path`` (appended):
    the JVM inherits them and keeps writing there; this process gets its own back at once."""
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    saved = os.dup(1), os.dup(2)
    try:
        os.dup2(target, 1)
        os.dup2(target, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (target, *saved):
            os.close(fd)
    logging.getLogger(__name__).info("Spark's own output: %s (--verbose shows it here)", path)


def get_spark(
    app_name: str = "tokenlake",
    master: str | None = None,
    conf: dict[str, str] | None = None,
    packages: list[str] | None = None,
    driver_gpus: int = 0,
    jvm_output: Path | None = None,
) -> SparkSession:
    """The active session under spark-submit/Databricks (``conf`` applied where Spark allows it);
    otherwise a local one with Delta, ``conf``, the Maven ``packages`` and ``driver_gpus`` GPUs,
    whose JVM writes its own output (Ivy's resolution, Spark's warnings) to ``jvm_output`` if given."""
    active = SparkSession.getActiveSession()
    if active is not None:  # a notebook, a test run, or a second call in this process
        apply_conf(active, conf or {})
        return active
    if _running_in_a_launched_jvm():
        spark = SparkSession.builder.appName(app_name).getOrCreate()
        _check_delta(spark)
        apply_conf(spark, conf or {})
        return spark
    from delta import configure_spark_with_delta_pip

    builder = SparkSession.builder.appName(app_name).master(master or os.environ.get("TOKENLAKE_MASTER", "local[*]"))
    gpus = driver_gpu_settings(driver_gpus) if driver_gpus else {}
    # the driver maps the classes it will load from one archive when one was built (jobs.class_archive)
    conf = class_archive.with_java_options(conf or {}, class_archive.java_options(packages or []))
    for key, value in {**LOCAL_CONF, **DELTA_SQL_CONF, **gpus, **conf}.items():
        builder = builder.config(key, value)
    # Spark's launcher needs to run the workers with this interpreter (STACK.md).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    try:
        with _output_to(jvm_output):
            spark = configure_spark_with_delta_pip(builder, extra_packages=packages or []).getOrCreate()
    except Exception as exc:
        if "JAVA_GATEWAY_EXITED" in str(exc) or "Java gateway process exited" in str(exc):
            raise DeltaJarsMissing(
                f"Spark could not start; usually Delta's JARs (io.delta:delta-spark_2.13:{_delta_version()}"
                f"{''.join(', ' + p for p in packages or [])}) could not be resolved. Run `make delta-jars` "
                "(fills ~/.m2 with mvn dependency:get) or check that `java -version` is 17+"
                + (f"; Spark's output is in {jvm_output}" if jvm_output else "")
            ) from exc
        raise
    _check_delta(spark)
    spark.sparkContext.setLogLevel(os.environ.get("TOKENLAKE_SPARK_LOG_LEVEL", "ERROR"))
    return spark


if __name__ == "__main__":
    if sys.argv[1:] != ["--resolve-delta"]:
        sys.exit("usage: python -m tokenlake.jobs.session --resolve-delta")
    try:
        get_spark("tokenlake-resolve-delta", master="local[1]").stop()
    except DeltaJarsMissing as exc:
        sys.exit(f"error: {exc}")
    print(f"Delta {_delta_version()} JARs resolve")
