"""The stack's engines, installed once per machine into a cache that later runs reuse.

- Apache Kafka: the broker's jars, resolved by Maven from `devstack/engines/kafka/pom.xml`
  (Maven Central), with the stack's small provisioning tool compiled beside them.
- SecantusDB's Rust MongoDB server, `secantusd-rs`, built by `cargo install` from crates.io.

Both land under the engine cache (`KETENBUS_ENGINES`, default `~/.cache/ketenbus/engines`),
in a folder named after what was built (the pom's digest, the crate's exact version), so a
change to either builds anew and an old cache is never used by mistake. Installing is
serialised by a lock file: parallel test workers wait for the one that builds.

    python -m ketenbus.devstack.engines install   # what `make engines` runs; prints timings
    python -m ketenbus.devstack.engines where     # the paths the stack uses
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ketenbus.devstack.errors import StartFailed

KAFKA_PROJECT = Path(__file__).resolve().parents[3] / "engines" / "kafka"
SECANTUS_CRATE = "secantus-mdb"
# The exact pre-release the installed SecantusDB documents (its METADATA names the command).
SECANTUS_VERSION = "0.5.3-beta.193"
# The crate's release profile (thin LTO, one codegen unit) takes several times as long to
# build; for a development server the difference in speed does not matter.
_CARGO_PROFILE = {
    "CARGO_PROFILE_RELEASE_LTO": "false",
    "CARGO_PROFILE_RELEASE_CODEGEN_UNITS": "16",
}

Progress = Callable[[str], None]


def cache_root() -> Path:
    configured = os.environ.get("KETENBUS_ENGINES")
    if configured:
        return Path(configured).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ketenbus" / "engines"


# ----------------------------------------------------------------------------- Kafka


def kafka_version() -> str:
    pom = (KAFKA_PROJECT / "pom.xml").read_text(encoding="utf-8")
    found = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom)
    if found is None:
        raise StartFailed(f"{KAFKA_PROJECT / 'pom.xml'} names no <kafka.version>")
    return found.group(1)


def _kafka_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(KAFKA_PROJECT.rglob("*")):
        if path.is_file() and "target" not in path.relative_to(KAFKA_PROJECT).parts:
            digest.update(str(path.relative_to(KAFKA_PROJECT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def kafka_home() -> Path:
    return cache_root() / f"kafka-{kafka_version()}-{_kafka_digest()}"


def kafka_classpath() -> str:
    """The broker's classpath; fails with the command to run when Kafka is not installed."""
    libs = kafka_home() / "libs"
    if not (kafka_home() / "installed").exists():
        raise StartFailed(
            f"Apache Kafka {kafka_version()} is not installed in {kafka_home()}; "
            "run `make engines` (or python -m ketenbus.devstack.engines install)"
        )
    return f"{libs}/*"


def java_binary() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise StartFailed("java not found: Apache Kafka needs Java 17 or later (JAVA_HOME)")
    return found


def install_kafka(progress: Progress = print) -> Path:
    home = kafka_home()
    if (home / "installed").exists():
        return home
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StartFailed("mvn not found: Maven resolves Apache Kafka from Maven Central")
    progress(f"installing Apache Kafka {kafka_version()} with Maven into {home} ...")
    started = time.monotonic()
    build = home / "build"
    command = [
        mvn,
        "--batch-mode",
        "--quiet",
        "-f",
        str(KAFKA_PROJECT / "pom.xml"),
        f"-Dketenbus.build={build}",
        "package",
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={home / 'libs'}",
    ]
    _run(command, "Maven")
    shutil.copy2(build / "ketenbus-kafka-1.jar", home / "libs" / "ketenbus-kafka.jar")
    shutil.rmtree(build)
    (home / "installed").write_text(f"{time.monotonic() - started:.1f}\n")
    progress(f"Apache Kafka {kafka_version()} installed in {time.monotonic() - started:.0f} s")
    return home


# ----------------------------------------------------------------------------- SecantusDB


def secantus_home() -> Path:
    return cache_root() / f"{SECANTUS_CRATE}-{SECANTUS_VERSION}"


def secantus_binary() -> Path:
    """secantusd-rs; fails with the command to run when it has not been built."""
    binary = secantus_home() / "bin" / "secantusd-rs"
    if not binary.exists():
        raise StartFailed(
            f"secantusd-rs {SECANTUS_VERSION} is not built in {secantus_home()}; "
            "run `make engines` (or python -m ketenbus.devstack.engines install)"
        )
    return binary


def install_secantus(progress: Progress = print) -> Path:
    binary = secantus_home() / "bin" / "secantusd-rs"
    if binary.exists():
        return binary
    cargo = shutil.which("cargo") or str(Path.home() / ".cargo" / "bin" / "cargo")
    if not Path(cargo).exists():
        raise StartFailed("cargo not found: secantusd-rs is built from crates.io with cargo")
    progress(
        f"building secantusd-rs {SECANTUS_VERSION} with cargo into {secantus_home()} "
        "(the first time only; a few minutes) ..."
    )
    started = time.monotonic()
    command = [
        cargo,
        "install",
        SECANTUS_CRATE,
        "--version",
        SECANTUS_VERSION,
        "--locked",
        # The crate asks for rustc 1.98; it builds and passes our suite with the machine's
        # rustc, and no newer toolchain can be fetched here.
        "--ignore-rust-version",
        "--root",
        str(secantus_home()),
    ]
    _run(command, "cargo", env={**os.environ, **_CARGO_PROFILE})
    progress(f"secantusd-rs {SECANTUS_VERSION} built in {time.monotonic() - started:.0f} s")
    return binary


# ----------------------------------------------------------------------------- both


@contextmanager
def _installing() -> Iterator[None]:
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def install(progress: Progress = print) -> None:
    """Install whatever is missing; quick when everything is in the cache."""
    with _installing():
        install_kafka(progress)
        install_secantus(progress)


def _run(command: list[str], tool: str, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()
        tail = "\n".join(output[-30:])
        raise StartFailed(f"{tool} failed ({' '.join(command[:3])} ...):\n{tail}")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["install"]:
        try:
            install(lambda line: print(line, flush=True))
        except StartFailed as error:
            print(error, file=sys.stderr)
            return 1
        return 0
    if args == ["where"]:
        print(f"kafka {kafka_home()}")
        print(f"secantusd-rs {secantus_home() / 'bin' / 'secantusd-rs'}")
        return 0
    print("usage: python -m ketenbus.devstack.engines install|where", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
