"""Near-duplicate detection: LSH candidates, exact Jaccard verification and clusters, all in Spark.

Similarity is the Jaccard index of two documents' sets of word shingles (``shingle_words``
consecutive lowercased words; a word is a run of Unicode ``\\w`` characters). Two steps, chained with
``df.transform``::

    df.transform(with_minhash_bands, num_perm=140, bands=20).transform(mark_near_duplicates, threshold=0.8)

1. ``with_minhash_bands`` (``etl.minhash``) adds one 64-bit hash per band of ``num_perm // bands``
   MinHash values.
2. ``mark_near_duplicates`` takes rows that share a (band, hash) bucket as candidates, links each
   to the bucket's smallest id (a star, so a big bucket costs its size, not its size squared),
   keeps the links whose Jaccard is >= ``threshold`` (exact, over the shingle sets that
   ``with_minhash_bands`` keeps as 64-bit hashes), labels connected components by
   iterative min-label propagation and marks every row but one per component.

Banding (``etl.minhash``) finds a pair at the default threshold with >= 99 % probability;
candidates that fail the exact check cost one verified edge each; they never cause a false mark.

Cost is linear in the number of documents: one bucket row per band per document, one candidate
edge at most per bucket row, and a handful of joins per propagation round over the rows that have
a verified edge. Nothing is collected to the driver.

Appending to a lake (``drop_near_duplicates``): stored rows keep their band hashes and the
``minhash_spec`` they were computed with, so a run signs only its new rows (and stored rows whose
bands are missing or were made with other settings) and joins the new rows' buckets with the
stored ones. Only stored rows that share a bucket with a new row enter the clustering, and only
with the buckets they share: edges between two stored rows can never change whether a new row is
kept (a new row's component holds a stored row either way, or none either way), so the result is
the one over the whole lake.
"""

from __future__ import annotations

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from tokenlake.etl.minhash import jaccard, minhash_spec, shingle_set, with_minhash_bands


class NearDupClusteringDidNotConverge(RuntimeError):
    """Min-label propagation still changed labels after ``max_iterations`` rounds."""


# ---------------------------------------------------------------- candidates, verification, clusters


def _candidate_edges(df: DataFrame) -> DataFrame:
    """(src, dst): every row of a shared bucket linked to the bucket's smallest id, once per pair;
    never two preferred rows (published rows are never marked, so such an edge decides nothing)."""
    pref = F.coalesce(F.col("preferred"), F.lit(False))
    buckets = df.select("id", pref.alias("pref"), F.posexplode("minhash_bands").alias("band", "bucket"))
    buckets = buckets.where(F.col("bucket").isNotNull())  # a null band hash joins no bucket
    bucket = Window.partitionBy("band", "bucket")
    root = F.min("id").over(bucket)
    root_pref = F.min_by("pref", "id").over(bucket)
    linked = buckets.select(F.col("id").alias("src"), root.alias("dst"), (F.col("pref") & root_pref).alias("both"))
    return linked.where((F.col("src") != F.col("dst")) & ~F.col("both")).select("src", "dst").distinct()


def checkpoint(df: DataFrame) -> DataFrame:
    """``df`` computed now, its lineage cut (each propagation round would otherwise plan all the
    rounds before it), and kept on two executors: a local checkpoint cannot be recomputed, so with
    one copy the loss of its executor would fail the run. A query over a frame with a long lineage
    of cached frames pays for it on the driver at every adaptive re-planning (each cached plan is
    part of the plan it describes); over a checkpoint it does not."""
    return df.localCheckpoint(eager=True, storageLevel=StorageLevel.MEMORY_AND_DISK_2)


def _verified_edges(df: DataFrame, *, threshold: float) -> DataFrame:
    """Candidate edges whose shingle Jaccard is >= threshold, with both ends' ``preferred``: the
    shingle sets signing found, read for the documents that have a candidate edge."""
    edges = checkpoint(_candidate_edges(df))  # read three times below: computed once
    ends = edges.select(F.col("src").alias("id")).union(edges.select(F.col("dst").alias("id"))).distinct()
    docs = df.join(ends, "id", "left_semi").select(
        "id", F.col("shingles").alias("sh"), F.coalesce(F.col("preferred"), F.lit(False)).alias("pref")
    )
    side = {end: docs.select(*(F.col(c).alias(f"{end}_{c}") for c in docs.columns)) for end in ("src", "dst")}
    pairs = edges.join(side["src"], F.col("src") == F.col("src_id")).join(side["dst"], F.col("dst") == F.col("dst_id"))
    return pairs.where(jaccard(F.col("src_sh"), F.col("dst_sh")) >= threshold).select(
        "src", "dst", "src_pref", "dst_pref"
    )


