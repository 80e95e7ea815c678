#!/usr/bin/env python3
"""Vulnerability audit of the locked dependencies with pip-audit.

    python3 scripts/audit.py [--uv PATH] [--dev] [--service pypi|osv] [--strict] [-- PIP_AUDIT_ARGS]

Exports exactly what uv.lock pins (`uv export --frozen`, with hashes, without the workspace's
own packages) and asks pip-audit about every package. Exit status:

- 0: no known vulnerability; or the audit could not be done (its database or pip-audit itself
  could not be reached), which is printed as "vulnerability audit skipped: <reason>";
- 1: at least one known vulnerability, listed with the versions that fix it;
- 2: the audit itself is broken (bad arguments, an unexpected pip-audit failure), or it was
  skipped and --strict was given (for CI that is known to reach the database).

pip-audit reports "No known vulnerabilities found" and exits 0 even when it could look up no
package at all (PyPI answering 404 for its JSON API, as behind a mirror that serves only the
package index): every package it skipped is therefore counted here, and any skip makes the
audit "skipped", never "clean". Stdlib only: runs with the system python3, before `uv sync`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

PIP_AUDIT = "pip-audit==2.10.1"
ROOT = Path(__file__).resolve().parent.parent

# Text in a failed command's output that means "could not reach the network", as opposed to a
# broken command: uv's download errors, requests/urllib3 connection errors, timeouts.
NETWORK_SIGNS = (
    "Failed to fetch",
    "dns error",
    "error sending request",
    "tcp connect error",
    "Request failed after",
    "ConnectionError",
    "NameResolutionError",
    "Max retries exceeded",
    "Connection refused",
    "timed out",
    "Timeout",
    "Network is unreachable",
    "offline",
    "network was disabled",
)


class Skipped(Exception):
    """The audit could not be done; the message says why."""


def main(argv: list[str]) -> int:
    args, pip_audit_args = _arguments(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="ketenbus-audit-") as work:
            requirements = _export(args.uv, args.dev, Path(work))
            pinned = _pinned(requirements)
            _install_pip_audit(args)
            report = _pip_audit(args, requirements, pip_audit_args)
    except Skipped as skipped:
        print(f"vulnerability audit skipped: {skipped}")
        return 2 if args.strict else 0
    except subprocess.CalledProcessError as error:
        print(f"vulnerability audit failed: {error}\n{error.stderr or ''}", file=sys.stderr)
        return 2
    return _judge(report, pinned, args.strict)


def _arguments(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    own, extra = argv, []
    if "--" in argv:  # the rest goes to pip-audit, e.g. -- --ignore-vuln GHSA-...
        own, extra = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uv", default=os.environ.get("UV", "uv"), help="the uv to use")
    parser.add_argument("--dev", action="store_true", help="audit the dev group as well")
    parser.add_argument("--service", choices=("pypi", "osv"), default="pypi")
    parser.add_argument("--osv-url", help="another OSV API (with --service osv)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    parser.add_argument(
        "--total-timeout", type=float, default=300.0, help="seconds for pip-audit altogether"
    )
    parser.add_argument("--strict", action="store_true", help="exit 2 when the audit is skipped")
    return parser.parse_args(own), extra


def _export(uv: str, dev: bool, work: Path) -> Path:
    """uv.lock's pins for the services (and the dev tools with --dev), with hashes."""
    target = work / "requirements.txt"
    command = [uv, "export", "--frozen", "--no-emit-workspace", "--format", "requirements-txt"]
    command += ["--no-header", "--quiet", "--output-file", str(target)]
    if not dev:
        command.append("--no-dev")
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)
    return target


def _pinned(requirements: Path) -> dict[str, tuple[str, bool]]:
    """{normalised name: (version, has an environment marker)} of every exported pin."""
    pins = {}
    for line in requirements.read_text().splitlines():
        if line and not line.startswith((" ", "#", "-")):
            name, _, rest = line.partition("==")
            version, _, marker = rest.partition(";")
            pins[_normalised(name)] = (version.split()[0].strip(" \\"), bool(marker.strip()))
    if not pins:
        raise SystemExit(f"no pinned packages in {requirements}")
    return pins


