"""spark-submit / scheduler entry point: score files or a Delta table with a trained classifier,
in Spark, into a Delta table (and its quarantine), with ``WORK/predict_report.json``.

On a cluster::

    spark-submit --master spark://HOST:7077 \
      --packages io.delta:delta-spark_2.13:4.0.1 \
      --conf spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension \
      --conf spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog \
      jobs/predict_job.py --model models:/tokenlake@champion --input /data/new/ --work /dbfs/tokenlake/work

Exit codes: 0 success, 1 an unforeseen error (its traceback in WORK/logs), 2 bad configuration or a
model that cannot be used, 4 input missing or unreadable, 5 Delta JARs missing, 7 another run holds
the work dir, 130/143 stopped by Ctrl-C/SIGTERM (README: "The CLI").
"""

import sys

from tokenlake.jobs.cli import job_entry

build_parser, main = job_entry("predict", "predict_job.py", __doc__)

if __name__ == "__main__":
    sys.exit(main())
