"""Near-duplicate detection: MinHash signatures, LSH banding and exact Jaccard verification, all in Spark.

Similarity is the Jaccard index of two documents' sets of word shingles (``shingle_words``
consecutive lowercased words; a word is a run of Unicode ``\\w`` characters). Two steps, chained with
``df.transform``::

    df.transform(with_minhash_bands, num_perm=140, bands=20).transform(mark_near_duplicates, threshold=0.8)

1. ``with_minhash_bands`` adds one 64-bit hash per band of ``num_perm // bands`` MinHash values
   (an Arrow-batched pandas UDF in numpy).
2. ``mark_near_duplicates`` takes rows that share a (band, hash) bucket as candidates, links each
   to the bucket's smallest id (a star, so a big bucket costs its size, not its size squared),
   keeps the links whose exact Jaccard is >= ``threshold``, labels connected components by
   iterative min-label propagation and marks every row but one per component.

Banding: a pair of Jaccard J is a candidate with P = 1 - (1 - J**r)**b (r = num_perm // bands rows
per band, b bands). The defaults (num_perm=140, bands=20, r=7) give

    J  0.2     0.3     0.4    0.5    0.6    0.7    0.75   0.8    0.818  0.9
    P  0.0003  0.0044  0.032  0.145  0.433  0.821  0.943  0.991  0.996  1.000

so a pair at the threshold is found with >= 99 % probability, while a pair at J <= 0.5 is a
candidate 15 % of the time or less (and 0.4 % at J = 0.3). Candidates that fail the exact check
cost one verified edge each; they never cause a false mark.

Cost is linear in the number of documents: one bucket row per band per document, one candidate
edge at most per bucket row, and a handful of joins per propagation round over the rows that have
a verified edge. Nothing is collected to the driver.

Appending to a lake (``drop_near_duplicates``): stored rows keep their band hashes and the
``minhash_spec`` they were computed with, so a run signs only its new rows (and stored rows whose
bands are missing or were made with other settings) and joins the new rows' buckets with the
stored ones. Only stored rows that share a bucket with a new row enter the clustering: edges
between two stored rows can never change whether a new row is kept (a new row's component holds
a stored row either way, or none either way), so the result is the one over the whole lake.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

MERSENNE_61 = np.uint64((1 << 61) - 1)
_MASK_32 = np.uint64(0xFFFFFFFF)
_MASK_29 = np.uint64((1 << 29) - 1)
_29, _32, _61 = np.uint64(29), np.uint64(32), np.uint64(61)
_CHUNK_CELLS = 1 << 15  # shingles x permutations per numpy block: 256 KiB, stays in the CPU cache


class NearDupClusteringDidNotConverge(RuntimeError):
    """Min-label propagation still changed labels after ``max_iterations`` rounds."""


# ---------------------------------------------------------------- shingles (Spark built-ins)


def words(text: Column) -> Column:
    """Lowercased runs of Unicode word characters; an empty array for null text."""
    found = F.regexp_extract_all(F.lower(text), F.lit(r"(?U)\w+"), 0)
    return F.coalesce(found, F.array().cast("array<string>"))


def shingles(text: Column, shingle_words: int = 1) -> Column:
    """Distinct ``shingle_words``-word shingles (words joined by one space). A document shorter than
    ``shingle_words`` words is one shingle of all its words; an empty one has none."""
    w = words(text)
    if shingle_words == 1:
        return F.array_distinct(w)
    # k shifted slices zipped, then joined: a lambda that read ``w`` would split the text again per element
    n = F.greatest(F.size(w) - shingle_words + 1, F.lit(1))
    zipped = F.arrays_zip(*[F.slice(w, k + 1, n).alias(f"w{k}") for k in range(shingle_words)])
    grams = F.transform(zipped, lambda g: F.concat_ws(" ", *[g[f"w{k}"] for k in range(shingle_words)]))
    return F.when(F.size(w) == 0, F.array().cast("array<string>")).otherwise(F.array_distinct(grams))


def jaccard(a: Column, b: Column) -> Column:
    """Jaccard index of two arrays of distinct values; null when both are empty."""
    inter = F.size(F.array_intersect(a, b))
    union = F.size(a) + F.size(b) - inter
    return F.when(union > 0, inter / union)


# ---------------------------------------------------------------- MinHash (numpy)


def permutations(num_perm: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Parameters (a, b) of the hash functions x -> (a*x + b) mod (2**61 - 1), 1 <= a < p, 0 <= b < p.

    Drawn from BLAKE2b of (seed, index) rather than a numpy generator, whose streams may change
    between numpy versions: bands stored by one run stay comparable with the next."""
    p = int(MERSENNE_61)
    draws = [
        int.from_bytes(hashlib.blake2b(f"tokenlake-minhash:{seed}:{i}".encode(), digest_size=8).digest(), "little")
        for i in range(2 * num_perm)
    ]
    a = np.array([1 + d % (p - 1) for d in draws[:num_perm]], dtype=np.uint64)
    b = np.array([d % p for d in draws[num_perm:]], dtype=np.uint64)
    return a, b


