"""training.gold_reader: Petastorm over a gold version's Parquet files in place."""

import torch


def test_the_gold_reader_yields_padded_batches_in_an_order_set_by_its_seed(tmp_path):
    """``GoldSplit``'s loader over Parquet files in place: the split's rows alone, ``input_ids``
    padded to ``max_len``, the same order for the same seed in a fresh reader, another for another."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tokenlake.training.gold_reader import GoldSplit

    for f in range(2):
        ids = [list(range(1, 2 + (i % 9))) for i in range(100)]
        pq.write_table(pa.table({
            "input_ids": pa.array(ids, pa.list_(pa.int32())),
            "n_tokens": pa.array([len(x) for x in ids], pa.int32()),
            "label": pa.array([f * 100 + i for i in range(100)], pa.int32()),
            "split": ["train" if i % 4 else "test" for i in range(100)],
        }), tmp_path / f"part-{f}.parquet", row_group_size=25)  # fmt: skip
    split = GoldSplit(tuple(str(p) for p in sorted(tmp_path.glob("*.parquet"))), "train", 6, True, (150,))

    def read(**kwargs) -> list[dict]:
        with split.make_torch_dataloader(batch_size=16, workers_count=1, **kwargs) as loader:
            return list(loader)

    plain = read(shuffle_row_groups=False)
    labels = torch.cat([b["label"] for b in plain]).tolist()
    assert labels == [f * 100 + i for f in range(2) for i in range(100) if i % 4]  # the train rows, in order
    assert [len(b["label"]) for b in plain] == [16] * 9 + [6]
    first = plain[0]
    assert first["input_ids"].shape == (16, 6) and first["input_ids"].dtype == torch.int32
    assert first["input_ids"][0].tolist() == [1, 2, 0, 0, 0, 0] and first["n_tokens"][0] == 2  # row 1: 2 ids
    assert first["input_ids"][4].tolist() == [1, 2, 3, 4, 5, 6] and first["n_tokens"][4] == 6  # row 6: 7 ids, cut

    def order(seed: int) -> list[int]:
        batches = read(seed=seed, shuffle_rows=True, shuffle_window=64)
        return torch.cat([b["label"] for b in batches]).tolist()

    assert sorted(order(1)) == sorted(labels) and order(1) != labels
    assert order(1) == order(1) and order(2) != order(1)
    from petastorm.workers_pool import thread_pool

    from tokenlake.training.gold_reader import POLL_S

    assert thread_pool.IO_TIMEOUT_INTERVAL_S == POLL_S  # its threads no longer wake every millisecond


def test_petastorm_row_groups_are_listed_in_path_order_whatever_the_listing(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from petastorm.etl import dataset_metadata

    from tokenlake.training.gold_reader import sort_petastorm_row_groups

    for i in range(4):
        pq.write_table(pa.table({"x": [i, i]}), tmp_path / f"part-{i:05d}.parquet", row_group_size=1)
    dataset = pq.ParquetDataset(str(tmp_path), use_legacy_dataset=True)
    dataset.pieces.reverse()  # what a threaded directory listing may return
    listed = dataset_metadata._split_row_groups_from_footers
    monkeypatch.setattr(dataset_metadata, "_split_row_groups_from_footers", getattr(listed, "__wrapped__", listed))
    assert dataset_metadata.load_row_groups(dataset)[0].path.endswith("part-00003.parquet")
    sort_petastorm_row_groups()
    sort_petastorm_row_groups()  # idempotent
    pieces = dataset_metadata.load_row_groups(dataset)
    assert [(p.path.rsplit("/", 1)[1][5:10], p.row_group) for p in pieces] == [
        (f"{i:05d}", g) for i in range(4) for g in (0, 1)
    ]
