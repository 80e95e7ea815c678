"""Recognising the stack's own processes, so a stop never signals a stranger."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from ketenbus.devstack.processes import ProcessRef, log_tail, spawn


def test_a_recycled_pid_is_not_taken_for_ours() -> None:
    me = ProcessRef.of(os.getpid())
    impostor = ProcessRef(os.getpid(), started=(me.started or 0) + 1)

    assert me.alive()
    assert not impostor.alive()
    assert not impostor.send(signal.SIGTERM)  # and so this test process lives on


def test_a_spawned_process_logs_to_its_file_and_is_stopped(tmp_path: Path) -> None:
    log = tmp_path / "sleeper.log"
    ref = spawn(
        [sys.executable, "-c", "print('sleeping', flush=True); import time; time.sleep(600)"],
        log_path=log,
        outlive_caller=False,
    )
    try:
        assert ref.alive()
        assert ProcessRef.of(ref.pid) == ref
    finally:
        ref.stop(timeout=5)

    assert not ref.alive()
    assert "starting:" in log_tail(log)