def _normalised(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(".", "-")


def _pip_audit_command(args: argparse.Namespace) -> list[str]:
    return [args.uv, "tool", "run", "--from", PIP_AUDIT, "pip-audit"]


def _env(args: argparse.Namespace) -> dict[str, str]:
    return {**os.environ, "UV_HTTP_TIMEOUT": str(int(args.timeout) * 3)}


def _install_pip_audit(args: argparse.Namespace) -> None:
    """pip-audit from PyPI (or uv's cache): where it cannot be had, the audit is skipped."""
    try:
        done = subprocess.run(
            [*_pip_audit_command(args), "--version"],
            capture_output=True,
            text=True,
            timeout=args.total_timeout,
            env=_env(args),
        )
    except subprocess.TimeoutExpired:
        raise Skipped(
            f"{PIP_AUDIT} could not be installed within {args.total_timeout:g} s"
        ) from None
    if done.returncode != 0:
        raise Skipped(f"{PIP_AUDIT} could not be installed: {_last_line(done.stderr)}")


def _pip_audit(args: argparse.Namespace, requirements: Path, extra: list[str]) -> dict[str, object]:
    output = requirements.with_name("pip-audit.json")
    command = _pip_audit_command(args)
    command += ["--requirement", str(requirements), "--disable-pip", "--require-hashes"]
    command += ["--vulnerability-service", args.service, "--timeout", str(int(args.timeout))]
    command += ["--progress-spinner", "off", "--format", "json", "--output", str(output)]
    if args.osv_url:
        command += ["--osv-url", args.osv_url]
    try:
        done = subprocess.run(
            command + extra,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=args.total_timeout,
            env=_env(args),
        )
    except subprocess.TimeoutExpired:
        raise Skipped(f"pip-audit did not finish within {args.total_timeout:g} s") from None
    if output.exists() and output.stat().st_size:
        return json.loads(output.read_text())
    text = done.stdout + done.stderr
    if any(sign in text for sign in NETWORK_SIGNS):
        raise Skipped(_last_line(text))
    raise subprocess.CalledProcessError(done.returncode, command, done.stdout, done.stderr)


def _judge(report: dict[str, object], pinned: dict[str, tuple[str, bool]], strict: bool) -> int:
    dependencies = report.get("dependencies")
    assert isinstance(dependencies, list)
    expected = len(pinned)
    # pip-audit leaves out a pin whose marker does not hold here (colorama on win32 only);
    # any other pin it does not report was not audited.
    reported = {_normalised(d["name"]) for d in dependencies}
    unreported = sorted(name for name, (_, marker) in pinned.items() if name not in reported)
    unaudited = [name for name in unreported if not pinned[name][1]]
    vulnerable = [d for d in dependencies if d.get("vulns")]
    skipped = [d for d in dependencies if d.get("skip_reason")]
    for dependency in vulnerable:
        for vuln in dependency["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions") or []) or "no fixed version yet"
            aliases = ", ".join(vuln.get("aliases") or [])
            print(
                f"VULNERABLE {dependency['name']}=={dependency['version']}: {vuln['id']}"
                + (f" ({aliases})" if aliases else "")
                + f"; fixed in: {fixes}"
            )
    if vulnerable:
        count = sum(len(d["vulns"]) for d in vulnerable)
        print(f"{count} known vulnerabilities in {len(vulnerable)} of {expected} packages")
        if skipped:
            print(f"(and {len(skipped)} packages could not be looked up)")
        return 1
    if skipped:
        reason = skipped[0]["skip_reason"]
        if len(skipped) == len(dependencies):
            print(
                f"vulnerability audit skipped: none of the {len(skipped)} packages could be "
                f"looked up, the vulnerability database does not answer here ({reason})"
            )
        else:
            print(
                f"vulnerability audit skipped: {len(skipped)} of {expected} packages could not "
                f"be looked up, e.g. {reason}"
            )
        return 2 if strict else 0
    if unaudited:
        print(f"vulnerability audit skipped: pip-audit did not report {', '.join(unaudited)}")
        return 2 if strict else 0
    other = f" ({len(unreported)} only for other platforms)" if unreported else ""
    print(f"no known vulnerabilities in {len(dependencies)} locked packages{other}")
    return 0


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
