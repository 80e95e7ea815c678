"""The `ketenbus` command's words: every sentence in Dutch and English, Dutch unless asked."""

from __future__ import annotations

import pytest

from ketenbus.contracts.values import Language
from ketenbus.devstack import cli_texts
from ketenbus.devstack.cli import main
from ketenbus.devstack.errors import BadSetting
from ketenbus.devstack.language import chosen_language
from ketenbus.kit import wording


@pytest.mark.parametrize("key", sorted(cli_texts.TEXTS))
def test_every_sentence_has_both_languages_with_the_same_blanks(key: str) -> None:
    assert wording.untranslated({key: cli_texts.TEXTS[key]}) == []


def test_dutch_unless_english_is_chosen_by_either_name() -> None:
    assert chosen_language({}) == Language.NL
    assert chosen_language({"KETENBUS_LANGUAGE": " EN"}) == Language.EN
    # The older name, from when only the demo spoke Dutch, still works; the new one wins.
    assert chosen_language({"KETENBUS_DEMO_LANGUAGE": "en"}) == Language.EN
    both = {"KETENBUS_LANGUAGE": "nl", "KETENBUS_DEMO_LANGUAGE": "en"}
    assert chosen_language(both) == Language.NL
    with pytest.raises(BadSetting, match="KETENBUS_LANGUAGE='de': choose nl or en"):
        chosen_language({"KETENBUS_LANGUAGE": "de"})


def test_says_it_in_the_language_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KETENBUS_LANGUAGE", raising=False)
    monkeypatch.delenv("KETENBUS_DEMO_LANGUAGE", raising=False)
    assert cli_texts.say("no_stack", home="/x") == "er draait geen stack in /x"
    assert cli_texts.seconds(12.34) == "12,3"
    monkeypatch.setenv("KETENBUS_LANGUAGE", "en")
    assert cli_texts.say("no_stack", home="/x") == "no stack running in /x"
    assert cli_texts.seconds(12.34) == "12.3"


def test_a_language_it_cannot_speak_stops_the_command_before_it_starts(
    tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KETENBUS_LANGUAGE", "fy")
    assert main(["--home", str(tmp_path / "home"), "down"]) == 1
    assert "ketenbus down: KETENBUS_LANGUAGE='fy': choose nl or en" in capsys.readouterr().err
    assert not (tmp_path / "home").exists()
