"""A video's faces for the catalog: frames sampled, faces found and tracked, one face stored per track.

Each track (:mod:`facesearch.vision.tracking`) becomes one stored face: its template (the mean of its best
faces' embeddings) is what is searched, and its box, landmarks and quality are those of its best frame, whose
time is kept (``frame_time``) with the track's time span, so that a result can show the frame and play from
there. Frames are analysed a batch at a time and dropped, so memory does not grow with the video's length.
"""

from __future__ import annotations

import numpy as np

from facesearch.catalog.records import FileOutcome, NewFace
from facesearch.vision.packs import ModelPack
from facesearch.vision.tracking import file_sha256, video_tracks
from facesearch.vision.video import VideoRejected, video_info


def analyse_video(pack: ModelPack, outcome: FileOutcome, *, fps: float, scenes: bool, subject: str | None) -> None:
    """Fill ``outcome`` (a video file's) with one face per track, or skip it with the reason."""
    try:
        info = video_info(outcome.path)
        outcome.sha256 = file_sha256(outcome.path)
        tracks = video_tracks(pack, outcome.path, fps=fps, scenes=scenes)
    except VideoRejected as rejected:
        outcome.status, outcome.error, outcome.error_detail = "skipped", rejected.reason, rejected.detail
        return
    except OSError as error:
        outcome.status, outcome.error, outcome.error_detail = "skipped", "unreadable", str(error)
        return
    except Exception as error:  # a model failure must not lose the other files' records
        outcome.status, outcome.error, outcome.error_detail = "skipped", "analysis_failed", repr(error)
        return
    outcome.media = "video"
    outcome.width, outcome.height = info.width, info.height
    outcome.duration_s = info.duration_s
    # With a subject, the longest-seen track is the person the video was enrolled for.
    main = max(range(len(tracks)), key=lambda i: (tracks[i].seen, -i)) if subject and tracks else None
    outcome.faces = [
        NewFace(
            bbox=tuple(round(float(v), 2) for v in track.best.detection.bbox),  # type: ignore[arg-type]
            landmarks=(
                np.round(track.best.detection.landmarks, 2).tolist()
                if track.best.detection.landmarks is not None
                else None
            ),
            detector_score=round(float(track.best.detection.score), 4),
            quality=float(track.best.quality.score),
            quality_reasons=track.best.quality.reasons,
            embedding=track.template,
            subject=subject if number == main else None,
            time_span=track.time_span,
            frame_time=round(track.best_time, 3),
        )
        for number, track in enumerate(tracks)
    ]
