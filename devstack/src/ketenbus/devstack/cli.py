"""`ketenbus`: run the whole chain on this machine.

    ketenbus up                 start everything, wait until every service is ready, print URLs
                                (--replicas N: every service as N processes, --brokers 3)
    ketenbus down               stop everything (services first, servers last)
    ketenbus status             each component: pid, alive, ready
    ketenbus logs [NAME] [-n N] [-f]
    ketenbus demo               `up` if needed, then run the demo scenario
    ketenbus analytics rebuild [--verify]   replay the topics into analytics' projection
    ketenbus dlq list <topic>   the dead letters of a topic, with their reasons
    ketenbus dlq replay <topic> [--consumer NAME]   send them back after a fix, once

The stack lives in a home directory: --home, else $KETENBUS_HOME, else ./.ketenbus.
Exit status 0 when all went well, 1 with the reason on stderr otherwise. What it says is
Dutch unless KETENBUS_LANGUAGE=en (cli_texts.py; --help stays English, see there).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

from ketenbus.devstack import access
from ketenbus.devstack.cli_texts import say, seconds
from ketenbus.devstack.errors import StackAlreadyRunning, StackError
from ketenbus.devstack.language import chosen_language
from ketenbus.devstack.processes import log_tail
from ketenbus.devstack.stack import INFRASTRUCTURE, SERVICES, EmbeddedStack

SCENARIO = "ketenbus.devstack.scenario"


class Failure(Exception):
    """Ends the command with exit status 1 and this message on stderr."""


def default_home() -> Path:
    return Path(os.environ.get("KETENBUS_HOME") or ".ketenbus")


def _stack(args: argparse.Namespace) -> EmbeddedStack:
    return EmbeddedStack(
        args.home,
        # The demo's Kafka partners (GP practices, debt counselling) unless told otherwise.
        partners=getattr(args, "partner", None) or list(access.KAFKA_PARTNERS),
        service_module=args.service_module,
        preferred_ports=not args.free_ports,
        log_level=getattr(args, "log_level", "INFO"),
        brokers=getattr(args, "brokers", None),
        replicas=getattr(args, "replicas", None),
    )


# ------------------------------------------------------------------------- commands


def cmd_up(args: argparse.Namespace, out: TextIO) -> None:
    stack = _stack(args)
    _bring_up(stack, args.timeout, out)
    _print_urls(stack, out)


def _bring_up(stack: EmbeddedStack, timeout: float, out: TextIO) -> None:
    print(say("starting", home=stack.home), file=out, flush=True)
    started = time.monotonic()
    try:
        stack.start(SERVICES, timeout=timeout)
    except KeyboardInterrupt:
        raise Failure(say("interrupted")) from None
    except StackAlreadyRunning as error:
        raise Failure(str(error)) from error  # the running stack is left alone
    except StackError as error:
        raise Failure(say("start_failed", reason=error)) from error
    print(say("up", seconds=seconds(time.monotonic() - started)), file=out)


def cmd_down(args: argparse.Namespace, out: TextIO) -> None:
    stack = _stack(args)
    if not stack.is_running():
        stack.stop()  # clears a stack.json left by a stack that died
        print(say("no_stack", home=stack.home), file=out)
        return
    stack.stop(timeout=args.timeout)
    print(say("stopped", home=stack.home), file=out)


def cmd_status(args: argparse.Namespace, out: TextIO) -> None:
    stack = _stack(args)
    statuses = stack.status()
    if not statuses:
        raise Failure(say("no_stack", home=stack.home))
    rows = [
        tuple(say(f"status.{column}") for column in ("component", "pid", "alive", "ready", "url"))
    ]
    for s in statuses:
        pid = say("status.external") if s.external else str(s.pid or "-")
        rows.append((s.name, pid, _yes(s.alive), _yes(s.ready), _shown(s.url)))
    _print_table(rows, out)
    unhealthy = [s.name for s in statuses if not (s.alive and s.ready)]
    if unhealthy:
        raise Failure(say("unhealthy", components=", ".join(unhealthy)))


def cmd_logs(args: argparse.Namespace, out: TextIO) -> None:
    stack = _stack(args)
    if args.component:
        names = [args.component]
        if not stack.log_path(args.component).exists():
            raise Failure(say("no_log", component=args.component, directory=stack.logs_dir))
    else:
        names = [n for n in (*INFRASTRUCTURE, *SERVICES) if stack.log_path(n).exists()]
        names += sorted(
            p.stem for p in stack.logs_dir.glob("*.log") if p.stem not in names
        )  # services run under other names (tests)
        if not names:
            raise Failure(say("no_logs", directory=stack.logs_dir))
    prefix = len(names) > 1
    for name in names:
        tail = log_tail(stack.log_path(name), args.lines)
        for line in tail.splitlines():
            print(f"{name:<14}| {line}" if prefix else line, file=out)
    if args.follow:
        _follow({name: stack.log_path(name) for name in names}, prefix, out)


def _follow(paths: dict[str, Path], prefix: bool, out: TextIO) -> None:
    """Print what is appended to the logs until Ctrl-C, like `tail -f`."""
    offsets = {name: path.stat().st_size if path.exists() else 0 for name, path in paths.items()}
    partial = dict.fromkeys(paths, "")
    try:
        while True:
            for name, path in paths.items():
                if not path.exists():
                    continue
                size = path.stat().st_size
                if size < offsets[name]:
                    offsets[name] = 0  # truncated or replaced
                if size == offsets[name]:
                    continue
                with path.open("rb") as log:
                    log.seek(offsets[name])
                    chunk = log.read()
                offsets[name] += len(chunk)
                text = partial[name] + chunk.decode(errors="replace")
                *lines, partial[name] = text.split("\n")
                for line in lines:
                    print(f"{name:<14}| {line}" if prefix else line, file=out, flush=True)
            time.sleep(0.2)  # polling a file for growth: there is no condition to wait for
    except KeyboardInterrupt:
        return


def cmd_demo(args: argparse.Namespace, out: TextIO) -> None:
    """Run the demo scenario on an empty chain. A year played on top of an earlier one would
    mix both: the earlier trajectories fill the caseloads, the earlier referrals the figures."""
    stack = _stack(args)
    if stack.is_running():
        print(say("restarting_empty", home=stack.home), file=out, flush=True)
        stack.stop()
    if stack.clear_data():
        print(say("cleared", home=stack.home), file=out)
    _bring_up(stack, args.timeout, out)
    _print_urls(stack, out)
    # Looked up by name at run time, so a test can put a scenario of its own in its place.
    scenario = importlib.import_module(SCENARIO)
    result: Any = scenario.run(stack)
    if inspect.isawaitable(result):
        asyncio.run(_awaited(result))


def cmd_analytics_rebuild(args: argparse.Namespace, out: TextIO) -> None:
    """Stop analytics, replay the topics into its projection, start it again; or, with
    --verify, rebuild beside the live projection and compare (analytics keeps running)."""
    stack = _stack(args)
    if not stack.is_running():
        raise Failure(say("no_stack", home=stack.home))
    environment = stack.service_environment("analytics")
    command = [sys.executable, "-m", "ketenbus.analytics", "rebuild"]
    if args.verify:
        done = subprocess.run([*command, "--verify"], env=environment, check=False)
        if done.returncode != 0:
            raise Failure(say("rebuild_differs"))
        return
    replicas = stack.replicas_of("analytics")
    for replica in replicas:
        stack.stop_service(replica)
    try:
        done = subprocess.run(command, env=environment, check=False)
    finally:
        stack.start_replicas("analytics")
        stack.wait_ready(replicas)
    if done.returncode != 0:
        raise Failure(say("rebuild_failed"))
    print(say("rebuilt"), file=out)


def cmd_dlq(args: argparse.Namespace, out: TextIO) -> None:
    """ketenbus.kit.deadletters against the stack's Kafka (see its docstring)."""
    stack = _stack(args)
    if not stack.is_running():
        raise Failure(say("no_stack", home=stack.home))
    command = [sys.executable, "-m", "ketenbus.kit.deadletters", args.dlq_command, args.topic]
    if args.dlq_command == "replay" and args.consumer:
        command += ["--consumer", args.consumer]
    done = subprocess.run(
        command,
        env=stack.service_environment("analytics"),
        check=False,
        capture_output=True,
        text=True,
    )
    print(done.stdout, end="", file=out)
    if done.returncode != 0:
        reason = done.stderr.strip()[-500:]
        raise Failure(say("dlq_failed", command=args.dlq_command, reason=reason))


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