def _components(edges: DataFrame, *, max_iterations: int) -> DataFrame:
    """(id, component): the smallest id of each connected component of the undirected edges.

    Each round takes the smallest label among a vertex and its neighbours, then jumps to the label
    of that label (pointer jumping shortens long chains); labels only decrease and stay inside the
    component, so when a round changes nothing every vertex holds its component's smallest id."""
    adj = edges.select("src", "dst").union(edges.select(F.col("dst").alias("src"), F.col("src").alias("dst")))
    first = adj.groupBy(F.col("src").alias("id")).agg(F.min("dst").alias("nbr"))
    labels = checkpoint(first.select("id", F.least("id", "nbr").alias("label")))
    for _ in range(max_iterations):
        nbr = adj.join(labels.select(F.col("id").alias("dst"), F.col("label").alias("nbr")), "dst")
        nbr = nbr.groupBy(F.col("src").alias("id")).agg(F.min("nbr").alias("nbr"))
        step = labels.join(nbr, "id").select("id", "label", F.least("label", "nbr").alias("hop"))
        jump = labels.select(F.col("id").alias("hop"), F.col("label").alias("hop_label"))
        step = step.join(jump, "hop", "left").select("id", "label", F.least("hop", "hop_label").alias("new"))
        step = checkpoint(step)  # cuts the lineage; one round's joins are computed once
        if step.where(F.col("new") != F.col("label")).isEmpty():
            return labels.withColumnRenamed("label", "component")
        labels = step.select("id", F.col("new").alias("label"))
    raise NearDupClusteringDidNotConverge(
        f"near-duplicate clusters still changed after {max_iterations} label-propagation rounds; "
        "raise max_iterations (a long chain of near-duplicates needs more)"
    )


def _marks(edges: DataFrame, components: DataFrame) -> DataFrame:
    """(id, near_dup_of) for every clustered row: the keeper is the smallest preferred id of the
    component if it has a preferred row, else the smallest id; preferred rows are never marked."""
    ends = edges.select(F.col("src").alias("id"), F.col("src_pref").alias("pref")).union(
        edges.select(F.col("dst").alias("id"), F.col("dst_pref").alias("pref"))
    )
    members = components.join(ends.distinct(), "id")
    preferred_min = F.min(F.when(F.col("pref"), F.col("id"))).over(Window.partitionBy("component"))
    keeper = F.coalesce(preferred_min, F.col("component"))
    marked = members.withColumn("keeper", keeper)
    mark = F.when(~F.col("pref") & (F.col("id") != F.col("keeper")), F.col("keeper"))
    return marked.select("id", mark.alias("near_dup_of"))


def mark_near_duplicates(df: DataFrame, *, threshold: float = 0.8, max_iterations: int = 30) -> DataFrame:
    """Add ``near_dup_of`` (string): the id kept for the row's near-duplicate cluster, or null for a
    kept row or one in no cluster. Rows and columns are all kept (mark, do not drop).

    ``df`` needs ``id`` (unique string), ``minhash_bands`` and ``shingles`` (``with_minhash_bands``)
    and ``preferred`` (boolean; null reads false): preferred rows were
    published before, so one of them is kept whenever a cluster has one, and none is ever marked.
    The result is the same whatever the partitioning. ``df`` is read three times (buckets, shingles
    of the candidates, the final join): persist it, or read it from a table, rather than recompute it.
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    edges = _verified_edges(df, threshold=threshold)
    edges = checkpoint(edges)  # every propagation round reads it: compute it once
    marks = _marks(edges, _components(edges, max_iterations=max_iterations))
    return df.join(marks, "id", "left").select(*df.columns, "near_dup_of")


# ---------------------------------------------------------------- new rows against a stored table

BAND_COLUMNS = ("minhash_bands", "minhash_spec")
"""What a stored row keeps so that later runs need not sign it again."""
BROADCAST_BUCKETS = 4_000_000
"""Up to this many new (band, bucket) pairs are sent to every task rather than shuffled with the lake's."""


