"""Which language the devstack speaks to the people at the terminal: Dutch unless
`KETENBUS_LANGUAGE=en`. One setting for the `ketenbus` command's own messages and the demo's
narration and report; `KETENBUS_DEMO_LANGUAGE`, its older name from when only the demo spoke
Dutch, still works (the new name wins where both are set)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from ketenbus.contracts.values import Language
from ketenbus.devstack.errors import BadSetting
from ketenbus.kit.wording import DEFAULT

SETTING = "KETENBUS_LANGUAGE"
OLDER_SETTING = "KETENBUS_DEMO_LANGUAGE"


def chosen_language(environment: Mapping[str, str] = os.environ) -> Language:
    """`KETENBUS_LANGUAGE` (nl or en), else `KETENBUS_DEMO_LANGUAGE`, else Dutch; anything else
    is refused before work starts rather than halfway, when analytics would refuse it."""
    for setting in (SETTING, OLDER_SETTING):
        asked = environment.get(setting, "").strip().lower()
        if asked:
            break
    else:
        return DEFAULT
    try:
        return Language(asked)
    except ValueError:
        choices = " or ".join(language.value for language in Language)
        raise BadSetting(f"{setting}={asked!r}: choose {choices}") from None
