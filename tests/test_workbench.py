"""The workbench over HTTP, with a real engine on a real data folder: sign-in and sessions, who reaches which
page, CSRF and the other browser protections, the search → decision → report flow, uploads with progress,
erasure, the audit page, grants, languages, and HTML errors beside the API's JSON ones."""

from __future__ import annotations

import io
import json
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from facesearch.api.app import create_app
from facesearch.catalog.review import NewReviewItem
from facesearch.config import Settings
from facesearch.engine import FaceSearch
from facesearch.errors import AccessDenied
from facesearch.governance.sessions import _digest
from tests.conftest import IndexedFolders
from tests.test_api_support import probe_bytes
from tests.workbench_support import ROLES, Browser, add_users, browser, csrf_of, password_of

PURPOSE = "humanitarian"


@dataclass
class Workbench:
    """A served workbench: the app (lifespan running), its engine and the photos it indexed."""

    app: FastAPI
    engine: FaceSearch
    photos: Path
    home: Path


def open_workbench(home: Path, photos: Path, **overrides: object) -> Iterator[Workbench]:
    settings = Settings.load(home, pack="dlib", catalog_url=f"sqlite:///{home / 'catalog.sqlite3'}", workers=1)
    engine = FaceSearch(settings.with_changes(**overrides) if overrides else settings)
    app = create_app(engine.settings, engine=engine, schedule=False)
    with TestClient(app):
        yield Workbench(app, engine, photos, home)


@pytest.fixture()
def workbench(tmp_path: Path, indexed_folders: IndexedFolders) -> Iterator[Workbench]:
    """The demo photos indexed (Eileen_Collins enrolled), one user per role with a password."""
    home, photos = indexed_folders.copy(tmp_path / "home")
    settings = Settings.load(home, pack="dlib", catalog_url=f"sqlite:///{home / 'catalog.sqlite3'}", workers=1)
    with FaceSearch(settings) as engine:
        add_users(engine)
    yield from open_workbench(home, photos, failed_auth_per_minute=5)


def search(user: Browser, case: str = "CASE-1", probe: bytes | None = None) -> str:
    """Search the astronaut probe under ``case`` from the search page; returns the results page."""
    answer = user.post(
        "/search",
        {"new_case": case, "purpose": PURPOSE},
        files={"image": ("probe.png", probe or probe_bytes(), "image/png")},
        token_from="/search",
    )
    assert answer.status_code == 200, answer.text
    return answer.text


# Signing in ----------------------------------------------------------------------------------------------------