# ------------------------------------------------------------------------- output


def _print_urls(stack: EmbeddedStack, out: TextIO) -> None:
    urls = stack.urls()
    rows = [(say("urls.what"), say("urls.where"))]
    for name in stack.service_names():
        rows.append((name, urls[name]))
        for page in ("metrics", "asyncapi", "docs"):
            rows.append((f"  {page}", urls[f"{name}.{page}"]))
    rows.append(("kafka (bootstrap)", urls["kafka"]))
    kafka = stack.kafka
    if kafka.directory is not None:
        # SASL_SSL, SCRAM-SHA-512: the users' passwords and the CA to trust.
        rows.append((f"  {say('urls.users')}", str(kafka.directory / "users.json")))
        rows.append((f"  {say('urls.ca')}", str(kafka.ca_file)))
    rows.append(("mongo", _shown(urls["mongo"])))
    rows.append(("mail (smtp)", urls["mail"]))
    rows.append((say("urls.mail_received"), urls["mail.dir"]))
    rows.append((say("urls.sms_sink"), urls["sms"]))
    rows.append((say("urls.sms_received"), urls["sms.dir"]))
    rows.append((say("urls.logs"), str(stack.logs_dir)))
    _print_table(rows, out)


def _print_table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip(),
            file=out,
        )


