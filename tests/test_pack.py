from tokenlake.etl.pack import pack_blocks


def test_blocks_are_full_except_one_tail_per_split_and_never_mix_splits(spark):
    docs = [
        ("train", list(range(1, 8))),
        ("test", [100, 101, 102]),
        ("train", [8, 9, 10, 11, 12]),
        ("test", [103, 104]),
        ("train", [13]),
    ]
    df = spark.createDataFrame(docs, "split string, input_ids array<int>").coalesce(1)
    blocks = sorted(pack_blocks(df, block_len=4).collect(), key=lambda r: r["id"])
    by_split = {}
    for b in blocks:
        by_split.setdefault(b["split"], []).append(b)
        assert b["n_tokens"] == len(b["input_ids"]) <= 4
    train = [t for b in by_split["train"] for t in b["input_ids"]]
    test = [t for b in by_split["test"] for t in b["input_ids"]]
    assert train == list(range(1, 14)) and test == list(range(100, 105))  # order kept, nothing lost
    assert [b["n_tokens"] for b in by_split["train"]] == [4, 4, 4, 1]
    assert [b["n_tokens"] for b in by_split["test"]] == [4, 1]
    assert len({b["id"] for b in blocks}) == len(blocks)


def test_empty_input_gives_no_blocks(spark):
    df = spark.createDataFrame([], "split string, input_ids array<int>")
    assert pack_blocks(df, block_len=4).count() == 0
