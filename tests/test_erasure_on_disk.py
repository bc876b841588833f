"""After an erasure or an opt-out returns, nothing of the person is readable in the raw files.

The raw bytes of every file of the data folder (the SQLite catalog and its WAL, the FAISS files, uploads,
the audit folder) and, on PostgreSQL, of the schema's relation files are searched for the person's label and
for their embeddings, as someone with a copy of the disk would. The same search before the erasure finds
them, so the test can fail. The data folder is private to the account that runs facesearch (0700 / 0600).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as Image_
from sqlalchemy import create_engine, select, text

from facesearch.catalog.schema import Face, Image, ImageFile, Subject
from facesearch.engine import FaceSearch
from tests.test_api_support import catalog_url, settings, write_photos

LABEL = "Zyxwv_Qutsrp"  # a name found nowhere else, so that any byte sequence of it in a file is a leak


def person_photos(root: Path) -> Path:
    """Real photos (the astronaut three ways) in a folder named after the person, and a stranger's folder."""
    photos = write_photos(root)
    (photos / "Eileen_Collins").rename(photos / LABEL)
    return photos


def postgres_files(url: str) -> list[Path]:
    """The relation files (tables, indexes, TOAST) of the catalog's schema on the local PostgreSQL server."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text("CHECKPOINT"))  # dirty pages reach the files before they are read
            data = Path(connection.execute(text("SELECT current_setting('data_directory')")).scalar_one())
            relations = connection.execute(
                text(
                    "SELECT pg_relation_filepath(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = current_schema() AND pg_relation_filepath(c.oid) IS NOT NULL"
                )
            ).scalars()
            found = []
            for relative in relations:
                base = data / relative
                # The relation's own segments and forks (1234, 1234.1, 1234_fsm...), not 12345: another relation.
                own = re.compile(re.escape(base.name) + r"(\.\d+|_fsm|_vm|_init)?")
                found.extend(p for p in base.parent.glob(base.name + "*") if p.is_file() and own.fullmatch(p.name))
            return found
    finally:
        engine.dispose()


def catalog_files(url: str) -> list[Path]:
    """The files that hold the catalog: an SQLite file with its WAL, or the PostgreSQL schema's relations."""
    if url.startswith("sqlite:///"):
        database = Path(url.removeprefix("sqlite:///"))
        return [p for p in (database, Path(f"{database}-wal"), Path(f"{database}-shm")) if p.exists()]
    return postgres_files(url)


def files_under(home: Path) -> Iterator[Path]:
    for folder, _dirs, names in os.walk(home):
        for name in names:
            yield Path(folder) / name


def leaks(files: list[Path], needles: dict[str, bytes]) -> list[str]:
    """Which needles occur in which files (as raw bytes)."""
    found = []
    for path in files:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        found.extend(f"{what} in {path}" for what, needle in needles.items() if needle in data)
    return found


