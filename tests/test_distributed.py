"""Extraction shared over ranks: shards computed in this process (quick) and torchrun with 2 gloo processes (slow).

Batches lie on one global grid, so the ranks' chunks join into exactly the single-process array, given the same
thread count (torchrun runs each rank with OMP_NUM_THREADS=1; a different thread count changes the last bit).
"""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from fsrlib.__main__ import main
from fsrlib.features.distributed import extract_sharded
from fsrlib.features.extract import (
    assemble,
    compute_jobs,
    extract_features,
    lookup_features,
    pending_jobs,
)
from fsrlib.features.loader import LoaderConfig


def single_process(ds, split, ratios, folder, **kw):
    return extract_features(ds, split, ratios, cache_dir=folder, progress=False, workers=0, **kw)


def test_two_ranks_shards_join_into_the_single_process_result(tiny_dataset, tmp_path):
    ratios = (1.0, 0.25)
    loader = LoaderConfig(batch_size=2, chunk_size=2, workers=0)
    plan = lookup_features(tiny_dataset, "train", ratios, cache_dir=tmp_path / "ranks")
    jobs = pending_jobs(plan, loader)
    assert [(j.start, j.stop, j.ratios) for j in jobs] == [(0, 2, ratios), (2, 4, ratios), (4, 5, ratios)]
    for rank in (1, 0):  # the order the ranks finish in does not matter
        compute_jobs(plan, jobs[rank::2], loader, progress=False)
    assemble(plan, loader)
    want = single_process(tiny_dataset, "train", ratios, tmp_path / "one", batch_size=2, chunk_size=2)
    for r in ratios:
        np.testing.assert_array_equal(plan.features()[r], want[r])


def test_a_rank_that_died_is_resumed_by_rerunning(tiny_dataset, tmp_path):
    loader = LoaderConfig(batch_size=2, chunk_size=2, workers=0)
    plan = lookup_features(tiny_dataset, "train", (1.0,), cache_dir=tmp_path / "c")
    compute_jobs(plan, pending_jobs(plan, loader)[0::2], loader, progress=False)  # rank 0's chunks; rank 1 died
    again = lookup_features(tiny_dataset, "train", (1.0,), cache_dir=tmp_path / "c")
    assert [(j.start, j.stop) for j in pending_jobs(again, loader)] == [(2, 4)]  # only rank 1's share is left
    resumed = extract_sharded(tiny_dataset, "train", (1.0,), loader=loader, cache_dir=tmp_path / "c",
                              progress=False).features()  # rerun alone (any number of ranks would do)
    want = single_process(tiny_dataset, "train", (1.0,), tmp_path / "one", batch_size=2, chunk_size=2)
    np.testing.assert_array_equal(resumed[1.0], want[1.0])


@pytest.mark.parametrize("extra, message", [(["--device", "gpu"], "not a device name"),
                                            (["--decode", "draft", "--reference", "original"], "reference='input'")])
def test_extract_cli_refuses_bad_arguments_before_any_work(extra, message):
    with pytest.raises(SystemExit, match=message):
        main(["extract", "--dataset", "mini", "--split", "db", *extra])


# ---------------------------------------------------------------- torchrun, 2 CPU processes (gloo)
@pytest.fixture
def one_thread():
    """The single-process reference with torchrun's per-rank thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def torchrun_command(ds, cache, ratios, chunk_size):
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "-m", "fsrlib", "extract", "--dataset", "mini", "--data-dir", str(ds.root), "--split", "query",
            "--ratios", *ratios, "--batch-size", "2", "--chunk-size", str(chunk_size), "--cache-dir", str(cache),
            "--quiet"]


def assert_cached_equals_single_process(ds, cache, ratios, tmp_path, chunk_size):
    plan = lookup_features(ds, "query", ratios, cache_dir=cache)
    assert not plan.missing, f"torchrun left entries missing: {plan.missing}"
    want = single_process(ds, "query", ratios, tmp_path / "one", batch_size=2, chunk_size=chunk_size)
    for r in ratios:
        np.testing.assert_array_equal(plan.features()[r], want[r])


@pytest.mark.slow
def test_torchrun_two_processes_equal_one_bit_for_bit(mini_dataset, tmp_path, one_thread):
    cache = tmp_path / "torchrun"
    done = subprocess.run(torchrun_command(mini_dataset, cache, ["1", "1/16"], 4), check=False, capture_output=True, text=True,
                          env=os.environ | {"OMP_NUM_THREADS": "1"}, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("28 x 1280 features in") == 2  # rank 0 reports each entry once
    assert_cached_equals_single_process(mini_dataset, cache, (1.0, 1 / 16), tmp_path, 4)


@pytest.mark.slow
def test_torchrun_killed_midway_resumes_to_the_same_result(mini_dataset, tmp_path, one_thread):
    cache, ratios = tmp_path / "torchrun", ["1", "1/4", "1/16", "1/64"]
    command = torchrun_command(mini_dataset, cache, ratios, 2)
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    run = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    deadline = time.monotonic() + 600
    while not list(cache.rglob("chunk_*.npz")) and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(run.pid, signal.SIGKILL)  # torchrun and both ranks, mid-way
    run.wait()
    kept = list(cache.rglob("chunk_*.npz"))
    assert kept and not list(cache.rglob("query-*.npz")), "the run was not stopped mid-way"
    done = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_cached_equals_single_process(mini_dataset, cache, (1.0, 1 / 4, 1 / 16, 1 / 64), tmp_path, 2)
