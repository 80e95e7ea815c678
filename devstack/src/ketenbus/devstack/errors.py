"""What can go wrong when running the stack, as exceptions the CLI turns into one-line reasons."""

from __future__ import annotations


class StackError(Exception):
    """Base for every failure of the embedded stack; the CLI prints it and exits with 1."""


class StartFailed(StackError):
    """A server, sink or service process exited or never became reachable."""


class NotReady(StackError):
    """A service process is running but its /readyz did not answer 200 in time."""


class StackAlreadyRunning(StackError):
    """A live stack already owns this home; a second one would share its data and ports."""


class StackNotRunning(StackError):
    """An operation needs a running stack (or running infrastructure) and there is none."""


class BadSetting(StackError):
    """A setting of the stack or the demo has a value it cannot use."""