def _shown(url: str) -> str:
    """The URL without its password: an external MONGODB_URL may carry credentials."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _yes(flag: bool) -> str:
    return say("yes") if flag else say("no")


# ------------------------------------------------------------------------- entry point


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ketenbus", description="Run the Ketenbus chain on this machine."
    )
    parser.add_argument(
        "--home",
        type=Path,
        default=default_home(),
        help="stack home directory (default: $KETENBUS_HOME or ./.ketenbus)",
    )
    # Tests run the CLI against a fake service module; not for people.
    parser.add_argument("--service-module", default="ketenbus.{name}", help=argparse.SUPPRESS)
    parser.add_argument("--free-ports", action="store_true", help=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser("up", help="start everything and wait until it is ready")
    demo = commands.add_parser("demo", help="bring the stack up if needed, run the demo scenario")
    for sub in (up, demo):
        sub.add_argument("--timeout", type=float, default=90.0, help="seconds to wait (90)")
        sub.add_argument(
            "--partner",
            action="append",
            metavar="ORG",
            help="create the topics of this partner organisation (repeatable)",
        )
        sub.add_argument(
            "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
        )
        sub.add_argument(
            "--brokers",
            type=int,
            choices=[1, 3],
            help="Kafka brokers: 1, or 3 for failure tests (replication factor 3, "
            "min.insync.replicas 2); default KETENBUS_KAFKA_BROKERS or 1. A home keeps the "
            "count it was made with",
        )
        sub.add_argument(
            "--replicas",
            type=int,
            choices=range(1, 5),
            metavar="N",
            help="processes per service, 1 to 4, in one consumer group, each on its own "
            "HTTP port (intake 8001, intake-2 8011, ...); default KETENBUS_REPLICAS or 1",
        )
    up.set_defaults(run=cmd_up)
    demo.set_defaults(run=cmd_demo)

    down = commands.add_parser("down", help="stop everything")
    down.add_argument("--timeout", type=float, default=10.0, help="seconds before SIGKILL (10)")
    down.set_defaults(run=cmd_down)

    status = commands.add_parser("status", help="pid, alive and ready of each component")
    status.set_defaults(run=cmd_status)

    logs = commands.add_parser("logs", help="show (and follow) the logs")
    logs.add_argument("component", nargs="?", help="e.g. intake, kafka, mongo, mail, sms")
    logs.add_argument("-n", "--lines", type=int, default=50, help="lines per log (50)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    logs.set_defaults(run=cmd_logs)

    analytics = commands.add_parser("analytics", help="analytics maintenance")
    analytics_commands = analytics.add_subparsers(dest="analytics_command", required=True)
    rebuild = analytics_commands.add_parser(
        "rebuild", help="replay every topic into analytics' projection (docs/analytics.md)"
    )
    rebuild.add_argument(
        "--verify",
        action="store_true",
        help="rebuild into a scratch database and compare with the live figures instead",
    )
    rebuild.set_defaults(run=cmd_analytics_rebuild)

    dlq = commands.add_parser("dlq", help="dead letters: list them, replay them after a fix")
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True)
    dlq_list = dlq_commands.add_parser("list", help="the dead letters of a topic, with reasons")
    dlq_replay = dlq_commands.add_parser("replay", help="send them back to the topic, once")
    for sub in (dlq_list, dlq_replay):
        sub.add_argument("topic", help="the stream, e.g. ketenbus.trajectory.trajectories.v1")
        sub.set_defaults(run=cmd_dlq)
    dlq_replay.add_argument("--consumer", help="only the letters this service put aside")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        chosen_language()  # a language it cannot speak is refused before anything starts
        args.run(args, sys.stdout)
    except Failure as failure:
        print(f"ketenbus {args.command}: {failure}", file=sys.stderr)
        return 1
    except StackError as error:
        print(f"ketenbus {args.command}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
