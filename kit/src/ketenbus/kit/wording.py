"""Words in Dutch and English, and numbers written each language's way: the one mechanism
behind every wording table a manager, funder or operator reads (analytics' labels, the
demo's narration). A table maps a key to its words in both languages; a test per table holds
every key to both, with the same blanks to fill in."""

from __future__ import annotations

import string

from ketenbus.contracts.values import Language

NL, EN = Language.NL, Language.EN
DEFAULT = NL

Texts = dict[Language, str]
Table = dict[str, Texts]


def both(nl: str, en: str) -> Texts:
    """One key's words: Dutch first."""
    return {NL: nl, EN: en}


def words(table: Table, language: Language) -> dict[str, str]:
    """Every key of `table` in one language (a KeyError where a translation is missing)."""
    return {key: texts[language] for key, texts in table.items()}


def untranslated(table: Table) -> list[str]:
    """The keys of `table` without words in every language, or whose languages leave
    different blanks to fill in (a translation that would drop a figure)."""
    return [
        key
        for key, texts in table.items()
        if set(texts) != set(Language)
        or any(not text.strip() for text in texts.values())
        or len({frozenset(_blanks(text)) for text in texts.values()}) > 1
    ]


def _blanks(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


# How numbers are written: 1.234,5 and € 39.180 in Dutch; 1,234.5 and €39,180 in English.
NUMBERS: dict[Language, dict[str, str]] = {
    NL: {"decimal": ",", "thousands": ".", "euro": "€ {n}", "percent": "{n} %"},
    EN: {"decimal": ".", "thousands": ",", "euro": "€{n}", "percent": "{n}%"},
}


def number(value: float, decimals: int, language: Language) -> str:
    """1.234,5 in Dutch, 1,234.5 in English."""
    text = f"{value:,.{decimals}f}"
    if language == NL:
        return text.translate(str.maketrans(",.", ".,"))
    return text


def percent(share: float, decimals: int, language: Language) -> str:
    """A share (0.253) as a percentage: 25,3 % in Dutch, 25.3% in English."""
    return NUMBERS[language]["percent"].format(n=number(share * 100, decimals, language))
