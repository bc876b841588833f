"""People (enrolled subjects): their faces; rename, merge, split (move faces out) and enrol from a photo.

Administrators change them; investigators may look (reviewers read only the candidates of their cases, so the
list of everyone enrolled is not theirs: see docs/server.md's access table)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.responses import Response

from facesearch.api.deps import read_upload
from facesearch.web.pages import EXPECTED_ERRORS, Page, error_status, signed_in

router = APIRouter(include_in_schema=False)

READERS = ("subjects.read",)
MANAGERS = ("subjects.manage",)


def _list(current: Page, *, status: int = 200, error: str | None = None, query: str = "") -> Response:
    subjects = current.engine.subjects.list(current.principal, limit=1000)
    if query:
        subjects = [s for s in subjects if query.lower() in s.label.lower()]
    collections = current.engine.collections.names(current.principal)
    return current.render(
        "people.html", status=status, subjects=subjects, error=error, query=query, collections=collections
    )


@router.get("/people")
def people(current: Annotated[Page, Depends(signed_in(*READERS))], q: str = "") -> Response:
    """Enrolled people with their face counts (filter by name)."""
    return _list(current, query=q[:200])


@router.post("/people")
def enrol(
    current: Annotated[Page, Depends(signed_in(*MANAGERS))],
    image: Annotated[UploadFile, File()],
    label: Annotated[str, Form(max_length=200)],
    collection: Annotated[str, Form(max_length=100)],
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Enrol a person from one photo (its largest face, under ``label``)."""
    current.check_form(csrf)
    try:
        data = read_upload(image, current.engine.settings.max_upload_bytes, "image")
        subject = current.engine.intake.enrol(current.principal, collection, label, data, image.filename)
    except EXPECTED_ERRORS as error:
        status, message = error_status(error)
        return _list(current, status=status, error=message)
    return current.redirect(f"/people/{subject.id}")


def _subject_page(current: Page, subject_id: int, *, status: int = 200, error: str | None = None) -> Response:
    principal = current.principal
    subject = current.engine.subjects.get(principal, subject_id)
    faces = current.engine.subjects.faces(principal, subject_id)
    grid = current.engine.reads.grid(principal, [f.face_id for f in faces])
    crops = {details.face_id: crop for details, crop in grid}
    others = [s for s in current.engine.subjects.list(principal, limit=1000) if s.id != subject_id]
    return current.render(
        "person.html",
        status=status,
        subject=subject,
        faces=faces,
        crops=crops,
        others=others,
        error=error,
        may_manage=current.may(*MANAGERS),
    )


@router.get("/people/{subject_id}")
def person(subject_id: int, current: Annotated[Page, Depends(signed_in(*READERS))]) -> Response:
    """One person: their faces, and (administrators) rename, merge and split."""
    return _subject_page(current, subject_id)


@router.post("/people/{subject_id}")
def change(
    subject_id: int,
    current: Annotated[Page, Depends(signed_in(*MANAGERS))],
    action: Annotated[str, Form(max_length=20)],
    csrf: Annotated[str, Form()] = "",
    label: Annotated[str, Form(max_length=200)] = "",
    into: Annotated[int | None, Form()] = None,
    face_ids: Annotated[list[int] | None, Form()] = None,
) -> Response:
    """Rename (``action=rename``), merge into another person (``merge``), or move faces out (``split``)."""
    current.check_form(csrf)
    subjects = current.engine.subjects
    try:
        if action == "rename":
            subject = subjects.rename(current.principal, subject_id, label)
        elif action == "merge" and into is not None:
            subject = subjects.merge(current.principal, subject_id, into)
        elif action == "split" and face_ids:
            subject = subjects.split(current.principal, subject_id, face_ids, label)
        else:
            return _subject_page(
                current, subject_id, status=422, error=current.gettext("Choose what to do, and fill in its fields.")
            )
    except EXPECTED_ERRORS as error:
        status, message = error_status(error)
        if status == 404:
            raise
        return _subject_page(current, subject_id, status=status, error=message)
    return current.redirect(f"/people/{subject.id}")
