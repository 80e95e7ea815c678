"""python -m ketenbus.contracts export | check | asyncapi"""

from __future__ import annotations

import argparse
import json
import sys

from ketenbus.contracts.asyncapi import build_asyncapi
from ketenbus.contracts.compatibility import breaking_changes
from ketenbus.contracts.schemas import SCHEMA_DIR, current_schemas, export, published_schemas


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ketenbus.contracts")
    command = parser.add_subparsers(dest="command", required=True)
    command.add_parser("export", help="write the JSON Schema of every event to contracts/schemas")
    command.add_parser("check", help="fail when a published schema changed incompatibly")
    command.add_parser("asyncapi", help="print the AsyncAPI 3.0 document of the whole chain")
    args = parser.parse_args(argv)

    if args.command == "export":
        problems = breaking_changes(published_schemas(), current_schemas())
        if problems:
            print("refusing to overwrite published schemas; breaking changes:", file=sys.stderr)
            print("\n".join(f"  {p}" for p in problems), file=sys.stderr)
            print("publish a new version of the event instead (.v2)", file=sys.stderr)
            return 1
        for path in export():
            print(path.relative_to(SCHEMA_DIR.parent))
        return 0
    if args.command == "check":
        problems = breaking_changes(published_schemas(), current_schemas())
        missing = sorted(current_schemas().keys() - published_schemas().keys())
        for problem in problems:
            print(f"breaking: {problem}", file=sys.stderr)
        for event_type in missing:
            print(f"not exported yet: {event_type} (run make schemas)", file=sys.stderr)
        return 1 if problems or missing else 0
    print(json.dumps(build_asyncapi("Ketenbus chain"), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
