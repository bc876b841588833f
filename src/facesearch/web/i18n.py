"""The workbench's languages: English in the templates and code, other languages from gettext catalogues.

Every string a person reads goes through gettext (``_()`` in templates, :meth:`Language.gettext` in code).
Catalogues are Babel ``.po`` files under ``web/locale/<lang>/LC_MESSAGES/messages.po``, read once when the
server starts (no compile step, so a translator edits one text file). The language of a request is the one it
chose (``?lang=``, remembered in a cookie), else the first of the browser's Accept-Language that has a
catalogue, else the data folder's ``language`` setting.
"""

from __future__ import annotations

import functools
import gettext
from dataclasses import dataclass
from pathlib import Path

from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).parent / "locale"
DEFAULT = "en"
NAMES = {"en": "English", "uk": "Українська"}
"""Languages the workbench is served in, by their own names (for the language switch)."""


def N_(message: str) -> str:
    """Mark ``message`` for translation where it is defined; it is translated where it is shown."""
    return message


LABELS = (
    N_("admin"),
    N_("investigator"),
    N_("reviewer"),
    N_("auditor"),
    N_("queued"),
    N_("running"),
    N_("done"),
    N_("failed"),
    N_("interrupted"),
)
"""Words the pages show from data (roles, job states), marked here so that catalogues carry them."""


class CatalogueTranslations(gettext.NullTranslations):
    """gettext translations from a Babel catalogue: translated, non-fuzzy messages; the rest stays English."""

    def __init__(self, messages: dict[str, str]) -> None:
        super().__init__()
        self.messages = messages

    def gettext(self, message: str) -> str:
        """The translation of ``message``, or ``message`` itself."""
        return self.messages.get(message) or message

    def ngettext(self, msgid1: str, msgid2: str, n: int) -> str:
        """Plural forms are not used by the workbench's strings: singular or plural English, translated."""
        return self.gettext(msgid1 if n == 1 else msgid2)


@functools.cache
def translations(language: str) -> gettext.NullTranslations:
    """The translations of ``language`` (English: none needed)."""
    path = LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
    if language == DEFAULT or not path.is_file():
        return gettext.NullTranslations()
    with path.open("rb") as handle:
        catalogue = read_po(handle, locale=language)
    messages = {
        str(message.id): str(message.string)
        for message in catalogue
        if message.id and isinstance(message.id, str) and message.string and not message.fuzzy
    }
    return CatalogueTranslations(messages)


def available() -> list[str]:
    """Languages with a catalogue, English first."""
    found = sorted(p.name for p in LOCALE_DIR.iterdir() if (p / "LC_MESSAGES" / "messages.po").is_file())
    return [DEFAULT, *(code for code in found if code != DEFAULT)]


def choose(asked: str | None, cookie: str | None, accept_language: str | None, default: str) -> str:
    """The language of a request: asked for, remembered, the browser's first that we have, else the default."""
    have = available()
    for candidate in (asked, cookie):
        if candidate in have:
            return candidate
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip().lower().split("-")[0]
        if code in have:
            return code
    return default if default in have else DEFAULT


@dataclass(frozen=True)
class Language:
    """The language of one request and its gettext."""

    code: str

    @property
    def translations(self) -> gettext.NullTranslations:
        """This language's gettext translations."""
        return translations(self.code)

    def gettext(self, message: str, **values: object) -> str:
        """``message`` in this language, with ``%(name)s`` placeholders filled from ``values``."""
        text = self.translations.gettext(message)
        return text % values if values else text
