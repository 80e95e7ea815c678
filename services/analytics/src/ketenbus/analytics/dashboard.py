"""The dashboard page: one self-contained HTML file, charts drawn as inline SVG by a few
lines of our own script. It loads nothing from anywhere but this service, so it works offline
and inside a network that allows no CDN.

Served by analytics, the page asks for the manager's API key (or reads it from `#key=...`,
which browsers never send to a server), then fetches /v1/dashboard-data with it. Written as a
report file, the same page carries its data inside and needs no server at all.

The page speaks one language, chosen when it is made: its words (labels.py) and the way it
writes numbers go inside it, next to the script; the data stays language-free.
"""

from __future__ import annotations

import html
import json
import re
from importlib.resources import files
from typing import Any

from ketenbus.analytics import labels
from ketenbus.contracts.values import Language

_STYLE = (files(__package__) / "static" / "dashboard.css").read_text("utf-8")

_SCRIPT = (files(__package__) / "static" / "dashboard.js").read_text("utf-8")

_PAGE = """<!doctype html>
<html lang="@@LANG@@"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{page.title}}</title><style>@@STYLE@@</style></head>
<body>
<header><h1>{{page.heading}}</h1><p id="org">Ketenbus analytics</p>
<a id="other-language" href="?lang=@@OTHER@@" hreflang="@@OTHER@@" lang="@@OTHER@@">
{{page.other_language}}</a></header>
<main>
<section id="login"><h2>{{page.sign_in}}</h2>
<form id="login-form"><p>{{page.key_prompt}}</p>
<input id="key" type="password" autocomplete="off"> <button>{{page.show}}</button></form>
<p id="problem"></p></section>
<section><h2>{{page.at_a_glance}}</h2><div class="tiles" id="tiles"></div></section>
<section id="sector-form"></section>
<section><h2>{{page.sector_table}}</h2>
<p class="note">{{page.sector_table_note}}</p><div id="table"></div></section>
<section><h2>{{page.trends}}</h2><div class="grid" id="charts"></div></section>
<section id="benchmark"></section>
<section id="business"></section>
</main>
@@DATA@@<script type="application/json" id="dashboard-words">@@WORDS@@</script>
<script>@@SCRIPT@@</script>
</body></html>
"""


def _island(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False).replace("</", "<\\/")


def render_dashboard(data: dict[str, Any] | None, language: Language = labels.DEFAULT) -> str:
    """The page in `language`; with `data` it carries its figures inside (a report file),
    else it loads them from this service with the manager's key."""
    words = labels.words(language)
    island = ""
    if data is not None:
        island = f'<script type="application/json" id="dashboard-data">{_island(data)}</script>\n'
    other = next(lang for lang in Language if lang != language)
    page = re.sub(r"\{\{([a-z_.]+)\}\}", lambda m: html.escape(words[m[1]]), _PAGE)
    words_island = _island({"lang": language, "words": words, "numbers": labels.NUMBERS[language]})
    return (
        page.replace("@@LANG@@", language)
        .replace("@@OTHER@@", other)
        .replace("@@STYLE@@", _STYLE)
        .replace("@@SCRIPT@@", _SCRIPT)
        .replace("@@WORDS@@", words_island)
        .replace("@@DATA@@", island)
    )
