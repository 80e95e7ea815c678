"""The stack's processes: started with output to a log file, found again by pid, stopped gently.

A pid alone is not an identity: after a reboot or a long pause the number may belong to some
other program. A process is therefore remembered as (pid, start time), and a signal is sent
only when both still match, so `ketenbus down` can never hit a stranger.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ketenbus.devstack import ports
from ketenbus.devstack.errors import StackError, StartFailed

# Popen objects of the processes this Python process started, so their exit status is collected
# (no zombies, no ResourceWarning) whichever EmbeddedStack instance stops them.
_children: dict[int, subprocess.Popen[bytes]] = {}

_PR_SET_PDEATHSIG = 1
_ADDRESS_IN_USE = re.compile(r"address (already )?in use|AddrInUse|Errno 98", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ProcessRef:
    """A process we started: its pid and its start time (clock ticks since boot, from /proc)."""

    pid: int
    started: int | None

    @classmethod
    def of(cls, pid: int) -> ProcessRef:
        return cls(pid, _start_time(pid))

    def alive(self) -> bool:
        popen = _children.get(self.pid)
        if popen is not None:
            return popen.poll() is None
        stat = _read_stat(self.pid)
        if stat is None:
            if not Path("/proc/self/stat").exists():  # no procfs: best effort
                return _exists(self.pid)
            return False
        state, started = stat
        if self.started is not None and started != self.started:
            return False  # the pid now belongs to another process
        if state == "Z":
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, os.WNOHANG)  # ours but unreaped: collect it
            return False
        return True

    def send(self, sig: int) -> bool:
        """Send `sig` if the process is still the one we started; False when it is gone."""
        if not self.alive():
            return False
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            return False
        return True

    def wait_exit(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the process to end; True when it has."""
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, so it can finish cleanly (commit offsets, close Mongo); SIGKILL if it won't."""
        if not self.send(signal.SIGTERM):
            return
        if self.wait_exit(timeout):
            return
        self.send(signal.SIGKILL)
        if not self.wait_exit(10.0):
            raise StackError(f"process {self.pid} did not exit after SIGKILL")


def _read_stat(pid: int) -> tuple[str, int] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may contain spaces and parentheses; fields after it do not.
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def _start_time(pid: int) -> int | None:
    stat = _read_stat(pid)
    return stat[1] if stat else None


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _dies_with_caller() -> Callable[[], None] | None:
    """A preexec function that makes the child get SIGKILL when its parent thread ends.

    Used for test runs, so an interrupted pytest leaves no servers behind. The kernel ties the
    signal to the thread that forked, so it is only used when spawning from the main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here, not in the child
    except (OSError, AttributeError):
        return None

    def set_parent_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)

    return set_parent_death_signal


def spawn(
    argv: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    outlive_caller: bool = True,
) -> ProcessRef:
    """Start `argv` with stdout and stderr appended to `log_path`.

    The child gets its own session, so a Ctrl-C in the terminal that ran `ketenbus up` does not
    reach the stack, and `outlive_caller=False` (tests) makes it die with the caller.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        log.write(f"\n=== {stamp} starting: {' '.join(argv)}\n".encode())
        log.flush()
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            start_new_session=True,
            preexec_fn=None if outlive_caller else _dies_with_caller(),
        )
    _children[popen.pid] = popen
    return ProcessRef.of(popen.pid)


def log_tail(path: Path, lines: int = 20) -> str:
    """The last `lines` lines of a log file ('' when there is none)."""
    try:
        with path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            size = log.tell()
            log.seek(max(0, size - 64 * 1024))
            text = log.read().decode(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True, slots=True)
class RunningProcess:
    """A server or sink process that accepts connections on a loopback port."""

    name: str
    ref: ProcessRef
    port: int
    url: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.ref.pid

    def alive(self) -> bool:
        return self.ref.alive()

    def stop(self, timeout: float = 10.0) -> None:
        self.ref.stop(timeout)


class PendingStart:
    """A server process that has been started and is not known to be ready yet.

    Starting several and then waiting for each lets them boot in parallel (Mongo takes about
    a second, each Python sink most of one), which is most of the stack's start-up time.
    """

    def __init__(
        self,
        name: str,
        argv_for_port: Callable[[int], Sequence[str]],
        *,
        log_path: Path,
        ready: Callable[[int], bool],
        url_for: Callable[[int], str],
        ready_line: str | None = None,
        port: int | None = None,
        timeout: float = 30.0,
        env: Mapping[str, str] | None = None,
        outlive_caller: bool = True,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self._argv_for_port = argv_for_port
        self._ready = ready
        self._url_for = url_for
        self._ready_line = ready_line
        self._fixed_port = port
        self._timeout = timeout
        self._env = env
        self._outlive_caller = outlive_caller
        # When the port was picked here, another program may take it between picking and
        # binding; the server then exits with "address in use" and is started on another port.
        self._attempts_left = 1 if port is not None else 3
        self._spawn()

    def _spawn(self) -> None:
        self._attempts_left -= 1
        self.port = self._fixed_port if self._fixed_port is not None else ports.free_port()
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.ref = spawn(
            self._argv_for_port(self.port),
            log_path=self.log_path,
            env=self._env,
            outlive_caller=self._outlive_caller,
        )
        self._deadline = time.monotonic() + self._timeout

    def wait(self) -> RunningProcess:
        """Wait until the process says `ready_line` in its log and `ready(port)` holds."""
        while True:
            # A port that accepts connections is not proof: after a lost port race someone
            # else's server answers there. Our process must also have said it listens.
            output = _read_from(self.log_path, self._log_offset)
            said_ready = self._ready_line is None or self._ready_line in output
            if said_ready and self._ready(self.port) and self.ref.alive():
                return RunningProcess(
                    self.name, self.ref, self.port, self._url_for(self.port), self.log_path
                )
            if not self.ref.alive():
                output = _read_from(self.log_path, self._log_offset)
                if self._attempts_left > 0 and _ADDRESS_IN_USE.search(output):
                    self._spawn()
                    continue
                raise StartFailed(
                    f"{self.name} exited during start-up; last lines of {self.log_path}:\n"
                    f"{log_tail(self.log_path)}"
                )
            if time.monotonic() >= self._deadline:
                self.abandon()
                raise StartFailed(
                    f"{self.name} did not accept connections on port {self.port} within "
                    f"{self._timeout:g}s; last lines of {self.log_path}:\n"
                    f"{log_tail(self.log_path)}"
                )
            time.sleep(0.05)

    def abandon(self) -> None:
        """Stop the process, whether or not it got ready (start-up of the stack failed)."""
        self.ref.stop(timeout=5.0)


def launch(
    name: str,
    argv_for_port: Callable[[int], Sequence[str]],
    **options: Any,
) -> RunningProcess:
    """Start a server process and wait until it is ready (see PendingStart)."""
    return PendingStart(name, argv_for_port, **options).wait()


def _read_from(path: Path, offset: int) -> str:
    with path.open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")
