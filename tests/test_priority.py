"""The engine thread's priority (server/engine/priority.py): idle for it and every thread it starts."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

import pytest
import torch

from syrinx.server.engine import priority
from syrinx.server.engine.priority import set_engine_thread_priority

pytestmark = pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux scheduling policies")


def _policies() -> dict[int, int]:
    """Each thread of this process and its scheduling policy."""
    policies = {}
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):  # a thread may end meanwhile
            policies[int(tid)] = os.sched_getscheduler(int(tid))
    return policies


def _on_a_new_thread(fn: Callable[[], Any]) -> Any:
    result = []
    thread = threading.Thread(target=lambda: result.append(fn()))
    thread.start()
    thread.join(60)
    return result[0]


def _torch_work() -> None:
    x = torch.ones(1 << 22)
    for _ in range(5):
        x.add_(1.0)  # large enough that torch splits it over its intra-op threads


def test_the_engine_thread_and_torchs_threads_it_starts_run_at_idle_priority():
    _torch_work()  # this thread's own OpenMP team exists first, at normal priority
    before = set(_policies())

    def engine_thread():
        applied = set_engine_thread_priority("idle")
        _torch_work()
        return applied, threading.get_native_id(), _policies()

    applied, engine_tid, policies = _on_a_new_thread(engine_thread)
    assert applied and policies[engine_tid] == os.SCHED_IDLE
    started_idle = [t for t, p in policies.items() if t not in before and t != engine_tid and p == os.SCHED_IDLE]
    assert len(started_idle) >= torch.get_num_threads() - 1  # libgomp's workers inherit the policy
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # a thread's policy, not the process's


def test_normal_leaves_the_engine_thread_as_it_was():
    assert _on_a_new_thread(lambda: (set_engine_thread_priority("normal"), os.sched_getscheduler(0))) == (
        True,
        os.SCHED_OTHER,
    )


def test_a_refused_priority_is_a_warning_and_the_engine_runs_on(monkeypatch, caplog):
    def refuse(*args):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(priority.os, "sched_setscheduler", refuse)
    with caplog.at_level(logging.WARNING, logger=priority.__name__):
        assert not _on_a_new_thread(lambda: set_engine_thread_priority("idle"))
    assert "normal priority" in caplog.text and "Operation not permitted" in caplog.text


def test_a_platform_without_idle_priority_runs_the_engine_at_normal(monkeypatch, caplog):
    monkeypatch.delattr(priority.os, "sched_setscheduler")
    with caplog.at_level(logging.INFO, logger=priority.__name__):
        assert not _on_a_new_thread(lambda: set_engine_thread_priority("idle"))
    assert "no SCHED_IDLE" in caplog.text
