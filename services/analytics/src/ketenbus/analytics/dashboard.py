"""The dashboard page: one self-contained HTML file, charts drawn as inline SVG by a few
lines of our own script. It loads nothing from anywhere but this service, so it works offline
and inside a network that allows no CDN.

Served by analytics, the page asks for the manager's API key (or reads it from `#key=...`,
which browsers never send to a server), then fetches /v1/dashboard-data with it. Written as a
report file, the same page carries its data inside and needs no server at all.
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

_STYLE = (files(__package__) / "static" / "dashboard.css").read_text("utf-8")

_SCRIPT = (files(__package__) / "static" / "dashboard.js").read_text("utf-8")

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Ketenbus steering figures</title><style>@@STYLE@@</style></head>
<body>
<header><h1>Steering figures</h1><p id="org">Ketenbus analytics</p></header>
<main>
<section id="login"><h2>Sign in</h2>
<form id="login-form"><p>Paste your organisation's analytics key.</p>
<input id="key" type="password" autocomplete="off"> <button>Show figures</button></form>
<p id="problem"></p></section>
<section><h2>This year at a glance</h2><div class="tiles" id="tiles"></div></section>
<section><h2>The sector's table, per quarter</h2>
<p class="note">Time per case is hours:minutes, truncated to the whole minute, as in the sector's
own tables. Each closed case counts in the period it was closed.</p><div id="table"></div></section>
<section><h2>Trends</h2><div class="grid" id="charts"></div></section>
<section id="benchmark"></section>
<section id="business"></section>
</main>
@@DATA@@<script>@@SCRIPT@@</script>
</body></html>
"""


def render_dashboard(data: dict[str, Any] | None) -> str:
    """The page; with `data` it carries its figures inside (a report file), else it loads
    them from this service with the manager's key."""
    island = ""
    if data is not None:
        payload = json.dumps(data, default=str).replace("</", "<\\/")
        island = f'<script type="application/json" id="dashboard-data">{payload}</script>\n'
    return (
        _PAGE.replace("@@STYLE@@", _STYLE)
        .replace("@@SCRIPT@@", _SCRIPT)
        .replace("@@DATA@@", island)
    )
