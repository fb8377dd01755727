"""Dask executor: partitions computed on a LocalCluster equal the local run."""
from __future__ import annotations

import os

import pandas as pd
import pytest

from pipeline import partition as P
from tests.test_partition import line_stats, sample_parts

distributed = pytest.importorskip("dask.distributed")


@pytest.fixture(scope="module")
def dask_client():
    """A 2-worker, 1-thread-per-worker process LocalCluster standing in for an existing cluster:
    the executor connects to it by address (``scale.scheduler_address``), as it would to tcp://host:8786."""
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    address = cluster.scheduler_address
    yield address, P.get_client(address)
    P.close_clients()
    cluster.close()


def test_dask_equals_local_and_caches_on_client(dask_client, tmp_path):
    address, client = dask_client
    parts = sample_parts(6)
    local = P.concat_tables(P.map_partitions(line_stats, parts, stage="d", cache=False, executor="local"))

    stats: dict = {}
    res = P.map_partitions(line_stats, parts, stage="d", cache_dir=tmp_path, executor="dask",
                           scheduler_address=address, stats=stats)
    on_dask = P.concat_tables(res)
    for name in local:
        pd.testing.assert_frame_equal(local[name], on_dask[name])
    assert stats["executor"] == "dask" and stats["computed"] == [p.name for p in parts]
    assert stats["worker_pids"] and os.getpid() not in stats["worker_pids"]  # ran in worker processes
    # the cache was written on the client side: a re-run computes nothing
    P.map_partitions(line_stats, parts, stage="d", cache_dir=tmp_path, executor="dask",
                     scheduler_address=address)
    assert P.last_run_stats["d"].computed == [] and len(P.last_run_stats["d"].cached) == len(parts)


def test_dask_worker_errors_come_back_as_pipeline_errors(dask_client, tmp_path):
    address, _ = dask_client
    parts = sample_parts(2) + [P.Partition("BAD-x", ("BAD-x", "z"), "bx")]
    with pytest.raises(P.PipelineError, match="BAD-x: unreadable part"):
        P.map_partitions(line_stats, parts, stage="de", cache_dir=tmp_path, executor="dask",
                         scheduler_address=address)
    assert P.last_run_stats["de"].computed == ["sample-0", "sample-1"]


def test_ingest_stage_on_dask_equals_local(dask_client, tmp_path, monkeypatch):
    """The real ingest stage, configured to Dask through the environment (as `dvc repro` would be)."""
    from pipeline.ingest import ingest_paths

    raw = P.ROOT / "data" / "raw"
    local = ingest_paths([raw], cache=False)
    address, _ = dask_client
    monkeypatch.setenv("POLICY_TOPICS_EXECUTOR", "dask")
    monkeypatch.setenv("POLICY_TOPICS_SCHEDULER", address)
    on_dask = ingest_paths([raw], cache_dir=tmp_path)
    assert P.last_run_stats["ingest"].executor == "dask" and P.last_run_stats["ingest"].computed
    pd.testing.assert_frame_equal(local.utterances, on_dask.utterances)
    pd.testing.assert_frame_equal(local.meetings, on_dask.meetings)
    assert len(local.utterances) > 20


def test_parse_and_embed_stages_on_dask_equal_local(dask_client, tmp_path, monkeypatch):
    """The parse and embed stages with their partitions on the 2-worker LocalCluster (GiNZA / USE loaded
    once per worker) give exactly the local run's sentences, tokens, entities and vectors."""
    from tests.test_incremental import SOURCE, _write_meeting

    if not SOURCE.exists():
        pytest.skip(f"{SOURCE} not available")
    import numpy as np

    from pipeline.embed import embed_sentences
    from pipeline.ingest import ingest_paths
    from pipeline.parse import parse_utterances

    raw = tmp_path / "raw"
    for name in ("tokyo-a.json", "tokyo-b.json", "tokyo-c.json"):
        _write_meeting(raw, name)
    ing = ingest_paths([raw], cache=False)
    monkeypatch.setenv("POLICY_TOPICS_EXECUTOR", "local")
    monkeypatch.setenv("POLICY_TOPICS_N_WORKERS", "1")
    local = parse_utterances(ing.utterances, ing.meetings, cache=False)
    local_ids, local_vecs = embed_sentences(local.sentences, cache=False)

    address, _ = dask_client
    monkeypatch.setenv("POLICY_TOPICS_EXECUTOR", "dask")
    monkeypatch.setenv("POLICY_TOPICS_SCHEDULER", address)
    remote = parse_utterances(ing.utterances, ing.meetings, cache_dir=tmp_path / "cache")
    run = P.last_run_stats["parse"]
    assert run.executor == "dask" and len(run.computed) == 3 and os.getpid() not in run.worker_pids
    ids, vecs = embed_sentences(remote.sentences, cache_dir=tmp_path / "cache")
    assert P.last_run_stats["embed"].executor == "dask" and len(P.last_run_stats["embed"].computed) == 3

    assert len(local.sentences) > 20 and len(local.tokens) > 200
    pd.testing.assert_frame_equal(local.sentences, remote.sentences)
    pd.testing.assert_frame_equal(local.tokens, remote.tokens)
    pd.testing.assert_frame_equal(local.entities, remote.entities)
    assert list(ids) == list(local_ids)
    np.testing.assert_allclose(vecs, local_vecs, rtol=0, atol=1e-6)
