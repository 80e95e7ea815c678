"""The words of analytics: every label in Dutch and in English, every key the page, the API
and the CSVs use has its label, and the language is chosen as documented. No servers."""

from __future__ import annotations

import re
import string
from dataclasses import fields
from importlib.resources import files

import pytest

from ketenbus.analytics import labels
from ketenbus.analytics.dashboard import render_dashboard
from ketenbus.analytics.measures import FIELDS, MixRow
from ketenbus.analytics.views import BENCHMARK_FIGURES
from ketenbus.contracts.values import Language, ReferralTopic, ReferrerType, WorkType

SCRIPT = (files("ketenbus.analytics") / "static" / "dashboard.js").read_text("utf-8")


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@pytest.mark.parametrize("key", sorted(labels.LABELS))
def test_every_label_has_both_languages(key):
    texts = labels.LABELS[key]
    assert set(texts) == set(Language), f"{key}: {sorted(texts)}"
    for language, text in texts.items():
        assert text.strip(), f"{key} has no {language} words"
    # The same blanks to fill in either language: a translation cannot drop a figure.
    assert placeholders(texts[Language.NL]) == placeholders(texts[Language.EN]), key


def test_a_missing_translation_is_found():
    """The check above, against a table with one language missing."""
    broken = {**labels.LABELS, "page.heading": {Language.NL: "Stuurcijfers"}}
    missing = [key for key, texts in broken.items() if set(texts) != set(Language)]
    assert missing == ["page.heading"]
    with pytest.raises(KeyError):
        labels.words(Language.EN, broken)


def test_every_key_of_the_api_and_the_csvs_has_a_label():
    mix = tuple(f.name for f in fields(MixRow))
    for column in (*FIELDS, *mix, *BENCHMARK_FIGURES):
        assert column in labels.FIGURES, column
    for language in Language:
        assert set(labels.column_labels(FIELDS, language)) == set(FIELDS)


def test_every_value_of_the_dimensions_has_a_label():
    for dimension, values in (
        ("referrer_type", ReferrerType),
        ("topic", ReferralTopic),
        ("work_type", WorkType),
    ):
        for value in values:
            assert f"{dimension}.{value}" in labels.VALUES, (dimension, value)
    for month in range(1, 13):
        assert f"month.{month}" in labels.PERIODS
    # Month names short enough to stand twelve in a row under a chart.
    assert all(len(labels.PERIODS[f"month.{m}"][Language.NL]) == 3 for m in range(1, 13))
    assert labels.PERIODS["month.3"] == {Language.NL: "mrt", Language.EN: "Mar"}


def test_every_word_the_page_uses_has_a_label():
    used = set(re.findall(r'\bt\("([a-z_.]+)"\s*[,)]', SCRIPT))
    used |= set(re.findall(r'"(unit\.[a-z_]+)"', SCRIPT))
    used |= {f"{key}" for key in re.findall(r'\["([a-z_]+)", "(?:int|raw|num|pct)"\]', SCRIPT)}
    assert len(used) > 60, sorted(used)
    assert sorted(used - set(labels.LABELS)) == []
    template = (files("ketenbus.analytics") / "dashboard.py").read_text("utf-8")
    assert sorted(set(re.findall(r"\{\{([a-z_.]+)\}\}", template)) - set(labels.LABELS)) == []


@pytest.mark.parametrize("language", list(Language))
def test_the_page_speaks_one_language(language):
    page = render_dashboard(None, language)
    assert f'<html lang="{language}">' in page
    assert "{{" not in page and "@@" not in page
    assert f"<title>{labels.PAGE['page.title'][language]}</title>" in page
    other = next(lang for lang in Language if lang != language)
    assert f'href="?lang={other}"' in page  # the way to the other language


def test_the_language_asked_for_then_the_setting_then_the_browser_then_dutch():
    nl, en = Language.NL, Language.EN
    assert labels.choose(None, None, None) == nl
    assert labels.choose(None, None, "fr-FR,fr;q=0.9") == nl
    assert labels.choose(None, None, "en-US,en;q=0.9") == en
    assert labels.choose(None, None, "fr,en;q=0.4,nl;q=0.6") == nl
    assert labels.choose(None, None, "nl;q=0, en;q=0.1") == en
    assert labels.choose(None, None, "EN-gb") == en
    assert labels.choose(None, en, "nl-NL") == en
    assert labels.choose(None, nl, "en-US") == nl
    assert labels.choose(en, nl, "nl-NL") == en
    assert labels.choose(nl, en, "en") == nl
    assert labels.preferred("en;q=oops, nl") == nl


def test_numbers_are_written_the_dutch_way_in_dutch():
    assert labels.NUMBERS[Language.NL]["decimal"] == ","
    assert labels.NUMBERS[Language.NL]["thousands"] == "."
    assert labels.NUMBERS[Language.NL]["euro"].format(n="39.180") == "€ 39.180"
    assert labels.NUMBERS[Language.EN]["euro"].format(n="39,180") == "€39,180"
