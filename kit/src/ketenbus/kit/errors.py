"""The errors handlers and domains raise, importable without the infrastructure: a domain
module that imports these pulls in neither pymongo nor aiokafka (the kit's `failures` module,
which decides what is transient, needs both)."""

from __future__ import annotations


class DomainError(Exception):
    """A rule of the work was broken: the event or command can never succeed as it is.

    An HTTP caller gets `status_code` and `code` in the answer (`{"detail": ..., "code":
    ...}`): a program decides on the code, never on the sentence, which may be reworded."""

    status_code = 409
    code = "rule_broken"


class TransientError(Exception):
    """Raised by a service for a failure that will go away by itself (a partner API down)."""


class AlreadyHandled(Exception):
    """This consumer has handled this event before; the handler must not run again."""
