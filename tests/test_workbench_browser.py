"""The workbench in a real browser (Debian's Chromium, driven by Playwright) against a real ``facesearch
serve`` on a real data folder (lfw-dev people when ../shared is there): signing in by keyboard, a search →
decision → report flow between two people, an upload followed to its end, an erasure, an auditor seeing a
tampered chain, and axe-core's accessibility rules on every page of every role."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_api_support import server
from tests.workbench_support import ROLES, WorkbenchData, build_data_folder, password_of

CHROMIUM = Path("/usr/bin/chromium")
playwright_api = pytest.importorskip("playwright.sync_api")
if not CHROMIUM.exists():
    pytest.skip("Debian's chromium is not installed (make test installs it)", allow_module_level=True)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, WorkbenchData]]:
    """A real server over a data folder built for these tests; its base URL."""
    data = build_data_folder(tmp_path_factory.mktemp("workbench"))
    with server(data.home, data.catalog_url) as base:
        yield base, data


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser
        browser.close()


def signed_in(chromium: Any, base: str, role: str, *, name: str | None = None) -> Any:
    """A new browser context signed in through the form as ``name`` (default: the user named after ``role``)."""
    context = chromium.new_context(base_url=base, accept_downloads=True)
    page = context.new_page()
    page.goto("/login")
    page.get_by_label("User name").fill(name or role)
    page.get_by_label("Password").fill(password_of(name or role))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    assert "/login" not in page.url, page.content()
    return page


def serious_violations(page: Any) -> list[str]:
    """axe-core's serious and critical violations on the page (its rules from the npm package's release)."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_keyboard_only_sign_in_lands_on_the_roles_page(served: tuple[str, WorkbenchData], chromium: Any) -> None:
    base, _data = served
    context = chromium.new_context(base_url=base)
    page = context.new_page()
    page.goto("/search")
    assert "/login?next=/search" in page.url
    assert page.evaluate("document.activeElement.id") == "username"  # the form is ready to type into
    page.keyboard.type("investigator")
    page.keyboard.press("Tab")
    page.keyboard.type(password_of("investigator"))
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/search")
    assert page.get_by_role("heading", name="Search by photo").is_visible()
    page.keyboard.press("Tab")  # the first stop of every page skips to its content
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "case_id"  # then the form, past the navigation
    cookies = {c["name"]: c for c in context.cookies()}
    assert cookies["facesearch_session"]["httpOnly"] and cookies["facesearch_session"]["sameSite"] == "Strict"
    context.close()


def test_search_decision_and_report_between_an_investigator_and_a_reviewer(
    served: tuple[str, WorkbenchData], chromium: Any
) -> None:
    base, data = served
    page = signed_in(chromium, base, "investigator")
    page.get_by_label("New case reference").fill("REUNITE-7")
    page.get_by_label("Purpose").select_option(index=0)
    page.get_by_label("Probe photo").set_input_files(str(data.probes[0]))
    page.get_by_role("button", name="Search", exact=True).click()
    page.wait_for_selector(".face-result")
    first = page.locator(".face-result").first
    assert first.is_visible()
    cards = first.locator(".candidate")
    assert cards.count() >= 1
    assert "galleries this size" in first.inner_text() or "stranger" in first.inner_text()
    # The best candidate of a known person's probe is that person (a lead, shown with its source).
    assert data.people[0] in cards.first.inner_text() or data.people[0] == "Eileen_Collins"
    crop = cards.first.locator("img.crop")
    assert crop.get_attribute("alt").startswith("Candidate 1") and crop.evaluate("i => i.naturalWidth") > 0
    # The probe is shown from the user's own file (nothing sent back for it), its faces boxed over it.
    assert (page.locator("figure.probe img").get_attribute("src") or "").startswith("blob:")
    page.wait_for_function("document.querySelector('figure.probe img').naturalWidth > 0")
    assert serious_violations(page) == []
    # The investigator brings a reviewer onto the case.
    page.goto("/cases/REUNITE-7")
    page.get_by_label("Add an investigator or reviewer").fill("reviewer")
    page.get_by_role("button", name="Add to the case").click()
    assert "reviewer (reviewer)" in page.locator("#members + ul").inner_text()
    assert page.get_by_role("group", name="Your decision", exact=False).count() == 0  # investigators don't decide
    page.context.close()

    reviewer = signed_in(chromium, base, "reviewer")
    assert reviewer.url.endswith("/cases")
    reviewer.get_by_role("link", name="REUNITE-7").click()
    decision = reviewer.locator("form.decide").first
    decision.get_by_label("Match", exact=True).check()
    decision.get_by_label("Note").fill("same ears and hairline")
    decision.get_by_role("button", name="Record the decision").click()
    reviewer.wait_for_load_state()
    assert "same ears and hairline" in reviewer.locator(".decisions").first.inner_text()
    assert serious_violations(reviewer) == []
    reviewer.get_by_role("link", name="Printable report").click()
    assert "same ears and hairline" in reviewer.content() and "audit record" in reviewer.content()
    reviewer.go_back()
    with reviewer.expect_download() as download:
        reviewer.get_by_role("link", name="Report as PDF").click()
    path = download.value.path()
    assert Path(path).read_bytes().startswith(b"%PDF")
    reviewer.context.close()