def embeddings_of(fs: FaceSearch, label: str) -> list[bytes]:
    with fs.catalog.session() as session:
        return list(
            session.scalars(
                select(Face.embedding).join(Subject, Subject.id == Face.subject_id).where(Subject.label == label)
            )
        )


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_an_erased_subject_leaves_no_label_nor_embedding_on_disk(kind: str, tmp_path: Path) -> None:
    photos = person_photos(tmp_path / "photos")
    with catalog_url(kind, tmp_path) as url:
        home = tmp_path / "home"
        with FaceSearch(settings(home, url)) as fs:
            fs.index([photos], collection="own", subject_from_folder=True, workers=1)
            # A copy facesearch keeps itself (as an upload would), in a folder named after the person.
            managed = fs.uploads_dir / "kept" / "batch1" / LABEL
            managed.mkdir(parents=True)
            shutil.copy(photos / LABEL / "portrait.jpg", managed / "portrait.jpg")
            shutil.copy(photos / "other" / "coffee.jpg", managed / "coffee.jpg")
            fs.index([fs.uploads_dir / "kept"], collection="kept", subject_from_folder=True, workers=1)
            vectors = embeddings_of(fs, LABEL)
            assert len(vectors) == 4
            needles = {"label": LABEL.encode(), **{f"embedding {i}": v[:64] for i, v in enumerate(vectors)}}
            files = [*files_under(home), *catalog_files(url)]
            before = leaks(files, needles)
            assert any("label" in leak for leak in before) and any("embedding" in leak for leak in before)

            report = fs.erasure.erase(fs.operator, "subject", [LABEL])
            assert (report.faces, report.subjects) == (4, 1)

            files = [*files_under(home), *catalog_files(url)]
            assert leaks(files, needles) == []
            assert not any(LABEL in str(path) for path in files_under(home))
            with fs.catalog.session() as session:
                kept_paths = [*session.scalars(select(Image.path)), *session.scalars(select(ImageFile.path))]
            assert kept_paths and not any(LABEL in path for path in kept_paths)
            # The photos themselves are kept (face-less), so indexing the folder again brings no face back.
            again = fs.index([photos], collection="own", subject_from_folder=True, workers=1)
            assert again.faces == 0 and embeddings_of(fs, LABEL) == []


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_an_opt_out_leaves_nothing_of_the_person_readable(kind: str, tmp_path: Path) -> None:
    photos = person_photos(tmp_path / "photos")
    home = tmp_path / "home"
    with catalog_url(kind, tmp_path) as url, FaceSearch(settings(home, url)) as fs:
        fs.index([photos], collection="own", subject_from_folder=True, workers=1)
        vectors = embeddings_of(fs, LABEL)
        faces = fs.search(photos / LABEL / "crop.png", top_k=10).faces[0].candidates
        ids = [c.face_id for c in faces if c.subject == LABEL]
        assert len(ids) == 3
        # The request's photo is not one of the stored ones: its embedding (kept to enforce the opt-out) is
        # then none of theirs.
        request_photo = tmp_path / "request.jpg"
        Image_.open(photos / LABEL / "portrait.jpg").resize((400, 400)).save(request_photo, quality=80)
        added = fs.optouts.add_photo(fs.operator, request_photo, note="request 1")
        assert added["faces_erased"] == 3
        needles = {"label": LABEL.encode(), **{f"embedding {i}": v[:64] for i, v in enumerate(vectors)}}
        assert leaks([*files_under(home), *catalog_files(url)], needles) == []
        assert all(fs.catalog.face_details(ids).get(i) is None for i in ids)
        assert LABEL not in {s.label for s in fs.subjects.list(fs.operator)}
        assert not [c for c in fs.search(photos / LABEL / "crop.png", top_k=10).faces[0].candidates if c.face_id in ids]
        for face_id in ids:
            with pytest.raises(LookupError):
                fs.reads.crop(fs.operator, face_id)
        # The same photos indexed again: the person's faces are dropped at ingest (the astronaut photos hold a
        # second, much weaker detection, below the opt-out's strict threshold, which stays).
        fs.index([photos / LABEL], collection="other-source", workers=1)
        optout = fs.optouts.for_pack("dlib@2")
        assert not any(optout.matches(vectors).any() for _, vectors in fs.catalog.iter_embeddings("dlib@2"))
        pairs = fs.crossmatch.run("other-source", "own", min_similarity=-1.0)
        assert not {p.face_id for p in pairs.pairs} & set(ids) and pairs.probe_faces == 2


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_data_folder_is_private_to_the_service_account(kind: str, tmp_path: Path) -> None:
    photos = person_photos(tmp_path / "photos")
    home = tmp_path / "home"
    old = os.umask(0o022)  # a usual umask: the data folder must be private whatever the process had
    try:
        with (
            catalog_url(kind, home if kind == "sqlite" else tmp_path) as url,  # SQLite: the catalog in home
            FaceSearch(settings(home, url)) as fs,
        ):
            fs.index([photos], collection="own", subject_from_folder=True, workers=1)
            fs.search(photos / LABEL / "crop.png")
            fs.erasure.erase(fs.operator, "face", [1])
            assert np.isfinite(fs.searching.forget_threshold())
    finally:
        os.umask(old)
    entries = [home, *home.rglob("*")]
    assert len(entries) > 8
    loose = [f"{p} {oct(p.stat().st_mode & 0o777)}" for p in entries if p.stat().st_mode & 0o077]
    assert loose == []
    assert home.stat().st_mode & 0o777 == 0o700
