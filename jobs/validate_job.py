"""spark-submit / scheduler entry point: re-validate a published gold version with its Great Expectations suite.

On a cluster (the session, master and resources come from spark-submit; nothing here forces them)::

    spark-submit --master spark://HOST:7077 \
      --packages io.delta:delta-spark_2.13:4.0.1 \
      --conf spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension \
      --conf spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog \
      jobs/validate_job.py --work /dbfs/tokenlake/work --data-version 3

Locally, the same flags::

    tokenlake validate --work /dbfs/tokenlake/work --data-version 3

Exit codes: 0 success, 1 an unforeseen error (its traceback in WORK/logs), 2 bad configuration, 3 a
table failed its suite, 5 Delta JARs missing, 7 another run holds the work dir, 130/143 stopped by
Ctrl-C/SIGTERM (README: "The CLI").
"""

import sys

from tokenlake.jobs.cli import job_entry

build_parser, main = job_entry("validate", "validate_job.py", __doc__)

if __name__ == "__main__":
    sys.exit(main())
