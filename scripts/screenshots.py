"""Screenshots of the workbench's main pages for the README and docs/ui.md (`make screenshots`).

Builds a data folder from scikit-image's public-domain astronaut photo (never from ../shared, whose photos
may not be published), serves it with `facesearch serve`, and drives Debian's Chromium through a search, a
decision, the case, the collections, the audit log and the Ukrainian search page, saving JPEGs in docs/ui/.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from playwright.sync_api import Page, sync_playwright  # noqa: E402
from tests.test_api_support import server  # noqa: E402
from tests.workbench_support import build_data_folder, password_of  # noqa: E402

OUT = REPO / "docs" / "ui"
CHROMIUM = "/usr/bin/chromium"


def sign_in(page: Page, name: str) -> None:
    """Sign in through the form."""
    page.goto("/login")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(password_of(name))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def shoot(page: Page, name: str) -> None:
    """Save the whole page as docs/ui/NAME.jpg."""
    path = OUT / f"{name}.jpg"
    page.screenshot(path=str(path), full_page=True, type="jpeg", quality=80)
    print(f"wrote {path.relative_to(REPO)}")


def main() -> None:
    """Serve a demo data folder and photograph its pages."""
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        data = build_data_folder(Path(tmp), lfw=False)
        with server(data.home, data.catalog_url) as base, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            viewport = {"width": 1280, "height": 860}

            page = browser.new_context(base_url=base, viewport=viewport).new_page()
            page.goto("/login")
            shoot(page, "sign-in")
            sign_in(page, "investigator")
            page.get_by_label("New case reference").fill("REUNITE-7")
            page.get_by_label("Probe photo").set_input_files(str(data.probes[0]))
            page.get_by_role("button", name="Search", exact=True).click()
            page.wait_for_selector(".face-result")
            page.locator("#results-title").scroll_into_view_if_needed()
            shoot(page, "search")
            page.goto("/cases/REUNITE-7")
            page.get_by_label("Add an investigator or reviewer").fill("reviewer")
            page.get_by_role("button", name="Add to the case").click()
            page.goto("/search?lang=uk")
            shoot(page, "search-uk")
            page.goto("/search?lang=en")

            reviewer = browser.new_context(base_url=base, viewport=viewport).new_page()
            sign_in(reviewer, "reviewer")
            reviewer.goto("/cases/REUNITE-7")
            form = reviewer.locator("form.decide").first
            form.get_by_label("Match", exact=True).check()
            form.get_by_label("Note").fill("same scar above the left eyebrow")
            form.get_by_role("button", name="Record the decision").click()
            reviewer.wait_for_load_state()
            shoot(reviewer, "case")

            admin = browser.new_context(base_url=base, viewport=viewport).new_page()
            sign_in(admin, "admin")
            shoot(admin, "collections")

            auditor = browser.new_context(base_url=base, viewport=viewport).new_page()
            sign_in(auditor, "auditor")
            shoot(auditor, "audit")
            browser.close()


if __name__ == "__main__":
    main()