def _universal_hash(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(a*x + b) mod p, p = 2**61 - 1, for every x (< 2**32, rows) and (a, b) (columns), exact in
    uint64: a = a_hi * 2**32 + a_lo, and 2**61 = 1 (mod p) folds the high parts back in. In place
    where it can: on blocks that fit in the CPU cache this is ~7 ns a cell instead of ~40."""
    x = x[:, None]
    lo = x * (a & _MASK_32)  # < 2**64
    hi = x * (a >> _32)  # < 2**61
    v = lo >> _61
    v += b
    lo &= MERSENNE_61
    v += lo
    v += hi >> _29
    hi &= _MASK_29
    hi <<= _32
    v += hi  # < 2**63
    lo = v >> _61
    v &= MERSENNE_61
    v += lo  # < 2**61 + 4 < 2 * p
    return np.minimum(v, v - MERSENNE_61, out=v)  # v - p wraps around when v < p


def _mix64(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit reaches every output bit."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def shingle_hashes(values: np.ndarray) -> np.ndarray:
    """32-bit hashes of strings, the same in every process (pandas' SipHash-2-4 with its fixed key,
    unchanged since pandas 0.20, unlike Python's salted ``hash``)."""
    h = pd.util.hash_array(values, categorize=True)
    return (h ^ (h >> np.uint64(32))) & _MASK_32


def minhash_signatures(docs: list[np.ndarray], a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MinHash signature (len(docs), len(a)) of each document's shingle array, and a mask of the
    documents that have at least one shingle (the others' rows are meaningless)."""
    lengths = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
    sig = np.full((len(docs), len(a)), MERSENNE_61, dtype=np.uint64)
    if lengths.sum() == 0:
        return sig, lengths > 0
    x = shingle_hashes(np.concatenate([np.asarray(d, dtype=object) for d in docs]))
    owner = np.repeat(np.arange(len(docs)), lengths)
    step = max(1, _CHUNK_CELLS // len(a))
    for start in range(0, len(x), step):  # blocks of shingles bound the memory of one huge doc
        own = owner[start : start + step]
        cuts = np.flatnonzero(np.r_[True, own[1:] != own[:-1]])
        mins = np.minimum.reduceat(_universal_hash(x[start : start + step], a, b), cuts, axis=0)
        rows = own[cuts]
        sig[rows] = np.minimum(sig[rows], mins)
    return sig, lengths > 0


def band_hashes(sig: np.ndarray, bands: int) -> np.ndarray:
    """One signed 64-bit hash per band of ``sig.shape[1] // bands`` consecutive MinHash values."""
    rows = sig.shape[1] // bands
    cells = sig[:, : bands * rows].reshape(len(sig), bands, rows)
    h = np.full((len(sig), bands), 0x9E3779B97F4A7C15, dtype=np.uint64)
    for j in range(rows):
        h = _mix64(h ^ cells[:, :, j])
    return h.view(np.int64)


def minhash_spec(*, num_perm: int, bands: int, shingle_words: int, seed: int = 0) -> int:
    """A 63-bit number naming the settings that made a row's band hashes: bands of rows with the
    same spec are comparable, others are not."""
    text = f"tokenlake-minhash-spec:{num_perm}:{bands}:{shingle_words}:{seed}"
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 1


def _minhash_bands_udf(num_perm: int, bands: int, seed: int, counter):
    a, b = permutations(num_perm, seed)  # shipped inside the UDF: identical on every executor
    empty = np.empty(0, dtype=np.int64)

    @F.pandas_udf("array<bigint>")
    def minhash_bands(docs: pd.Series) -> pd.Series:
        if counter is not None:
            counter.add(len(docs))
        sig, nonempty = minhash_signatures(list(docs), a, b)
        out = band_hashes(sig, bands)
        return pd.Series([row if keep else empty for row, keep in zip(out, nonempty, strict=True)], index=docs.index)

    return minhash_bands


def with_minhash_bands(
    df: DataFrame,
    *,
    text_col: str = "text",
    num_perm: int = 140,
    bands: int = 20,
    shingle_words: int = 1,
    seed: int = 0,
    counter=None,
) -> DataFrame:
    """Add ``minhash_bands`` (array<bigint>, ``bands`` values): the LSH band hashes of the text's
    shingle set; an empty array for null or word-less text. ``counter``: a Spark accumulator that
    counts the documents signed (each time they are, so a recomputed frame counts again)."""
    if bands < 1 or num_perm < bands or num_perm % bands:
        raise ValueError(f"num_perm ({num_perm}) must be a positive multiple of bands ({bands})")
    if shingle_words < 1:
        raise ValueError(f"shingle_words must be >= 1, got {shingle_words}")
    udf = _minhash_bands_udf(num_perm, bands, seed, counter)
    return df.withColumn("minhash_bands", udf(shingles(F.col(text_col), shingle_words)))


# ---------------------------------------------------------------- candidates, verification, clusters


def _candidate_edges(df: DataFrame) -> DataFrame:
    """(src, dst): every row of a shared bucket linked to the bucket's smallest id, once per pair;
    never two preferred rows (published rows are never marked, so such an edge decides nothing)."""
    pref = F.coalesce(F.col("preferred"), F.lit(False))
    buckets = df.select("id", pref.alias("pref"), F.posexplode("minhash_bands").alias("band", "bucket"))
    bucket = Window.partitionBy("band", "bucket")
    root = F.min("id").over(bucket)
    root_pref = F.min_by("pref", "id").over(bucket)
    linked = buckets.select(F.col("id").alias("src"), root.alias("dst"), (F.col("pref") & root_pref).alias("both"))
    return linked.where((F.col("src") != F.col("dst")) & ~F.col("both")).select("src", "dst").distinct()


def _verified_edges(df: DataFrame, *, text_col: str, threshold: float, shingle_words: int) -> DataFrame:
    """Candidate edges whose exact shingle Jaccard is >= threshold, with both ends' ``preferred``.
    Each document's shingles are computed once, for the documents that have a candidate edge."""
    edges = _candidate_edges(df).localCheckpoint()  # read three times below: computed once
    ends = edges.select(F.col("src").alias("id")).union(edges.select(F.col("dst").alias("id"))).distinct()
    docs = df.join(ends, "id", "left_semi").select(
        "id",
        shingles(F.col(text_col), shingle_words).alias("sh"),
        F.coalesce(F.col("preferred"), F.lit(False)).alias("pref"),
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
    labels = first.select("id", F.least("id", "nbr").alias("label")).localCheckpoint()
    for _ in range(max_iterations):
        nbr = adj.join(labels.select(F.col("id").alias("dst"), F.col("label").alias("nbr")), "dst")
        nbr = nbr.groupBy(F.col("src").alias("id")).agg(F.min("nbr").alias("nbr"))
        step = labels.join(nbr, "id").select("id", "label", F.least("label", "nbr").alias("hop"))
        jump = labels.select(F.col("id").alias("hop"), F.col("label").alias("hop_label"))
        step = step.join(jump, "hop", "left").select("id", "label", F.least("hop", "hop_label").alias("new"))
        step = step.localCheckpoint()  # cuts the lineage; one round's joins are computed once
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


def mark_near_duplicates(
    df: DataFrame, *, threshold: float = 0.8, shingle_words: int = 1, text_col: str = "text", max_iterations: int = 30
) -> DataFrame:
    """Add ``near_dup_of`` (string): the id kept for the row's near-duplicate cluster, or null for a
    kept row or one in no cluster. Rows and columns are all kept (mark, do not drop).

    ``df`` needs ``id`` (unique string), the text, ``minhash_bands`` (``with_minhash_bands`` with
    the same ``shingle_words``) and ``preferred`` (boolean; null reads false): preferred rows were
    published before, so one of them is kept whenever a cluster has one, and none is ever marked.
    The result is the same whatever the partitioning. ``df`` is read three times (buckets, texts of
    the candidates, the final join): persist it, or read it from a table, rather than recompute it.
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    edges = _verified_edges(df, text_col=text_col, threshold=threshold, shingle_words=shingle_words)
    edges = edges.localCheckpoint()  # every propagation round reads it: compute it once
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
        return sign(rows)
    fresh = F.coalesce(F.col("minhash_spec") == F.lit(spec), F.lit(False))
    kept = stored.where(fresh).select("id", "text", "minhash_bands")
    if stored.where(~fresh).select("minhash_spec").isEmpty():  # the usual case: no text read for it
        return kept
    return kept.unionByName(sign(stored.where(~fresh).select(*rows.columns)))


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
    pool = signed.select("id", "text", "minhash_bands", F.lit(False).alias("preferred"))
    if stored is not None:
        # stored rows that share a bucket with a new row: found on the band column alone, and only
        # those are read whole. A small append's buckets go to every task (no shuffle of the lake's).
        small = signed.count() * bands <= BROADCAST_BUCKETS
        buckets = signed.select(F.posexplode("minhash_bands").alias("band", "bucket")).distinct()
        old = _stored_bands(stored, spec, sign)
        near = old.select("id", F.posexplode("minhash_bands").alias("band", "bucket"))
        near = near.join(F.broadcast(buckets) if small else buckets, ["band", "bucket"], "left_semi")
        near = near.select("id").distinct()
        neighbours = old.join(F.broadcast(near) if small else near, "id", "left_semi")
        pool = pool.unionByName(neighbours.withColumn("preferred", F.lit(True)))
    pool = pool.persist(StorageLevel.MEMORY_AND_DISK)  # mark_near_duplicates reads it three times
    marked = mark_near_duplicates(pool, threshold=threshold, shingle_words=shingle_words)
    keep = marked.where(~F.col("preferred") & F.col("near_dup_of").isNull()).select("id")
    kept = signed.join(keep, "id", "left_semi").persist(StorageLevel.MEMORY_AND_DISK)
    rows = kept.count()
    pool.unpersist()
    signed.unpersist()
    return kept, rows
