"""spark-submit / scheduler entry point: the whole run (etl, then train) in one
MLflow run; takes every flag of `tokenlake run`.

On a cluster (the session, master and resources come from spark-submit; nothing here forces them)::

    spark-submit --master spark://HOST:7077 \
      --packages io.delta:delta-spark_2.13:4.0.1 \
      --conf spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension \
      --conf spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog \
      jobs/pipeline_job.py --input data/sample.jsonl --work work

Locally, the same flags::

    tokenlake run --input data/sample.jsonl --work work

Exit codes: 0 success, 1 an unforeseen error (its traceback in WORK/logs), 2 bad configuration, 3 a
table failed its suite or gold was refused, 4 input missing, unreadable or without a usable training
row, 5 Delta JARs missing, 6 training failed (not enough task slots included), 7 another run holds
the work dir, 130/143 stopped by Ctrl-C/SIGTERM (README: "The CLI").
"""

import sys

from tokenlake.jobs.cli import job_entry

build_parser, main = job_entry("run", "pipeline_job.py", __doc__)

if __name__ == "__main__":
    sys.exit(main())
