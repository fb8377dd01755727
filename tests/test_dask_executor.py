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
    """A 2-worker, 1-thread-per-worker process LocalCluster, registered as the executor's client."""
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    client = distributed.Client(cluster)
    address = cluster.scheduler_address
    P._CLIENTS[(address, 0)] = client  # map_partitions(scheduler_address=address) reuses it
    yield address, client
    P._CLIENTS.pop((address, 0), None)
    client.close()
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
