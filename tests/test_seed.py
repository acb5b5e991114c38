"""fsrlib.seed: one seeding function, and the fixed thread count trainings run with."""
from __future__ import annotations

import os

import pytest
import torch

from fsrlib.seed import TRAIN_THREADS, deterministic, set_seed, train_threads


def test_set_seed_repeats_every_generator():
    set_seed(3)
    first = (torch.rand(3), torch.randint(0, 100, (3,)))
    set_seed(3)
    again = (torch.rand(3), torch.randint(0, 100, (3,)))
    assert all(torch.equal(a, b) for a, b in zip(first, again))


def test_a_training_block_runs_on_the_fixed_thread_count_and_restores_the_old_one(monkeypatch):
    monkeypatch.delenv("FSRLIB_TRAIN_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    before = torch.get_num_threads()
    with deterministic():
        assert torch.get_num_threads() == TRAIN_THREADS
        assert torch.are_deterministic_algorithms_enabled()
    assert torch.get_num_threads() == before


def test_the_environment_sets_the_training_threads_for_a_shared_machine(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setenv("FSRLIB_TRAIN_THREADS", "1")
    with deterministic():
        assert torch.get_num_threads() == 1
    for bad, message in (("two", "whole number"), ("0", "at least 1")):
        monkeypatch.setenv("FSRLIB_TRAIN_THREADS", bad)
        with pytest.raises(ValueError, match=message):
            train_threads()


def test_never_more_threads_than_cores(monkeypatch):
    """More threads than cores only wait for each other: a 1-core machine trains on 1."""
    monkeypatch.delenv("FSRLIB_TRAIN_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert train_threads() == 1 and train_threads(4) == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(4)), raising=False)
    assert train_threads() == TRAIN_THREADS and train_threads(3) == 3
