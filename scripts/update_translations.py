"""Re-extract the workbench's strings and merge them into each language's catalogue.

    python scripts/update_translations.py          # update web/locale/*/LC_MESSAGES/messages.po
    python scripts/update_translations.py --check  # exit 1 when a catalogue lacks a string of the pages

New strings arrive untranslated (shown in English until a translator fills them in); strings no longer used
are kept as obsolete entries. Entries are sorted by their English text and carry no "#:" locations, so that a
change to a page that moves its lines but not its strings leaves the catalogues as they are. Translators edit
the .po files; the server reads them as they are.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

WEB = Path(__file__).resolve().parents[1] / "src" / "facesearch" / "web"
KEYWORDS = {"_": None, "gettext": None, "N_": None}
METHODS = [("**/templates/**.html", "jinja2"), ("**.py", "python")]
OPTIONS = {"**/templates/**.html": {"extensions": "jinja2.ext.i18n"}}


def extract() -> Catalog:
    """Every string of the workbench, with where it is used."""
    template = Catalog(project="facesearch", msgid_bugs_address="", charset="utf-8")
    for filename, lineno, message, comments, context in extract_from_dir(
        WEB, METHODS, keywords=KEYWORDS, options_map=OPTIONS, comment_tags=("TRANSLATORS:",)
    ):
        template.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return template


def main() -> int:
    """Update (or check) every catalogue under web/locale."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report catalogues that need an update")
    args = parser.parse_args()
    template = extract()
    stale = False
    for path in sorted((WEB / "locale").glob("*/LC_MESSAGES/messages.po")):
        with path.open("rb") as handle:
            catalogue = read_po(handle, locale=path.parts[-3])
        created = catalogue.creation_date
        # No fuzzy guesses: a new string borrowing a similar one's translation ("Clusters" as "Filters") is worse
        # than one left in English until a translator sees it.
        catalogue.update(template, update_header_comment=False, no_fuzzy_matching=True)
        catalogue.creation_date = created  # the catalogue's own date: an update with nothing new changes nothing
        buffer = io.BytesIO()
        # Without "#:" locations: a page's lines moving is no change of its strings.
        write_po(buffer, catalogue, width=0, no_location=True, sort_output=True, ignore_obsolete=False)
        if buffer.getvalue() != path.read_bytes():
            stale = True
            if not args.check:
                path.write_bytes(buffer.getvalue())
                print(f"updated {path}")
    if args.check and stale:
        print("a catalogue is out of date: run python scripts/update_translations.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