def _stored_bands(stored: DataFrame, spec: int, sign) -> DataFrame:
    """``(id, text, minhash_bands)`` of every stored row: its kept bands where they were made with
    ``spec``, else signed now (``sign``: rows from an older lake, or from other settings)."""
    rows = stored.select("id", "text")
    if not set(BAND_COLUMNS) <= set(stored.columns):
        return sign(rows).select("id", "text", "minhash_bands")
    fresh = F.coalesce(F.col("minhash_spec") == F.lit(spec), F.lit(False))
    kept = stored.where(fresh).select("id", "text", "minhash_bands")
    if stored.where(~fresh).select("minhash_spec").isEmpty():  # the usual case: no text read for it
        return kept
    return kept.unionByName(sign(stored.where(~fresh).select(*rows.columns)).select(*kept.columns))


def drop_near_duplicates(
    new: DataFrame,
    stored: DataFrame | None,
    *,
    threshold: float = 0.8,
    num_perm: int = 140,
    bands: int = 20,
    shingle_words: int = 1,
    seed: int = 0,
    counter=None,
) -> tuple[DataFrame, int]:
    """The rows of ``new`` (``id``, ``text``, ...) that are no near-duplicate of another new row or
    of a ``stored`` row, with ``minhash_bands`` and ``minhash_spec`` added; stored rows win their
    clusters (published documents never move). Only the new rows are signed, and stored rows
    whose kept bands are missing or were made with other settings (``counter`` counts them all).
    The result is persisted, and returned with its row count: unpersist it when done."""
    from pyspark import StorageLevel

    settings = {"num_perm": num_perm, "bands": bands, "shingle_words": shingle_words, "seed": seed}
    spec = minhash_spec(**settings)

    def sign(df: DataFrame) -> DataFrame:
        return with_minhash_bands(df, counter=counter, **settings)

    signed = sign(new).withColumn("minhash_spec", F.lit(spec)).persist(StorageLevel.MEMORY_AND_DISK)
    pool = signed.select("id", "shingles", "minhash_bands", F.lit(False).alias("preferred"))
    if stored is not None:
        # stored rows that share a bucket with a new row: found on the band column alone, and only
        # those are read whole. A small append's buckets go to every task (no shuffle of the lake's).
        small = signed.count() * bands <= BROADCAST_BUCKETS
        buckets = signed.select(F.posexplode("minhash_bands").alias("band", "bucket")).distinct()
        old = _stored_bands(stored, spec, sign)
        near = old.select("id", F.posexplode("minhash_bands").alias("band", "bucket"))
        near = near.join(F.broadcast(buckets) if small else buckets, ["band", "bucket"], "left_semi")
        # each neighbour keeps only the band hashes it shares with a new row (the others null): its
        # other buckets hold stored rows alone, whose edges decide nothing (a 400-document append
        # to the 200 MB bench lake has 2,600 neighbours: 52,000 bucket rows, most of them such)
        shared = near.groupBy("id").agg(F.map_from_entries(F.collect_list(F.struct("band", "bucket"))).alias("m"))
        neighbours = old.select("id", "text").join(F.broadcast(shared) if small else shared, "id")
        only_shared = F.transform(F.sequence(F.lit(0), F.lit(bands - 1)), lambda band: F.col("m")[band])
        neighbours = neighbours.select(
            "id", shingle_set(F.col("text"), shingle_words).alias("shingles"), only_shared.alias("minhash_bands")
        )
        pool = pool.unionByName(neighbours.withColumn("preferred", F.lit(True)))
    pool = pool.persist(StorageLevel.MEMORY_AND_DISK)  # mark_near_duplicates reads it three times
    marked = mark_near_duplicates(pool, threshold=threshold)
    keep = marked.where(~F.col("preferred") & F.col("near_dup_of").isNull()).select("id")
    kept = signed.join(keep, "id", "left_semi").drop("shingles").persist(StorageLevel.MEMORY_AND_DISK)
    rows = kept.count()
    pool.unpersist()
    signed.unpersist()
    return kept, rows
