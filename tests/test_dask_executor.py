"""Dask executor on a real cluster: a `dask scheduler` and two `dask worker` processes started
from the distributed command-line tools on 127.0.0.1 (free ports), reached by address as
`scale.scheduler_address` would be. Partitions computed there equal the local run."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from pipeline import partition as P
from tests.test_partition import line_stats, sample_parts

distributed = pytest.importorskip("dask.distributed")

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dask_cli() -> list[str]:
    exe = Path(sys.executable).parent / "dask"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("dask")
    if found:
        return [found]
    pytest.skip("the `dask` command-line tool (distributed) is not installed")


def _stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM each process group we started (newest first), SIGKILL what is left after 10 s."""
    for proc in reversed(procs):
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 10
    for proc in reversed(procs):
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def dask_client(tmp_path_factory):
    """`dask scheduler --host 127.0.0.1 --port P` + 2 x `dask worker tcp://127.0.0.1:P --nthreads 1`,
    each in its own process group (torn down even when a test fails); yields (address, client)."""
    logs = tmp_path_factory.mktemp("dask-cluster")
    cli = _dask_cli()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    procs: list[subprocess.Popen] = []

    def start(name: str, argv: list[str]) -> subprocess.Popen:
        out = open(logs / f"{name}.log", "w")
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                                start_new_session=True)
        out.close()
        procs.append(proc)
        return proc

    address = None
    try:
        for _attempt in range(3):  # a port taken between probing and binding: try another
            port = _free_port()
            sched = start("scheduler", [*cli, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                        "--no-dashboard"])
            t0 = time.monotonic()
            while time.monotonic() - t0 < 60 and sched.poll() is None:
                if f"tcp://127.0.0.1:{port}" in (logs / "scheduler.log").read_text(errors="replace"):
                    address = f"tcp://127.0.0.1:{port}"
                    break
                time.sleep(0.2)
            if address:
                break
            _stop([procs.pop()])
        if not address:
            pytest.fail("dask scheduler did not start:\n" + (logs / "scheduler.log").read_text()[-2000:])
        for i in range(2):
            start(f"worker-{i}", [*cli, "worker", address, "--host", "127.0.0.1", "--nthreads", "1",
                                  "--no-nanny", "--no-dashboard", "--local-directory", str(logs / f"w{i}"),
                                  "--name", f"cli-worker-{i}"])
        client = P.get_client(address)
        client.wait_for_workers(2, timeout=120)
        yield address, client
    finally:
        P.close_clients()
        _stop(procs)


def test_cluster_is_two_cli_worker_processes(dask_client):
    address, client = dask_client
    workers = client.scheduler_info()["workers"]
    assert len(workers) == 2 and all(w["host"] == "127.0.0.1" for w in workers.values())
    pids = set(client.run(os.getpid).values())
    assert len(pids) == 2 and os.getpid() not in pids


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
    """The parse and embed stages' CLIs (as `dvc repro` runs them), once locally and once with their
    partitions on the CLI cluster (GiNZA / USE loaded once per worker): the output datasets hold the
    same sentences, tokens and entities, and the same vectors up to float tolerance."""
    from tests.test_incremental import SOURCE, _write_meeting

    if not SOURCE.exists():
        pytest.skip(f"{SOURCE} not available")
    import numpy as np

    from pipeline.cli import main
    from pipeline.dataset import part_files, read_table
    from pipeline.embed import load_embeddings

    raw = tmp_path / "raw"
    for name in ("tokyo-a.json", "tokyo-b.json", "tokyo-c.json"):
        _write_meeting(raw, name)
    i = tmp_path / "in"
    assert main(["-q", "ingest", str(raw), "-o", f"{i}/utterances.parquet", "--meetings", f"{i}/meetings.parquet"]) == 0

    def run(out: Path) -> None:
        assert main(["-q", "parse", f"{i}/utterances.parquet", "--meetings", f"{i}/meetings.parquet",
                     "--sentences", f"{out}/sentences.parquet", "--tokens", f"{out}/tokens.parquet",
                     "--entities", f"{out}/entities.parquet", "--report", f"{out}/parse.json"]) == 0
        assert main(["-q", "embed", f"{out}/sentences.parquet", "-o", f"{out}/embeddings.parquet"]) == 0

    monkeypatch.setenv("POLICY_TOPICS_EXECUTOR", "local")
    monkeypatch.setenv("POLICY_TOPICS_N_WORKERS", "1")
    monkeypatch.setenv("POLICY_TOPICS_CACHE_DIR", str(tmp_path / "cache-local"))
    run(tmp_path / "local")

    address, _ = dask_client
    monkeypatch.setenv("POLICY_TOPICS_EXECUTOR", "dask")
    monkeypatch.setenv("POLICY_TOPICS_SCHEDULER", address)
    monkeypatch.setenv("POLICY_TOPICS_CACHE_DIR", str(tmp_path / "cache-dask"))
    run(tmp_path / "dask")
    parse_run, embed_run = P.last_run_stats["parse"], P.last_run_stats["embed"]
    assert parse_run.executor == "dask" and len(parse_run.computed) == 3
    assert len(parse_run.worker_pids) >= 1 and os.getpid() not in parse_run.worker_pids
    assert embed_run.executor == "dask" and len(embed_run.computed) == 3 and os.getpid() not in embed_run.worker_pids

    for table in ("sentences", "tokens", "entities"):
        local = read_table(tmp_path / "local" / f"{table}.parquet")
        remote = read_table(tmp_path / "dask" / f"{table}.parquet")
        pd.testing.assert_frame_equal(local, remote)
        if table != "entities":
            assert len(local) > (20 if table == "sentences" else 200)
    # one file per meeting, as on the local run
    for table in ("sentences", "tokens", "embeddings"):
        assert len(part_files(tmp_path / "dask" / f"{table}.parquet")) == 3
    ids_l, vec_l = load_embeddings(tmp_path / "local" / "embeddings.parquet")
    ids_d, vec_d = load_embeddings(tmp_path / "dask" / "embeddings.parquet")
    assert list(ids_d) == list(ids_l) and vec_d.shape == vec_l.shape and vec_l.shape[1] == 512
    np.testing.assert_allclose(vec_d, vec_l, rtol=0, atol=1e-5)
