"""`python -m ketenbus.devstack` is the `ketenbus` command."""

from ketenbus.devstack.cli import main

raise SystemExit(main())