def test_an_administrator_uploads_follows_the_job_and_erases_a_person(
    served: tuple[str, WorkbenchData], chromium: Any, tmp_path: Path
) -> None:
    base, data = served
    page = signed_in(chromium, base, "admin")
    assert page.url.endswith("/collections")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0" + b"not a picture" * 30)
    page.get_by_label("Photos or zip archives to add to registry").set_input_files([str(data.probes[-1]), str(broken)])
    page.get_by_role("button", name="Upload and index").click()
    page.wait_for_url("**/ingest/*")
    page.wait_for_selector("text=Images indexed", timeout=60_000)  # the script reloads the page when it is done
    assert "broken.jpg" in page.content()
    assert serious_violations(page) == []

    page.goto("/forget")
    page.get_by_label("A photo of the person to forget").set_input_files(str(data.probes[-1]))
    page.get_by_role("button", name="Find their faces").click()
    page.wait_for_selector("text=Review before erasing")
    boxes = page.locator("input[name=face_ids]")
    assert boxes.count() >= 1
    page.get_by_role("button", name="Erase the ticked faces").click()
    assert "Erased" in page.locator(".notice").inner_text()
    page.context.close()


def test_the_auditor_sees_a_tampered_chain_at_the_top_of_the_log(
    served: tuple[str, WorkbenchData], chromium: Any
) -> None:
    base, data = served
    page = signed_in(chromium, base, "auditor")
    assert page.locator(".chain.ok").is_visible()
    assert serious_violations(page) == []
    with sqlite3.connect(data.home / "catalog.sqlite3") as db:
        seq = db.execute("SELECT min(seq) FROM audit_log WHERE action = 'sign_in'").fetchone()[0]
        db.execute("UPDATE audit_log SET purpose = 'rewritten' WHERE seq = ?", (seq,))
    try:
        page.reload()
        alert = page.get_by_role("alert")
        assert "Chain broken." in alert.inner_text() and f"First bad record: {seq}." in alert.inner_text()
        assert page.locator("tr.bad").count() in (0, 1)
    finally:
        with sqlite3.connect(data.home / "catalog.sqlite3") as db:
            db.execute("UPDATE audit_log SET purpose = NULL WHERE seq = ?", (seq,))
    page.context.close()


PAGES_OF_ROLE = {
    "investigator": ["/search", "/verify", "/cases", "/people"],
    "reviewer": ["/cases"],
    "admin": ["/collections", "/people", "/clusters", "/forget", "/accounts", "/cases"],
    "auditor": ["/audit"],
}


@pytest.mark.parametrize("role", ROLES)
def test_every_page_passes_axe_with_no_serious_violation(
    served: tuple[str, WorkbenchData], chromium: Any, role: str
) -> None:
    base, _data = served
    page = signed_in(chromium, base, role)
    for path in PAGES_OF_ROLE[role]:
        page.goto(path)
        assert serious_violations(page) == [], path
        page.goto(path + "?lang=uk")
        assert serious_violations(page) == [], f"{path} in Ukrainian"
        page.goto(path + "?lang=en")
    page.context.close()


def test_the_api_docs_render_offline_under_their_policy(served: tuple[str, WorkbenchData], chromium: Any) -> None:
    """/docs (Swagger UI from the package, issue 11) draws the operations in a real browser, with no request
    leaving the server and nothing refused by its content security policy."""
    base, _data = served
    context = chromium.new_context(base_url=base)
    page = context.new_page()
    refused: list[str] = []
    outside: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith((base, "data:")) else None)
    page.goto("/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=30_000)
    assert page.locator(".opblock-summary-path").filter(has_text="/v1/search").count() >= 1
    assert refused == [] and outside == []
    context.close()