def test_sign_in_starts_a_new_http_only_strict_session_and_never_adopts_one_it_was_given(workbench: Workbench) -> None:
    user = browser(workbench.app)
    refused = user.sign_in("investigator", "not the password")
    assert refused.status_code == 401 and "not right" in refused.text
    assert "facesearch_session" not in user.client.cookies
    # Session fixation: a token planted before signing in is neither kept nor made valid.
    answer = user.client.post(
        "/login",
        data={"username": "investigator", "password": password_of("investigator")},
        headers={"Cookie": "facesearch_session=planted-token-from-an-attacker"},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    token = user.client.cookies["facesearch_session"]
    assert token != "planted-token-from-an-attacker" and len(token) >= 40
    assert workbench.engine.sessions.resolve("planted-token-from-an-attacker") is None
    assert user.get("/").headers["location"] == "/search"  # each role starts where its work is
    # Signing in again, in the same browser, ends the first session.
    assert user.sign_in("investigator").status_code == 303
    assert workbench.engine.sessions.resolve(token) is None
    # Only the token's hash is stored.
    stored = sqlite3.connect(workbench.home / "catalog.sqlite3").execute("SELECT id FROM web_sessions").fetchall()
    assert all(row[0] != user.client.cookies["facesearch_session"] for row in stored)
    actions = [r["action"] for r in workbench.engine.audit.records(limit=1000)]
    assert actions.count("sign_in") == 2 and actions.count("sign_out") == 1


def test_a_session_ends_on_sign_out_when_idle_past_its_end_and_when_the_password_changes(workbench: Workbench) -> None:
    user = browser(workbench.app, "investigator")
    assert user.get("/search").status_code == 200
    assert user.post("/logout", {}, token_from="/search").status_code == 303
    assert user.get("/search").headers["location"] == "/login?next=/search"

    store = workbench.engine.catalog.sessions
    for age in (timedelta(minutes=31), None):
        user = browser(workbench.app, "investigator")
        digest = _digest(user.client.cookies["facesearch_session"])
        if age is not None:  # idle for longer than session_idle_minutes (30)
            store.touch(digest, datetime.now(UTC) - age)
        else:  # past its end (session_max_hours), however busy
            with workbench.engine.catalog.transaction() as tx:
                store.remove(tx, digest)
                store.add(tx, digest, 2, "csrf", datetime.now(UTC), datetime.now(UTC) - timedelta(seconds=1))
        assert user.get("/search").status_code == 303

    user = browser(workbench.app, "investigator")
    workbench.engine.accounts.set_password(workbench.engine.operator, "investigator", "a-brand-new-password")
    assert user.get("/search").status_code == 303
    workbench.engine.accounts.revoke_user(workbench.engine.operator, "reviewer")
    assert browser(workbench.app).sign_in("reviewer").status_code == 401


def test_failed_sign_ins_are_limited_per_user_name_before_any_hash(workbench: Workbench) -> None:
    attacker = browser(workbench.app)
    for _ in range(5):  # failed_auth_per_minute=5 in this workbench
        assert attacker.sign_in("admin", "guess-guess-guess").status_code == 401
    assert attacker.sign_in("admin", "guess-guess-guess").status_code == 429
    # The right password is refused too while the name's budget is spent, from anywhere: no guessing through.
    assert browser(workbench.app).sign_in("admin").status_code == 429
    assert browser(workbench.app).sign_in("auditor").status_code == 429  # same address, budget spent
    assert not any(r["action"] == "sign_in" for r in workbench.engine.audit.records(actor="admin", limit=100))


# Who reaches which page ----------------------------------------------------------------------------------------

PAGES = {
    "/search": {"investigator"},
    "/verify": {"investigator"},
    "/provenance": {"investigator"},
    "/cases": {"investigator", "reviewer", "admin"},
    "/collections": {"admin"},
    "/people": {"admin", "investigator"},
    "/clusters": {"admin"},
    "/forget": {"admin"},
    "/audit": {"auditor"},
    "/accounts": {"admin"},
}


def test_every_page_is_reachable_only_by_the_roles_that_may_use_it(workbench: Workbench) -> None:
    anonymous = browser(workbench.app)
    for path in PAGES:
        answer = anonymous.get(path)
        assert answer.status_code == 303 and answer.headers["location"] == f"/login?next={path}", path
    for role in ROLES:
        user = browser(workbench.app, role)
        home = user.get("/")
        assert home.status_code == 303
        for path, allowed in PAGES.items():
            answer = user.get(path)
            expected = 200 if role in allowed else 403
            assert answer.status_code == expected, f"{role} {path}: {answer.status_code}"
            assert answer.headers["content-type"].startswith("text/html")
            links = set(re.findall(r'<li><a href="(/[a-z]+)"', answer.text))
            assert links == {p for p, a in PAGES.items() if role in a}, f"{role} sees links {links}"


def test_every_page_carries_a_strict_csp_and_cannot_be_framed(workbench: Workbench) -> None:
    user = browser(workbench.app, "investigator")
    for path in ("/login", "/search", "/cases", "/no-such-page"):
        answer = user.get(path)
        policy = answer.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["cache-control"] == "no-store"
        assert "<script>" not in answer.text and " style=" not in answer.text and " on" + "click=" not in answer.text
    static = user.get("/static/workbench.js")
    assert static.status_code == 200 and "javascript" in static.headers["content-type"]


def test_forms_are_refused_without_the_session_token_or_from_another_site(workbench: Workbench) -> None:
    user = browser(workbench.app, "investigator")
    token = user.token("/cases")
    without = user.client.post("/cases", data={"case_id": "C-1"}, follow_redirects=False)
    assert without.status_code == 403
    foreign = browser(workbench.app, "admin").token("/cases")  # another session's token
    assert (
        user.client.post("/cases", data={"case_id": "C-1", "csrf": foreign}, follow_redirects=False).status_code == 403
    )
    cross_site = user.client.post(
        "/cases",
        data={"case_id": "C-1", "csrf": token},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert cross_site.status_code == 403
    assert workbench.engine.cases.list(workbench.engine.operator) == []
    done = user.client.post(
        "/cases",
        data={"case_id": "C-1", "csrf": token},
        headers={"Origin": "http://testserver"},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == "/cases/C-1"


# The work ------------------------------------------------------------------------------------------------------


def test_the_pages_script_gets_the_results_alone_and_shows_the_probe_from_the_users_file(workbench: Workbench) -> None:
    """The script asks for the results only; when it says the browser can show the probe itself, no preview is
    encoded and sent back (the image is left for the script to fill), while the non-script page keeps it."""
    investigator = browser(workbench.app, "investigator")
    token = investigator.token("/search")

    def results(**headers: str) -> str:
        answer = investigator.client.post(
            "/search",
            data={"csrf": token, "new_case": "CASE-9", "purpose": PURPOSE},
            files={"image": ("probe.png", probe_bytes(), "image/png")},
            headers={"X-Workbench-Fragment": "results", **headers},
            follow_redirects=False,
        )
        assert answer.status_code == 200, answer.text
        assert "blob:" in answer.headers["content-security-policy"]
        return answer.text

    sent_back, shown_locally = results(), results(**{"X-Workbench-Preview": "local"})
    assert "<form" not in sent_back and '<section class="results"' in sent_back
    preview = r'<img src="data:image/jpeg;base64,[^"]+" alt="The probe photo'
    assert re.search(preview, sent_back) and not re.search(preview, shown_locally)
    assert '<img data-local-preview alt="The probe photo' in shown_locally
    assert len(shown_locally) < len(sent_back)
    assert re.search(preview, search(investigator, "CASE-10"))  # the whole page, as without the script


def test_search_shows_every_face_boxed_and_each_candidate_as_a_lead_with_its_meaning(workbench: Workbench) -> None:
    investigator = browser(workbench.app, "investigator")
    page = search(investigator)
    assert "<svg" in page and "<rect" in page  # the probe with its face boxed
    candidates = re.findall(r'<li class="candidate">', page)
    assert len(candidates) >= 3  # the astronaut three ways (and every other face above the threshold)
    assert page.count('src="data:image/jpeg;base64,') >= 5  # probe preview, probe crop, the candidates' crops
    assert re.search(r'alt="Candidate 1: face \d+ in demo"', page)
    assert "galleries this size would score this high" in page
    assert "never an identification" in page
    record = workbench.engine.audit.records(action="search", limit=10)[-1]
    assert record["actor"] == "investigator" and record["purpose"] == PURPOSE and record["case_id"] == "CASE-1"
    # The largest face's crops come with the results, named by the search's own record (one record for what it
    # showed); another face's are read, each an audited read, when that face is chosen.
    first_face = [face_id for face_id, _ in record["details"]["results"][0]]
    assert record["details"]["crops_shown"] == sorted(first_face)
    assert workbench.engine.audit.records(action="face_crops", limit=10) == []
    later = re.findall(r'src="(/crops/\d+\?case=CASE-1)"', page)
    assert len(later) == sum(len(face) for face in record["details"]["results"][1:])
    if later:
        crop = investigator.get(later[0])
        assert crop.status_code == 200 and crop.headers["content-type"] == "image/jpeg"
        assert workbench.engine.audit.records(action="face_crop", limit=10)[-1]["actor"] == "investigator"
        assert browser(workbench.app, "auditor").get(later[0]).status_code == 403
    # Nothing is searched without a case and a purpose.
    refused = investigator.post(
        "/search", {"purpose": PURPOSE}, files={"image": ("p.png", probe_bytes(), "image/png")}, token_from="/search"
    )
    assert refused.status_code == 422 and "case" in refused.text
    # A picture that is not one is refused with a reason, on the form.
    pdf = investigator.post(
        "/search",
        {"new_case": "CASE-1", "purpose": PURPOSE},
        files={"image": ("p.jpg", b"%PDF-1.4\n%%EOF\n", "image/jpeg")},
        token_from="/search",
    )
    assert pdf.status_code in (415, 422) and 'role="alert"' in pdf.text


def test_a_source_address_is_a_link_only_when_it_is_a_web_address(workbench: Workbench, tmp_path: Path) -> None:
    photo = tmp_path / "hostile" / "portrait.jpg"
    photo.parent.mkdir()
    photo.write_bytes((workbench.photos / "Eileen_Collins" / "portrait.jpg").read_bytes())
    photo.with_name("other.png").write_bytes(probe_bytes())
    workbench.engine.index([photo], collection="hostile", source_url="javascript:alert(document.cookie)", workers=1)
    workbench.engine.index(
        [photo.with_name("other.png")], collection="hostile", source_url="https://example.org/a?b=1", workers=1
    )
    page = search(browser(workbench.app, "investigator"))
    assert "javascript:alert" in page  # shown, as text
    assert 'href="javascript:' not in page
    assert 'href="https://example.org/a?b=1"' in page


def test_the_pages_script_gets_the_results_alone_and_the_same_rules_apply(workbench: Workbench) -> None:
    investigator = browser(workbench.app, "investigator")
    token = investigator.token("/search")
    answer = investigator.client.post(
        "/search",
        data={"csrf": token, "new_case": "CASE-F", "purpose": PURPOSE},
        files={"image": ("probe.png", probe_bytes(), "image/png")},
        headers={"X-Workbench-Fragment": "results"},
    )
    assert answer.status_code == 200 and "<html" not in answer.text and 'id="search-form"' not in answer.text
    assert 'class="face-result"' in answer.text and "data:image/jpeg;base64," in answer.text
    refused = investigator.client.post(
        "/search",
        data={"new_case": "CASE-F", "purpose": PURPOSE},
        files={"image": ("probe.png", probe_bytes(), "image/png")},
        headers={"X-Workbench-Fragment": "results"},
    )
    assert refused.status_code == 403  # no CSRF token: refused whatever asks for it
    bad = investigator.client.post(
        "/search",
        data={"csrf": token, "purpose": PURPOSE},
        files={"image": ("probe.png", probe_bytes(), "image/png")},
        headers={"X-Workbench-Fragment": "results"},
    )
    assert bad.status_code == 422 and 'role="alert"' in bad.text and "<html" not in bad.text


def test_a_reviewer_decides_on_a_case_and_its_report_carries_crops_scores_decisions_and_audit_references(
    workbench: Workbench,
) -> None:
    search(browser(workbench.app, "investigator"))
    workbench.engine.cases.add_member(workbench.engine.operator, "CASE-1", "reviewer")
    reviewer = browser(workbench.app, "reviewer")
    page = reviewer.get("/cases/CASE-1").text
    face_id = int(re.findall(r'name="face_id" value="(\d+)"', page)[0])
    decided = reviewer.post(
        "/cases/CASE-1/decisions", {"face_id": face_id, "decision": "match", "note": "same mole"}, token_from="/cases"
    )
    assert decided.status_code == 303
    page = reviewer.get("/cases/CASE-1").text
    assert "same mole" in page and "by reviewer" in page
    report = reviewer.get("/cases/CASE-1/report.html").text
    decision = workbench.engine.cases.get(workbench.engine.operator, "CASE-1")["decisions"][0]
    assert f"audit record {decision['audit_seq']}" in report and "same mole" in report
    assert "data:image/jpeg;base64," in report and "galleries this size" in report
    pdf = reviewer.get("/cases/CASE-1/report.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF") and len(pdf.content) > 5000
    assert pdf.headers["content-disposition"] == 'attachment; filename="case-CASE-1.pdf"'
    # A reviewer who is not on the case sees nothing of it.
    workbench.engine.accounts.add_user(workbench.engine.operator, "reviewer2", "reviewer")
    workbench.engine.accounts.set_password(workbench.engine.operator, "reviewer2", password_of("reviewer2"))
    other = browser(workbench.app, "reviewer2")
    assert other.get("/cases/CASE-1").status_code == 404
    assert other.get(f"/photo/{face_id}?case=CASE-1").status_code == 404
    assert "CASE-1" not in other.get("/cases").text


def test_four_eyes_keeps_whoever_ran_the_search_from_confirming_its_match(workbench: Workbench) -> None:
    engine = workbench.engine
    result = engine.search(workbench.photos / "Eileen_Collins" / "portrait.jpg", purpose=PURPOSE, case_id="C-4")
    face_id = result.faces[0].candidates[0].face_id
    with pytest.raises(AccessDenied) as refused:
        engine.cases.decide(engine.operator, "C-4", face_id, "match")
    assert refused.value.code == "four_eyes"
    engine.cases.decide(engine.operator, "C-4", face_id, "no_match")  # only a match needs a second person
    engine.cases.add_member(engine.operator, "C-4", "reviewer")
    reviewer = browser(workbench.app, "reviewer")
    assert (
        reviewer.post(
            "/cases/C-4/decisions", {"face_id": face_id, "decision": "match"}, token_from="/cases"
        ).status_code
        == 303
    )


def test_four_eyes_can_be_switched_off(tmp_path: Path, indexed_folders: IndexedFolders) -> None:
    home, photos = indexed_folders.copy(tmp_path / "home")
    for bench in open_workbench(home, photos, four_eyes=False):
        engine = bench.engine
        result = engine.search(photos / "Eileen_Collins" / "portrait.jpg", purpose=PURPOSE, case_id="C-5")
        face_id = result.faces[0].candidates[0].face_id
        assert engine.cases.decide(engine.operator, "C-5", face_id, "match")["decision"] == "match"


def test_the_workbench_never_shows_a_face_outside_the_users_grants(
    tmp_path: Path, indexed_folders: IndexedFolders
) -> None:
    home, photos = indexed_folders.copy(tmp_path / "home", ("Eileen_Collins", "mine", False), ("", "theirs", True))
    settings = Settings.load(home, pack="dlib", catalog_url=f"sqlite:///{home / 'catalog.sqlite3'}", workers=1)
    with FaceSearch(settings) as engine:
        add_users(engine, limited={"investigator": ["mine"]})
    for bench in open_workbench(home, photos):
        page = search(browser(bench.app, "investigator"))
        assert "in mine" in page and "in theirs" not in page
        theirs = [
            c.face_id
            for c in bench.engine.search(probe_bytes(), purpose=PURPOSE, case_id="X").faces[0].candidates
            if c.collection == "theirs"
        ]
        assert theirs
        investigator = browser(bench.app, "investigator")
        assert investigator.get(f"/photo/{theirs[0]}?case=CASE-1").status_code == 404
        assert investigator.get(f"/photo/{theirs[0]}").status_code == 404
        assert "theirs" not in investigator.get("/search").text  # not even as a filter


def test_verify_says_what_its_decision_means_at_the_chosen_rate(workbench: Workbench) -> None:
    investigator = browser(workbench.app, "investigator")
    portrait = (workbench.photos / "Eileen_Collins" / "portrait.jpg").read_bytes()
    answer = investigator.post(
        "/verify",
        {"new_case": "V-1", "purpose": PURPOSE, "fmr": "0.0001"},
        files={"image_a": ("a.png", probe_bytes(), "image/png"), "image_b": ("b.jpg", portrait, "image/jpeg")},
        token_from="/verify",
    )
    assert answer.status_code == 200
    assert "Likely the same person" in answer.text and "1 in 10,000" in answer.text
    coffee = (workbench.photos / "other" / "coffee.jpg").read_bytes()
    no_face = investigator.post(
        "/verify",
        {"new_case": "V-1", "purpose": PURPOSE},
        files={"image_a": ("a.png", probe_bytes(), "image/png"), "image_b": ("b.jpg", coffee, "image/jpeg")},
        token_from="/verify",
    )
    assert no_face.status_code == 422 and "face" in no_face.text


def test_provenance_shows_the_copies_of_a_picture_on_a_timeline(workbench: Workbench) -> None:
    import io

    from PIL import Image

    investigator = browser(workbench.app, "investigator")
    portrait = Image.open(workbench.photos / "Eileen_Collins" / "portrait.jpg").convert("RGB")
    framed = Image.new("RGB", (portrait.width + 80, portrait.height + 80), (255, 255, 255))
    framed.paste(portrait, (40, 40))
    repost = io.BytesIO()
    framed.save(repost, "JPEG", quality=60)
    answer = investigator.post(
        "/provenance",
        {"new_case": "P-1", "purpose": PURPOSE},
        files={"image": ("repost.jpg", repost.getvalue(), "image/jpeg")},
        token_from="/provenance",
    )
    assert answer.status_code == 200, answer.text[:500]
    # The folder holds the astronaut's portrait, a crop of it and a mirror image of it: three copies.
    assert "3 stored copies, earliest first" in answer.text
    assert all(name in answer.text for name in ("portrait.jpg", "crop.png", "mirror.webp"))
    assert "aligned" in answer.text and "mirrored" in answer.text
    assert "Other pictures of the same faces" in answer.text
    assert workbench.engine.audit.records(actor="investigator", limit=100)[-1]["action"] == "provenance"
    coffee = (workbench.photos / "other" / "coffee.jpg").read_bytes()
    nothing = investigator.post(
        "/provenance",
        {"new_case": "P-1", "purpose": PURPOSE},
        files={"image": ("coffee.jpg", coffee, "image/jpeg")},
        token_from="/provenance",
    )
    assert nothing.status_code == 200 and "No copy of this picture" not in nothing.text
    assert "coffee.jpg" in nothing.text  # the stored coffee photo is the same picture


def test_an_upload_is_followed_to_its_end_and_its_skipped_files_are_shown_with_reasons(workbench: Workbench) -> None:
    admin = browser(workbench.app, "admin")
    created = admin.post(
        "/collections", {"name": "arrivals", "legal_basis": "consent of the families"}, token_from="/collections"
    )
    assert created.status_code == 303
    portrait = (workbench.photos / "Eileen_Collins" / "portrait.jpg").read_bytes()
    corrupt = b"\xff\xd8\xff\xe0" + b"not really a jpeg" * 20
    uploaded = admin.post(
        "/collections/arrivals/upload",
        {},
        files=[("files", ("a.jpg", portrait, "image/jpeg")), ("files", ("broken.jpg", corrupt, "image/jpeg"))],
        token_from="/collections",
    )
    assert uploaded.status_code == 303 and uploaded.headers["location"].startswith("/ingest/")
    job = uploaded.headers["location"]
    deadline = time.monotonic() + 120
    while not (progress := admin.get(f"{job}/progress").json())["finished"]:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert progress["status"] == "done" and progress["files_done"] == 2
    page = admin.get(job).text
    assert "broken.jpg" in page and "corrupt" in page
    assert str(workbench.home) not in page and "/uploads/" not in page  # file names, never server paths
    assert "arrivals" in admin.get("/collections").text
    # Without a legal basis no collection is created.
    refused = admin.post("/collections", {"name": "nobasis", "legal_basis": ""}, token_from="/collections")
    assert refused.status_code == 422


def test_forgetting_erases_only_the_confirmed_faces_shown_for_the_photo(workbench: Workbench) -> None:
    admin = browser(workbench.app, "admin")
    review = admin.post(
        "/forget/review", {}, files={"image": ("p.png", probe_bytes(), "image/png")}, token_from="/forget"
    )
    assert review.status_code == 200
    listed = [int(i) for i in re.findall(r'name="face_ids" value="(\d+)"', review.text)]
    assert len(listed) == 3
    fields = dict(re.findall(r'name="(listed|listed_sig)" value="([^"]*)"', review.text))
    forged = admin.post("/forget/erase", {"listed": "1,2,3,999", "listed_sig": fields["listed_sig"], "face_ids": [999]})
    assert forged.status_code == 403
    before = workbench.engine.catalog.stats()["faces"]
    done = admin.post("/forget/erase", {**fields, "face_ids": listed[:2]}, token_from="/forget")
    assert done.status_code == 200 and "Erased 2 faces" in done.text
    assert workbench.engine.catalog.stats()["faces"] == before - 2
    assert workbench.engine.audit.records(action="erase", limit=10)[-1]["actor"] == "admin"


def test_the_audit_page_shows_the_chain_state_filters_and_a_signed_export(workbench: Workbench) -> None:
    search(browser(workbench.app, "investigator"))
    auditor = browser(workbench.app, "auditor")
    page = auditor.get("/audit").text
    assert "Chain intact." in page and "<td>search</td>" in page
    only_sign_ins = auditor.get("/audit?action=sign_in").text
    assert "<td>search</td>" not in only_sign_ins and "<td>sign_in</td>" in only_sign_ins
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert "<td>search</td>" in auditor.get(f"/audit?actor=investigator&since={today}&until={today}").text
    assert "No record matches" in auditor.get("/audit?since=2001-01-01&until=2001-01-02").text
    export = auditor.get("/audit/export")
    lines = export.text.strip().splitlines()
    assert export.status_code == 200 and "signature" in json.loads(lines[-1])
    seq = workbench.engine.audit.records(action="search", limit=1)[0]["seq"]
    with sqlite3.connect(workbench.home / "catalog.sqlite3") as db:
        db.execute("UPDATE audit_log SET actor = 'someone-else' WHERE seq = ?", (seq,))
    page = auditor.get("/audit").text
    assert "Chain broken." in page and f"First bad record: {seq}." in page


def test_accounts_page_adds_users_with_a_password_and_revokes_them(workbench: Workbench) -> None:
    admin = browser(workbench.app, "admin")
    added = admin.post(
        "/accounts",
        {"action": "add", "name": "newcomer", "role": "reviewer", "password": "long-enough-pw"},
        token_from="/accounts",
    )
    assert added.status_code == 303
    assert browser(workbench.app).sign_in("newcomer", "long-enough-pw").status_code == 303
    short = admin.post(
        "/accounts", {"action": "password", "name": "newcomer", "password": "short"}, token_from="/accounts"
    )
    assert short.status_code == 422 and 'role="alert"' in short.text
    assert admin.post("/accounts", {"action": "revoke", "name": "newcomer"}, token_from="/accounts").status_code == 303
    assert browser(workbench.app).sign_in("newcomer", "long-enough-pw").status_code == 401


def test_people_are_renamed_split_and_enrolled_by_administrators(workbench: Workbench) -> None:
    admin = browser(workbench.app, "admin")
    subject_id = re.findall(r'href="/people/(\d+)"', admin.get("/people").text)[0]
    page = admin.get(f"/people/{subject_id}").text
    faces = re.findall(r'name="face_ids" value="(\d+)"', page)
    assert len(faces) == 3
    split = admin.post(f"/people/{subject_id}", {"action": "split", "face_ids": faces[:1], "label": "Someone Else"})
    assert split.status_code == 303
    assert {s.label: s.faces for s in workbench.engine.subjects.list(workbench.engine.operator)} == {
        "Eileen_Collins": 2,
        "Someone Else": 1,
    }
    renamed = admin.post(f"/people/{subject_id}", {"action": "rename", "label": "Eileen Collins"})
    assert renamed.status_code == 303
    assert "Eileen Collins" in admin.get("/people").text
    buffer = io.BytesIO()
    from PIL import Image

    Image.open(io.BytesIO(probe_bytes())).rotate(3).save(buffer, "PNG")
    enrolled = admin.post(
        "/people",
        {"label": "New Person", "collection": "demo"},
        files={"image": ("n.png", buffer.getvalue(), "image/png")},
    )
    assert enrolled.status_code == 303, enrolled.text
    assert browser(workbench.app, "investigator").get("/people").status_code == 200
    assert (
        browser(workbench.app, "investigator")
        .client.post(
            f"/people/{subject_id}", data={"action": "rename", "label": "x", "csrf": "x"}, follow_redirects=False
        )
        .status_code
        == 403
    )


# Languages and errors ------------------------------------------------------------------------------------------


def test_pages_are_served_in_ukrainian_when_asked_and_remember_it(workbench: Workbench) -> None:
    user = browser(workbench.app, "investigator")
    page = user.get("/search?lang=uk")
    assert page.status_code == 200 and '<html lang="uk">' in page.text and "Пошук за фото" in page.text
    assert "Пошук за фото" in user.get("/search").text  # remembered in a cookie
    other = browser(workbench.app)
    assert "Увійти" in other.get("/login", headers={"Accept-Language": "uk-UA,uk;q=0.9,en;q=0.5"}).text
    assert "Sign in" in browser(workbench.app).get("/login").text
    results = search(user)
    assert "Результати" in results and "галерей такого розміру" in results


def test_the_ukrainian_catalogue_covers_the_search_verify_and_case_pages_and_is_current() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from update_translations import extract  # type: ignore[import-not-found]

    from facesearch.web.i18n import translations

    uk = translations("uk")
    needed = {"search.html", "verify.html", "case.html", "cases.html", "base.html", "macros.html", "login.html"}
    needed |= {"meaning.py", "pages.py", "i18n.py", "report_pdf.py", "__init__.py"}
    untranslated = [
        message.id
        for message in extract()
        if message.id
        and any(Path(f).name in needed for f, _ in message.locations)
        and uk.gettext(message.id) == message.id
    ]
    assert untranslated == []
    check = subprocess.run(
        [sys.executable, "scripts/update_translations.py", "--check"],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr


def test_errors_are_pages_on_the_workbench_and_json_on_the_api(workbench: Workbench) -> None:
    user = browser(workbench.app, "investigator")
    page = user.get("/no-such-page")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html") and "Not found" in page.text
    api = user.get("/v1/no-such-thing")
    assert api.status_code == 404 and api.json()["code"] == "not_found"
    assert user.get("/cases/NOPE").status_code == 404
    assert user.get("/v1/status").status_code == 401  # the session cookie is not an API key


def test_users_passwd_reads_the_password_from_standard_input(workbench: Workbench) -> None:
    command = [sys.executable, "-m", "facesearch.cli", "--home", str(workbench.home), "--pack", "dlib"]
    url = ["--catalog-url", f"sqlite:///{workbench.home / 'catalog.sqlite3'}"]
    done = subprocess.run(
        [*command, *url, "users", "passwd", "auditor"], input="from-a-script-123\n", text=True, capture_output=True
    )
    assert done.returncode == 0, done.stderr
    assert browser(workbench.app).sign_in("auditor", "from-a-script-123").status_code == 303
    short = subprocess.run(
        [*command, *url, "users", "passwd", "auditor"], input="short\n", text=True, capture_output=True
    )
    assert short.returncode == 1 and "at least" in short.stderr
    unknown = subprocess.run(
        [*command, *url, "users", "passwd", "nobody"], input="long-enough-1\n", text=True, capture_output=True
    )
    assert unknown.returncode == 1 and "unknown user" in unknown.stderr
    assert csrf_of(browser(workbench.app, "admin").get("/accounts").text)


def test_clusters_page_runs_a_clustering_shows_the_faces_and_takes_corrections(workbench: Workbench) -> None:
    """An administrator clusters the faces, sees each cluster with its crops and how sure it is, splits a
    face out, and decides what the queue asks; every read of the faces is audited."""
    admin = browser(workbench.app, "admin")
    ran = admin.post("/clusters", {}, token_from="/clusters")
    assert ran.status_code == 200 and 'role="status"' in ran.text, ran.text[:500]
    clusters = re.findall(r'href="/clusters/(\d+)"', ran.text)
    assert clusters, "the astronaut's photos make a cluster of several faces"
    cluster_id = clusters[0]
    page = admin.get(f"/clusters/{cluster_id}").text
    assert "weakest link" in page and 'class="crop"' in page
    faces = re.findall(r'name="face_ids" value="(\d+)"', page)
    assert len(faces) >= 2
    split = admin.post(f"/clusters/{cluster_id}", {"action": "split", "face_ids": faces[:1]}, token_from="/clusters")
    assert split.status_code == 303
    new_id = split.headers["location"].rsplit("/", 1)[-1]
    assert f'name="face_ids" value="{faces[0]}"' in admin.get(f"/clusters/{new_id}").text
    refused = admin.post(f"/clusters/{new_id}", {"action": "merge", "other": cluster_id}, token_from="/clusters")
    assert refused.status_code == 409 and "marked different people" in refused.text
    named = admin.post(f"/clusters/{cluster_id}", {"action": "name", "label": "Eileen_Collins"}, token_from="/clusters")
    assert named.status_code == 303
    # Without a CSRF token nothing changes.
    forged = admin.client.post(f"/clusters/{cluster_id}", data={"action": "name", "label": "x"}, follow_redirects=False)
    assert forged.status_code == 403
    # A pair confirmed in the queue appears in the printable report, with both faces and who decided.
    pair_faces = faces[:2]
    with workbench.engine.catalog.transaction() as tx:
        key = f"crossmatch_pair:{pair_faces[0]}:{pair_faces[1]}"
        pack = workbench.engine.packs.pack().key
        workbench.engine.catalog.review.add(
            tx, [NewReviewItem(key, "crossmatch_pair", pack, face_a=int(pair_faces[0]), face_b=int(pair_faces[1]))]
        )
    queue = admin.get("/clusters").text
    item_ids = re.findall(r'action="/review/(\d+)"', queue)
    assert item_ids, "the pair waits in the queue"
    decided = admin.post(f"/review/{item_ids[-1]}", {"decision": "same", "note": "same scar"}, token_from="/clusters")
    assert decided.status_code == 303
    report = admin.get("/review/confirmed").text
    assert "same scar" in report and report.count('class="crop"') >= 2 and "admin" in report
    actions = [r["action"] for r in workbench.engine.audit.records(after_seq=0, limit=10_000)]
    expected = {"cluster", "clusters_list", "face_crops", "cluster_read", "cluster_split", "cluster_name"}
    assert expected | {"review_decision", "review_report"} <= set(actions)


def test_an_administrator_limited_to_some_collections_is_not_offered_clusters(workbench: Workbench) -> None:
    """Clusters cross collections: a limited administrator gets no link to them, and 403 on the page."""
    engine = workbench.engine
    engine.accounts.add_user(engine.operator, "admin-demo", "admin", collections=["demo"])
    engine.accounts.set_password(engine.operator, "admin-demo", "a long enough passphrase")
    limited = browser(workbench.app)
    assert limited.sign_in("admin-demo", "a long enough passphrase").status_code == 303
    page = limited.get("/people").text
    assert 'href="/people"' in page and 'href="/clusters"' not in page
    assert limited.get("/clusters").status_code == 403
    assert 'href="/clusters"' in browser(workbench.app, "admin").get("/people").text


def test_candidates_are_shown_from_the_thumbnails_cut_at_ingest_and_erased_with_their_faces(
    workbench: Workbench,
) -> None:
    import base64

    engine = workbench.engine
    faces = engine.catalog.face_ids(engine.packs.pack("dlib").key).tolist()
    kept = engine.catalog.thumbnails(faces)
    assert kept and set(kept) <= set(faces) and all(jpeg.startswith(b"\xff\xd8") for jpeg in kept.values())
    page = search(browser(workbench.app, "investigator"), "THUMB-1")
    shown = {base64.b64decode(data) for data in re.findall(r'src="data:image/jpeg;base64,([^"]+)"', page)}
    assert shown & set(kept.values()), "the page shows the crops cut at ingest"
    engine.erasure.erase(engine.operator, "subject", ["Eileen_Collins"])
    assert set(engine.catalog.thumbnails(faces)) == set(
        engine.catalog.face_ids(engine.packs.pack("dlib").key).tolist()
    ) & set(kept)
