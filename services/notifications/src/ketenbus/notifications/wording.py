"""Words a message to a client never contains.

Someone else may read the client's phone or mailbox, so a message never says why the client
gets help (money, debts, mental health, relationships, ...) and never threatens. The template
test scans every template with this list; organisation policies are checked against it too.
"""

from __future__ import annotations

import re

FORBIDDEN_WORDS: tuple[str, ...] = (
    # Money and debts, in Dutch and English (stems, so "schulden" and "financieel" match).
    "schuld",
    "geld",
    "betaal",
    "betaling",
    "achterstand",
    "incasso",
    "deurwaarder",
    "beslag",
    "armoede",
    "lening",
    "krediet",
    "bewind",
    "inkomen",
    "uitkering",
    "budget",
    "financ",
    "debt",
    "money",
    "payment",
    "arrears",
    "bailiff",
    "poverty",
    "loan",
    "credit",
    "income",
    # A home or supply at risk.
    "ontruiming",
    "huisuitzetting",
    "afsluiting",
    "eviction",
    "disconnect",
    # Other reasons for help.
    "psych",
    "ggz",
    "mental",
    "depress",
    "verslav",
    "addict",
    "stress",
    "eenzaam",
    "lonel",
    "opvoed",
    "parenting",
    "scheiding",
    "divorce",
    "hulpverlen",
    "social work",
    "maatschappelijk",
    # Threats: a missed appointment starts support, never pressure.
    "laatste kans",
    "last chance",
    "boete",
    "penalty",
    "sanctie",
    "sanction",
    "gevolgen",
    "consequence",
    "verplicht",
    "obliged",
    "deadline",
)

_PATTERN = re.compile("|".join(re.escape(word) for word in FORBIDDEN_WORDS), re.IGNORECASE)


def forbidden_words_in(text: str) -> list[str]:
    """The forbidden words (as listed) that occur in the text, in order of appearance."""
    return [match.group(0).lower() for match in _PATTERN.finditer(text)]
