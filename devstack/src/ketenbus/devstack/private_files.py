"""Files only their owner may read: keys, passwords, certificates' private keys."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def write_private(path: Path, content: str | bytes) -> None:
    """Write `content` to `path` with mode 0600 from the first byte (never readable by others,
    not even briefly), under a temporary name renamed at the end, so a crash never leaves a
    half-written secret behind."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    temporary.replace(path)
