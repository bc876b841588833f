"""Provenance (issue 14): fingerprints, aligning copies, a picture's own claims (EXIF), the hash index, and
`facesearch provenance` on real photos (copies found by hash and by alignment, same faces, erasure, grants)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

import facesearch
from facesearch.ingest.metadata import read_facts, summarise_manifest_store
from facesearch.vision.fingerprints import MATCH_DISTANCE, fingerprint, hamming, mirrored, trim_borders
from facesearch.vision.near_duplicates import ProbePicture
from tests.conftest import GROUP_PHOTOS, LFW, require_shared


def jpeg(rgb: np.ndarray, quality: int = 90) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def framed(rgb: np.ndarray, border: int, colour: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    return np.asarray(ImageOps.expand(Image.fromarray(rgb), border=border, fill=colour))


def captioned(rgb: np.ndarray) -> np.ndarray:
    picture = Image.fromarray(rgb).copy()
    height = picture.height
    ImageDraw.Draw(picture).rectangle((0, int(height * 0.85), picture.width, height), fill=(0, 0, 0))
    ImageDraw.Draw(picture).text((8, int(height * 0.88)), "BREAKING: seen at the border today", fill=(255, 255, 255))
    return np.asarray(picture)


# Fingerprints and alignment ------------------------------------------------------------------------------------


def test_a_re_encoded_or_resized_copy_keeps_its_hash_and_another_picture_does_not(astronaut: np.ndarray) -> None:
    original = fingerprint(astronaut)
    assert len(original.pdq) == 32 and original.quality >= 50
    assert hamming(original.pdq, fingerprint(jpeg(astronaut, 30)).pdq) <= 10
    smaller = np.asarray(Image.fromarray(astronaut).resize((128, 128)))
    assert hamming(original.pdq, fingerprint(smaller).pdq) <= MATCH_DISTANCE
    assert hamming(original.pdq, fingerprint(mirrored(astronaut)).pdq) > 64  # the index is asked with the mirror
    assert hamming(fingerprint(mirrored(astronaut)).pdq, fingerprint(mirrored(jpeg(astronaut))).pdq) <= 10
    other = np.asarray(Image.fromarray(astronaut).rotate(90))
    assert hamming(original.pdq, fingerprint(other).pdq) > 90


def test_plain_borders_are_trimmed_and_a_picture_without_them_is_kept_whole(astronaut: np.ndarray) -> None:
    trimmed = trim_borders(framed(astronaut, 40))
    assert abs(trimmed.shape[0] - astronaut.shape[0]) <= 4 and abs(trimmed.shape[1] - astronaut.shape[1]) <= 4
    assert hamming(fingerprint(trimmed).pdq, fingerprint(astronaut).pdq) <= MATCH_DISTANCE
    assert trim_borders(astronaut).shape == astronaut.shape
    blank = np.full((100, 100, 3), 200, np.uint8)
    assert trim_borders(blank).shape == blank.shape  # nothing but border: nothing is trimmed


def test_crops_frames_captions_and_mirrors_align_with_their_original(astronaut: np.ndarray) -> None:
    height, width = astronaut.shape[:2]
    probe_of = {
        "crop 15%": astronaut[int(height * 0.05) : int(height * 0.9), int(width * 0.1) : int(width * 0.95)],
        "frame": framed(jpeg(astronaut, 60), 50, (20, 20, 20)),
        "caption": captioned(astronaut),
        "mirror, smaller": np.asarray(Image.fromarray(mirrored(astronaut)).resize((300, 300))),
    }
    for name, probe in probe_of.items():
        alignment = ProbePicture(np.ascontiguousarray(probe)).align(astronaut)
        assert alignment is not None and alignment.same_picture, (name, alignment)
        assert alignment.mirrored == (name == "mirror, smaller")
        assert alignment.distance <= (90 if name == "caption" else MATCH_DISTANCE), (name, alignment)


def test_two_photographs_of_one_person_are_not_the_same_picture() -> None:
    photos = sorted(require_shared(LFW / "Tony_Blair").glob("*.jpg"))[:12]
    pictures = [np.asarray(Image.open(p).convert("RGB")) for p in photos]
    probe = ProbePicture(pictures[0])
    for other in pictures[1:]:
        alignment = probe.align(other)
        assert alignment is None or not alignment.same_picture, alignment


# A picture's own claims ---------------------------------------------------------------------------------------


def exif_jpeg(rgb: np.ndarray) -> bytes:
    picture = Image.fromarray(rgb)
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Canon", "Canon EOS 5D"
    exif.get_ifd(0x8769)[0x9003] = "2024:03:01 14:30:00"
    exif.get_ifd(0x8769)[0x9011] = "+02:00"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", (50.0, 27.0, 0.0), "E", (30.0, 31.0, 12.0)
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", exif=exif)
    return buffer.getvalue()


def test_exif_capture_date_camera_and_position_are_read(astronaut: np.ndarray) -> None:
    facts = read_facts(exif_jpeg(astronaut), "jpeg")
    assert facts.captured_at is not None and facts.captured_at.isoformat() == "2024-03-01T12:30:00+00:00"
    assert facts.camera == "Canon EOS 5D"
    assert facts.latitude == pytest.approx(50.45) and facts.longitude == pytest.approx(30.52)
    assert facts.content_credentials is None
    plain = io.BytesIO()
    Image.fromarray(astronaut).save(plain, "PNG")
    assert read_facts(plain.getvalue(), "png").captured_at is None
    assert read_facts(b"\xff\xd8\xff\xe1garbage", "jpeg").camera is None  # broken EXIF: nothing, no error


def test_a_manifest_that_fails_validation_is_reported_as_such() -> None:
    store = {
        "active_manifest": "urn:one",
        "manifests": {
            "urn:one": {
                "claim_generator": "EditorApp/2.0",
                "signature_info": {"issuer": "Example Signer", "time": "2024-03-01T12:00:00Z"},
                "assertions": [
                    {
                        "label": "c2pa.actions",
                        "data": {"actions": [{"action": "c2pa.created"}, {"action": "c2pa.cropped"}]},
                    }
                ],
            }
        },
        "validation_status": [{"code": "assertion.dataHash.mismatch", "explanation": "the picture was changed"}],
    }
    summary = summarise_manifest_store(store)
    assert summary is not None
    assert summary["validation"] == "invalid" and summary["errors"][0].startswith("assertion.dataHash.mismatch")
    assert summary["signer"] == "Example Signer" and summary["actions"] == ["c2pa.created", "c2pa.cropped"]
    store["validation_status"] = []
    assert summarise_manifest_store(store)["validation"] == "valid"  # type: ignore[index]
    assert summarise_manifest_store({"manifests": {}}) is None


# Lookups on real photos -----------------------------------------------------------------------------------------


@pytest.fixture()
def newsroom(tmp_path: Path) -> tuple[Path, Path, list[Path]]:
    """A home with 40 lfw-dev photos and a group photo (collection "archive", the group photo with EXIF), and a
    folder of edited copies to trace."""
    lfw = require_shared(LFW)
    group = require_shared(GROUP_PHOTOS) / "2008_001322.jpg"
    originals = tmp_path / "archive"
    originals.mkdir()
    people = sorted(p for p in lfw.iterdir() if p.is_dir() and len(list(p.glob("*.jpg"))) >= 2)[:20]
    chosen = [photo for person in people for photo in sorted(person.glob("*.jpg"))[:2]]
    for photo in chosen:
        (originals / photo.name).symlink_to(photo)
    (originals / "group.jpg").write_bytes(exif_jpeg(np.asarray(Image.open(group).convert("RGB"))))
    home = tmp_path / "home"
    with facesearch.open(home) as fs:
        fs.index([originals], collection="archive")
    return home, originals, chosen


def test_copies_are_found_by_hash_and_by_alignment_with_their_first_known_date(
    newsroom: tuple[Path, Path, list[Path]], tmp_path: Path
) -> None:
    home, originals, chosen = newsroom
    group = np.asarray(Image.open(originals / "group.jpg").convert("RGB"))
    height, width = group.shape[:2]
    edits = tmp_path / "edits"
    edits.mkdir()
    Image.fromarray(jpeg(group, 35)).save(edits / "reencoded.jpg")
    Image.fromarray(group[int(height * 0.1) :, : int(width * 0.85)]).save(edits / "cropped.jpg")
    Image.fromarray(framed(mirrored(group), 60)).save(edits / "mirrored-framed.png")
    Image.fromarray(captioned(group)).save(edits / "captioned.jpg")
    with facesearch.open(home) as fs:
        for name in ("reencoded.jpg", "cropped.jpg", "mirrored-framed.png", "captioned.jpg"):
            result = fs.provenance.lookup(edits / name, context=fs.searching.context())
            assert result.error is None
            assert [d.image for d in result.duplicates] == [str(originals / "group.jpg")], (name, result.duplicates)
            copy = result.duplicates[0]
            assert copy.first_known == "2024-03-01T12:30:00+00:00" and copy.first_known_from == "captured"
            assert copy.camera == "Canon EOS 5D" and copy.mirrored == (name == "mirrored-framed.png")
            assert copy.match == ("hash" if name in ("reencoded.jpg", "mirrored-framed.png") else "aligned"), name
            assert result.pictures_searched == len(chosen) + 1
            assert result.timeline == [copy.image_id]
        # Another photo of a person in the archive: no copy, but the person's other photo as a same face.
        probe = chosen[0]
        other = chosen[1]
        result = fs.provenance.lookup(probe, context=fs.searching.context())
        assert [d.image for d in result.duplicates] == [str(originals / probe.name)]
        assert str(originals / other.name) in [s.image for s in result.same_faces]
        threshold = fs.packs.pack().threshold  # same faces are those at or above the pack's same-person threshold
        assert all(s.similarity >= threshold and s.fmr is not None for s in result.same_faces)
        records = fs.catalog.audit_log.records(action="provenance", limit=10)
        assert records and json.loads(records[-1].details)["duplicates"] == [result.duplicates[0].image_id]


def test_an_erased_picture_is_no_longer_found_and_grants_limit_what_is_seen(
    newsroom: tuple[Path, Path, list[Path]], tmp_path: Path
) -> None:
    home, originals, chosen = newsroom
    probe = tmp_path / "probe.jpg"
    Image.fromarray(jpeg(np.asarray(Image.open(originals / "group.jpg").convert("RGB")), 50)).save(probe)
    with facesearch.open(home) as fs:
        assert fs.provenance.lookup(probe, context=fs.searching.context()).duplicates
        fs.collections.create(fs.operator, "other", legal_basis="test")
        fs.accounts.add_user(fs.operator, "ana", "investigator", collections=["other"])
        record = fs.catalog.accounts.user("ana")
        limited = fs.accounts.principal_of(record.id) if record is not None else None
        assert limited is not None and not limited.all_collections
        seen = fs.provenance.lookup_as(limited, probe.read_bytes(), purpose="investigation", case_id="C-1")
        assert seen.duplicates == [] and seen.same_faces == []
        fs.erasure.erase(fs.operator, "image", [str(originals / "group.jpg")])
        after = fs.provenance.lookup(probe, context=fs.searching.context())
        assert after.duplicates == [] and after.pictures_searched == len(chosen)


def test_provenance_json_contract_and_an_unreadable_probe(
    newsroom: tuple[Path, Path, list[Path]], tmp_path: Path
) -> None:
    home, originals, _chosen = newsroom
    command = [sys.executable, "-m", "facesearch.cli", "--home", str(home), "provenance"]
    answer = subprocess.run([*command, str(originals / "group.jpg"), "--json"], capture_output=True, text=True)
    assert answer.returncode == 0, answer.stderr
    result = json.loads(answer.stdout)
    assert result["probe"] == str(originals / "group.jpg")
    assert {"probe", "duplicates", "same_faces"} <= set(result)
    first = result["duplicates"][0]
    assert {"image", "distance", "first_known", "source_url"} <= set(first) and first["distance"] == 0
    assert result["probe_facts"]["camera"] == "Canon EOS 5D"
    people = subprocess.run([*command, str(originals / "group.jpg")], capture_output=True, text=True)
    assert "earliest first" in people.stdout and "2024-03-01" in people.stdout
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"%PDF-1.4 not a picture")
    failed = subprocess.run([*command, str(bad), "--json"], capture_output=True, text=True)
    assert failed.returncode == 1 and json.loads(failed.stdout)["error"].startswith("not_an_image")


# Manifests: files and URLs with their sources ----------------------------------------------------------------


class _Site:
    """A real HTTP server on this machine serving a folder, with a redirect and a count of requests."""

    def __init__(self, folder: Path) -> None:
        import functools
        import threading
        from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

        site = self

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                site.requests.append(self.path)
                if self.path.startswith("/away"):
                    self.send_response(302)
                    self.send_header("Location", "http://elsewhere.invalid/photo.jpg")
                    self.end_headers()
                    return
                super().do_GET()

            def log_message(self, *_args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, *_args: object) -> None:
                pass  # a client that stops reading (a refused fetch) is expected here, not an error to print

        self.requests: list[str] = []
        self.server = Server(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_manifest_keeps_each_files_source_and_fetches_only_from_allowed_hosts(
    tmp_path: Path, astronaut: np.ndarray
) -> None:
    served = tmp_path / "site"
    served.mkdir()
    Image.fromarray(astronaut).save(served / "portrait.jpg", quality=90)
    (served / "report.jpg").write_bytes(b"%PDF-1.4 a document, not a picture")
    local = tmp_path / "collected"
    local.mkdir()
    Image.fromarray(np.ascontiguousarray(astronaut[:, ::-1])).resize((256, 256)).save(local / "mirror.png")
    site = _Site(served)
    try:
        base = f"http://{site.host}"
        manifest = local / "manifest.csv"
        manifest.write_text(
            "file,url,source_page,date,legal_basis\n"
            f",{base}/portrait.jpg,https://news.example/story,2024-02-29,public interest (art. 6(1)(e))\n"
            "mirror.png,,https://social.example/post/1,2024-03-05T10:00:00+02:00,\n"
            ",http://not-allowed.example/photo.jpg,,,\n"
            f",{base}/missing.jpg,,,\n"
            f",{base}/report.jpg,,,\n"
            f",{base}/away,,,\n"
            "mirror.png,,,yesterday,\n"
        )
        home = tmp_path / "home"
        with facesearch.open(home) as fs:
            summary = fs.index([], collection="collected", manifest=manifest, allow_hosts=[site.host], workers=1)
            assert summary.images_indexed == 2, summary.to_dict()
            reasons = {item["path"]: item["reason"] for item in summary.skipped_files}
            assert reasons == {
                "http://not-allowed.example/photo.jpg": "host_not_allowed",
                f"{base}/missing.jpg": "fetch_failed",
                f"{base}/report.jpg": "unsupported_media_type",
                f"{base}/away": "host_not_allowed",
                "mirror.png": "bad_manifest_row",
            }
            pictures = fs.catalog.provenance.pictures(range(1, 20))
            fetched = next(p for p in pictures.values() if p.source_url == f"{base}/portrait.jpg")
            assert fetched.source_page == "https://news.example/story"
            assert fetched.source_date == "2024-02-29T00:00:00+00:00" and fetched.first_known_from == "source"
            assert Path(fetched.path).is_relative_to(home / "uploads")  # managed: erasure deletes it
            mirror = next(p for p in pictures.values() if p.path == str(local / "mirror.png"))
            assert mirror.source_date == "2024-03-05T08:00:00+00:00" and mirror.source_page.endswith("/post/1")
            fetches = len(site.requests)
            again = fs.index([], collection="collected", manifest=manifest, allow_hosts=[site.host], workers=1)
            assert again.images_indexed == 0 and again.already_done == again.files_seen
            assert len(site.requests) - fetches == 3  # only the failed addresses are asked again
            # The picture is traced back to where it was first published, by the manifest's date.
            probe = tmp_path / "repost.jpg"
            Image.fromarray(jpeg(astronaut, 40)).save(probe)
            copy = fs.provenance.lookup(probe, context=fs.searching.context()).duplicates[0]
            assert copy.source_url == f"{base}/portrait.jpg" and copy.first_known == "2024-02-29T00:00:00+00:00"
            assert copy.legal_basis == "public interest (art. 6(1)(e))" and mirror.legal_basis is None
    finally:
        site.close()


def test_a_json_lines_manifest_and_a_manifest_that_is_not_one(tmp_path: Path, astronaut: np.ndarray) -> None:
    from facesearch.errors import SourceRefused
    from facesearch.ingest.sources.manifests import read_manifest

    Image.fromarray(astronaut).save(tmp_path / "a.jpg")
    lines = tmp_path / "list.jsonl"
    lines.write_text(
        json.dumps({"file": "a.jpg", "source_page": "https://example.org/a", "date": "2023-12-31"})
        + "\nnot json\n"
        + json.dumps({"file": "a.jpg", "url": "https://example.org/a.jpg"})
        + "\n"
    )
    rows, bad = read_manifest(lines)
    assert [r.file for r in rows] == [tmp_path / "a.jpg"] and rows[0].source_page == "https://example.org/a"
    assert [(b.line, b.reason) for b in bad] == [(2, "bad_manifest_row"), (3, "bad_manifest_row")]
    headerless = tmp_path / "list.csv"
    headerless.write_text("a.jpg,https://example.org\n")
    with pytest.raises(SourceRefused) as refused:
        read_manifest(headerless)
    assert refused.value.code == "bad_manifest"


def test_index_manifest_on_the_command_line(tmp_path: Path, astronaut: np.ndarray) -> None:
    Image.fromarray(astronaut).save(tmp_path / "a.jpg")
    (tmp_path / "m.csv").write_text("file,source_page,date\na.jpg,https://example.org/a,2020-01-02\n")
    command = [sys.executable, "-m", "facesearch.cli", "--home", str(tmp_path / "home"), "index"]
    done = subprocess.run(
        [*command, "--manifest", str(tmp_path / "m.csv"), "-c", "c", "--json"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["images_indexed"] == 1
    nothing = subprocess.run([*command, "-c", "c"], capture_output=True, text=True)
    assert nothing.returncode == 2 and "--manifest" in nothing.stderr


def test_real_content_credentials_are_read_and_a_changed_picture_fails_validation(
    tmp_path: Path, astronaut: np.ndarray
) -> None:
    from tests.c2pa_support import signed_jpeg

    signed = signed_jpeg(astronaut, "astronaut.jpg")
    credentials = json.loads(read_facts(signed, "jpeg").content_credentials or "{}")
    # The signature verifies, but the test signer is on no trust list: "untrusted", never "valid".
    assert credentials["validation"] == "untrusted" and credentials["signer"] == "facesearch tests"
    assert credentials["actions"] == ["c2pa.created (digitalCapture)"] and credentials["title"] == "astronaut.jpg"
    assert credentials["claim_generator"] == "facesearch-tests 1.0"
    changed = bytearray(signed)
    changed[-5000] ^= 0xFF  # a byte of the picture's data, after signing
    tampered = json.loads(read_facts(bytes(changed), "jpeg").content_credentials or "{}")
    assert tampered["validation"] == "invalid"
    assert any(error.startswith("assertion.dataHash.mismatch") for error in tampered["errors"])
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "signed.jpg").write_bytes(signed)
    home = tmp_path / "home"
    with facesearch.open(home) as fs:
        fs.index([folder], collection="press", workers=1)
    probe = tmp_path / "repost.jpg"
    Image.fromarray(jpeg(astronaut, 50)).save(probe)
    command = [sys.executable, "-m", "facesearch.cli", "--home", str(home), "provenance", str(probe)]
    shown = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr
    assert "content credentials: UNTRUSTED" in shown.stdout and "facesearch tests" in shown.stdout
    copy = json.loads(subprocess.run([*command, "--json"], capture_output=True, text=True).stdout)["duplicates"][0]
    assert copy["content_credentials"]["validation"] == "untrusted"


def test_pictures_indexed_before_fingerprints_are_fingerprinted_by_backfill(
    tmp_path: Path, astronaut: np.ndarray
) -> None:
    from sqlalchemy import update

    from facesearch.catalog.schema import Image as ImageRow

    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "old.jpg").write_bytes(exif_jpeg(astronaut))
    home = tmp_path / "home"
    with facesearch.open(home) as fs:
        fs.index([folder], collection="old", workers=1)
        with fs.catalog.transaction() as tx:  # as a data folder from before migration 0009 holds them
            tx.execute(update(ImageRow).values(pdq=None, pdq_quality=None, camera=None, captured_at=None))
        before = fs.provenance.lookup(folder / "old.jpg", context=fs.searching.context()).duplicates
        assert [d.match for d in before] == ["aligned"]  # found through its face only: it has no hash
    command = [sys.executable, "-m", "facesearch.cli", "--home", str(home), "provenance", "--backfill", "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"fingerprinted": 1, "unreadable": 0}
    with facesearch.open(home) as fs:
        copy = fs.provenance.lookup(folder / "old.jpg", context=fs.searching.context()).duplicates[0]
        assert copy.match == "hash" and copy.distance == 0
        assert copy.camera == "Canon EOS 5D" and copy.first_known_from == "captured"
        assert fs.provenance.backfill(fs.operator) == {"fingerprinted": 0, "unreadable": 0}
