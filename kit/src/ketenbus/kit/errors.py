"""The errors handlers and domains raise, importable without the infrastructure: a domain
module that imports these pulls in neither pymongo nor aiokafka (the kit's `failures` module,
which decides what is transient, needs both)."""

from __future__ import annotations


class DomainError(Exception):
    """A rule of the work was broken: the event or command can never succeed as it is."""


class TransientError(Exception):
    """Raised by a service for a failure that will go away by itself (a partner API down)."""


class AlreadyHandled(Exception):
    """This consumer has handled this event before; the handler must not run again."""
