"""What the `ketenbus` command says to the operator, in Dutch unless `KETENBUS_LANGUAGE=en`
(language.py): every sentence here once, in both languages (devstack/tests/test_cli_texts.py
fails on a missing one). Three things stay English on purpose: the reasons the stack itself
gives when it fails (errors.py; raised deep in the stack and logged as they are), the log
lines (structlog events, machine-keyed), and `--help` (argparse writes its own frame, usage:
and options:, in English, so Dutch help texts would make a page of two languages)."""

from __future__ import annotations

from typing import Any

from ketenbus.devstack.language import chosen_language
from ketenbus.kit import wording
from ketenbus.kit.wording import both

TEXTS: wording.Table = {
    # ketenbus up, and demo when no stack runs yet
    "starting": both(
        "de Ketenbus-stack start in {home} ...", "starting the Ketenbus stack in {home} ..."
    ),
    "up": both("gestart in {seconds} s", "up in {seconds}s"),
    "interrupted": both(
        "onderbroken; alles wat al gestart was, is weer gestopt",
        "interrupted; everything that was started has been stopped",
    ),
    "start_failed": both(
        "{reason}\n(alles wat al gestart was, is weer gestopt)",
        "{reason}\n(everything that was started has been stopped)",
    ),
    # ketenbus down, status, and every command that needs a running stack
    "no_stack": both("er draait geen stack in {home}", "no stack running in {home}"),
    "stopped": both("de stack in {home} is gestopt", "stopped the stack in {home}"),
    "unhealthy": both(
        "draait niet of is niet gereed: {components}", "not alive or not ready: {components}"
    ),
    "status.component": both("ONDERDEEL", "COMPONENT"),
    "status.pid": both("PID", "PID"),
    "status.alive": both("DRAAIT", "ALIVE"),
    "status.ready": both("GEREED", "READY"),
    "status.url": both("URL", "URL"),
    "status.external": both("extern", "external"),
    "yes": both("ja", "yes"),
    "no": both("nee", "no"),
    # ketenbus logs
    "no_log": both(
        "geen log van '{component}' in {directory}", "no log for '{component}' in {directory}"
    ),
    "no_logs": both("geen logs in {directory}", "no logs in {directory}"),
    # ketenbus demo
    "restarting_empty": both(
        "de stack in {home} draait al: hij stopt en begint leeg, want een jaar bovenop een eerder"
        " jaar mengt ze allebei",
        "the stack in {home} is running: it stops and begins empty, as a year on top of an"
        " earlier one mixes both",
    ),
    "cleared": both(
        "de gebeurtenissen, documenten, mail, sms en rapporten van de vorige stack in {home} zijn"
        " gewist: de demo begint op een lege keten",
        "cleared the events, documents, mail, SMS and reports of the last stack in {home}:"
        " the demo begins on an empty chain",
    ),
    # ketenbus analytics rebuild
    "rebuild_differs": both(
        "de herbouwde cijfers wijken af van de live cijfers",
        "the rebuilt figures differ from the live ones",
    ),
    "rebuild_failed": both(
        "het herbouwen is mislukt; analytics draait weer, maar kan feiten missen: herbouw opnieuw",
        "the rebuild failed; analytics runs again but may miss facts: rebuild again",
    ),
    "rebuilt": both(
        "analytics is herbouwd uit de topics en draait weer",
        "analytics rebuilt from the topics and running again",
    ),
    # ketenbus dlq
    "dlq_failed": both("dlq {command} is mislukt: {reason}", "dlq {command} failed: {reason}"),
    # The table of URLs that `up` prints; the services' and engines' names stay as they are.
    "urls.what": both("WAT", "WHAT"),
    "urls.where": both("WAAR", "WHERE"),
    "urls.users": both("gebruikers (0600)", "users (0600)"),
    "urls.ca": both("CA-certificaat", "CA certificate"),
    "urls.mail_received": both("mail (ontvangen)", "mail (received)"),
    "urls.sms_sink": both("sms-opvang", "sms sink"),
    "urls.sms_received": both("sms (ontvangen)", "sms (received)"),
    "urls.logs": both("logs", "logs"),
}


def say(key: str, **blanks: Any) -> str:
    """One sentence in the language chosen now (the setting is read each time: cheap, and a
    test may change it)."""
    return TEXTS[key][chosen_language()].format(**blanks)


def seconds(value: float) -> str:
    """A duration the way the chosen language writes it: 12,3 or 12.3."""
    return wording.number(value, 1, chosen_language())
