"""Face detectors backed by ONNX models: YuNet (through OpenCV) and SCRFD (through onnxruntime).

Both take an RGB ``uint8`` array of shape (H, W, 3) and return :class:`~facesearch.vision.types.DetectedFace`
objects whose boxes and landmarks are in pixels of that array, whatever resizing or padding happened inside.
Landmarks come in :data:`~facesearch.vision.types.LANDMARK_NAMES` order (image-left eye first).

Threads: SCRFD's onnxruntime session uses ``threads`` intra-op threads. YuNet runs in OpenCV's own thread
pool; this module does not call ``cv2.setNumThreads`` because that setting is process-wide and belongs to
the application (a worker pool running one detector per process would set it to 1).
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
import onnxruntime as ort

from facesearch.vision.accelerator import onnx_providers
from facesearch.vision.types import DetectedFace

__all__ = ["ScrfdDetector", "YuNetDetector", "load_onnx_detector"]


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    """Validate a detector input and return it as a C-contiguous uint8 (H, W, 3) array."""
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3:
        shape = getattr(rgb, "shape", None)
        raise ValueError(f"expected an RGB image of shape (H, W, 3), got shape {shape}")
    if rgb.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {rgb.dtype}")
    return np.ascontiguousarray(rgb)


def _check_unit(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")


def _to_faces(
    boxes_xyxy: np.ndarray, scores: np.ndarray, landmarks: np.ndarray | None, width: int, height: int
) -> list[DetectedFace]:
    """Clip boxes to the image and wrap them as DetectedFace, highest score first.

    Boxes are clipped so that callers can crop with them directly; landmarks are left unclipped because a
    landmark just outside the frame is still the right input for alignment.
    """
    order = np.argsort(-scores, kind="stable")
    faces: list[DetectedFace] = []
    for i in order:
        x1 = float(np.clip(boxes_xyxy[i, 0], 0, width))
        y1 = float(np.clip(boxes_xyxy[i, 1], 0, height))
        x2 = float(np.clip(boxes_xyxy[i, 2], 0, width))
        y2 = float(np.clip(boxes_xyxy[i, 3], 0, height))
        if x2 - x1 <= 0 or y2 - y1 <= 0:
            continue
        lm = None if landmarks is None else landmarks[i].reshape(5, 2).astype(np.float32)
        score = float(np.clip(scores[i], 0.0, 1.0))
        faces.append(DetectedFace(bbox=(x1, y1, x2 - x1, y2 - y1), score=score, landmarks=lm))
    return faces


def _merge_coarse(fine: np.ndarray, coarse: np.ndarray) -> np.ndarray:
    """Add the coarse pass's YuNet rows to the fine pass's, dropping duplicates of the same face.

    A coarse face overlapping a fine one (IoU >= 0.3) is the same face, and the fine one keeps its more
    precise box and landmarks. A fine face lying mostly (60%) inside a coarse face with a higher score is a
    partial box of a large face, and the coarse face replaces it.
    """
    if len(coarse) == 0 or len(fine) == 0:
        return fine if len(coarse) == 0 else coarse
    keep_fine = np.ones(len(fine), dtype=bool)
    added: list[np.ndarray] = []
    f_x1, f_y1 = fine[:, 0], fine[:, 1]
    f_x2, f_y2 = f_x1 + fine[:, 2], f_y1 + fine[:, 3]
    f_area = np.maximum(fine[:, 2] * fine[:, 3], 1e-9)
    for row in coarse:
        x1, y1, x2, y2 = row[0], row[1], row[0] + row[2], row[1] + row[3]
        inter = np.clip(np.minimum(x2, f_x2) - np.maximum(x1, f_x1), 0, None) * np.clip(
            np.minimum(y2, f_y2) - np.maximum(y1, f_y1), 0, None
        )
        iou = inter / np.maximum(row[2] * row[3] + f_area - inter, 1e-9)
        if np.any(iou[keep_fine] >= 0.3):
            continue
        partial = keep_fine & (inter / f_area > 0.6) & (fine[:, 14] < row[14])
        keep_fine &= ~partial
        added.append(row)
    if not added:
        return fine[keep_fine]
    return np.concatenate([fine[keep_fine], np.stack(added)])


class YuNetDetector:
    """YuNet face detector (OpenCV zoo ``face_detection_yunet_2023mar.onnx``) run by ``cv2.FaceDetectorYN``.

    * Images whose long side exceeds ``max_side`` are downscaled before detection: time grows with the pixel
      count, and a 1280 px frame still keeps small background faces detectable.
    * Images whose short side is below ``min_side`` are upscaled to it (0, the default, never upscales); the
      long side still stays within ``max_side``.
    * YuNet misses faces that are large in pixels (many above ~600 px, as in close-ups from a phone),
      the more so when they fill the whole frame and touch its border. A *coarse pass* catches them: the
      image shrunk so its long side is ``rescue_side``, with a black border of ``pad`` times that side on
      every side. It runs when the first pass found nothing, and on every image whose working long side
      exceeds ``2 * rescue_side`` (on a 1280x960 photo it adds about 15% to the first pass); its faces are
      merged with the first pass's (see :func:`_merge_coarse`). ``rescue_side=0`` with ``pad=0`` turns it
      off. Measured on LFW faces cropped to fill the frame and enlarged to 640-1280 px: 7-70% found with
      one pass, 98.5-100% with the coarse pass; 10% and 25% borders did equally well, so the cheaper one.

    Coordinates are always mapped back to the input image. ``detect`` holds a lock around the network
    because ``cv2.FaceDetectorYN`` keeps the input size as mutable state shared by all callers.
    """

    name = "yunet"

    def __init__(
        self,
        model_path: Path,
        *,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
        max_side: int = 1280,
        min_side: int = 0,
        pad: float = 0.1,
        rescue_side: int = 320,
        top_k: int = 5000,
    ) -> None:
        """Load the model; raise ``FileNotFoundError`` when it is missing, ``ValueError`` on bad settings."""
        model_path = Path(model_path)
        if not model_path.is_file():
            raise FileNotFoundError(f"YuNet model not found: {model_path}")
        _check_unit("score_threshold", score_threshold)
        _check_unit("nms_threshold", nms_threshold)
        if max_side < 32:
            raise ValueError(f"max_side must be at least 32, got {max_side}")
        if not 0 <= min_side <= max_side:
            raise ValueError(f"min_side must be in [0, max_side], got {min_side}")
        if pad < 0:
            raise ValueError(f"pad must be >= 0, got {pad}")
        if rescue_side < 0:
            raise ValueError(f"rescue_side must be >= 0, got {rescue_side}")
        self.model_path = model_path
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.max_side = int(max_side)
        self.min_side = int(min_side)
        self.pad = float(pad)
        self.rescue_side = int(rescue_side)
        # The input size given here is a placeholder: every detect() call sets the real one.
        self._net = cv2.FaceDetectorYN.create(
            str(model_path), "", (320, 320), self.score_threshold, self.nms_threshold, int(top_k)
        )
        self._lock = threading.Lock()

    def _working_scale(self, height: int, width: int) -> float:
        """Scale factor applied before the first pass (min_side upscaling, then the max_side cap)."""
        scale = 1.0
        if self.min_side and min(height, width) < self.min_side:
            scale = self.min_side / min(height, width)
        return min(scale, self.max_side / max(height, width))

    def _pass(self, bgr: np.ndarray, scale: float, pad_fraction: float) -> np.ndarray:
        """Resize by ``scale``, pad, run the network; return (N, 15) rows in input-image coordinates."""
        height, width = bgr.shape[:2]
        if scale != 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            # INTER_AREA avoids aliasing when shrinking; LINEAR is the usual choice when enlarging.
            interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
            bgr = cv2.resize(bgr, size, interpolation=interp)
        # Exact per-axis factors back to the input, since rounding the resized size changes them slightly.
        sx, sy = width / bgr.shape[1], height / bgr.shape[0]
        offset = round(pad_fraction * max(bgr.shape[:2]))
        if offset:
            # Black rather than replicated or reflected: those smear or mirror the face at the edge, and
            # reflection creates duplicate faces. Measured on LFW crops, black was never worse.
            bgr = cv2.copyMakeBorder(bgr, offset, offset, offset, offset, cv2.BORDER_CONSTANT, value=0)
        with self._lock:
            self._net.setInputSize((bgr.shape[1], bgr.shape[0]))
            _, found = self._net.detect(bgr)
        if found is None:
            return np.zeros((0, 15), dtype=np.float64)
        rows = np.asarray(found, dtype=np.float64).reshape(-1, 15).copy()
        # Row layout: x, y, w, h, 5 landmark (x, y) pairs, score. Positions lose the padding; everything
        # except the score is then scaled (even columns are x-like, odd ones y-like).
        rows[:, 0:2] -= offset
        rows[:, 4:14] -= offset
        rows[:, 0:14:2] *= sx
        rows[:, 1:14:2] *= sy
        return rows

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        """Detect faces in an RGB uint8 (H, W, 3) image; return them highest score first."""
        rgb = _check_rgb(rgb)
        height, width = rgb.shape[:2]
        if height == 0 or width == 0:
            return []
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        scale = self._working_scale(height, width)
        rows = self._pass(bgr, scale, 0.0)
        long_side = max(height, width)
        # The coarse pass is cheap next to the first on a large image (a padded 320 px image has about a
        # sixth of the pixels of a 1280 px one), so large images always get it: a close-up face there is
        # often missed even when the first pass finds something else (a partial box, a background face).
        coarse_needed = len(rows) == 0 or (self.rescue_side > 0 and long_side * scale > 2 * self.rescue_side)
        if coarse_needed and (self.pad > 0 or self.rescue_side > 0):
            coarse_scale = min(scale, self.rescue_side / long_side) if self.rescue_side else scale
            rows = _merge_coarse(rows, self._pass(bgr, coarse_scale, self.pad))
        if len(rows) == 0:
            return []
        xyxy = np.concatenate([rows[:, 0:2], rows[:, 0:2] + rows[:, 2:4]], axis=1)
        # cv2.FaceDetectorYN lists (right eye, left eye, nose, right mouth corner, left mouth corner) of the
        # *subject*, which is image-left first: already our order. Checked against dlib's 68-point annotations
        # of the group photos (tests/test_detectors.py), so no reordering here.
        landmarks = rows[:, 4:14].reshape(-1, 5, 2)
        return _to_faces(xyxy, rows[:, 14], landmarks, width, height)


class _Level(NamedTuple):
    """Where one SCRFD pyramid level's outputs are: indices into the session's outputs."""

    stride: int
    score: int
    bbox: int
    kps: int | None  # None for exports without the keypoint branch
    anchors: int  # anchors per feature-map cell (2 in the InsightFace models)


class ScrfdDetector:
    """SCRFD face detector (InsightFace ``det_500m`` / ``det_2.5g`` / ``det_10g`` ...) run by onnxruntime.

    The image is letterboxed into an ``input_size`` square (aspect kept, padding at the bottom/right),
    normalised as ``(x - 127.5) / 128`` in RGB, and the per-stride score / distance / keypoint outputs are
    decoded around anchor centres. Outputs are matched to their role by shape, not name, so any SCRFD export
    with 1/4/10-wide outputs (or without the keypoint branch, whose faces then have no landmarks) loads. An
    export with a fixed input size runs at that size, whatever ``input_size`` says. ``detect`` may be called
    from several threads (onnxruntime sessions are thread-safe).
    """

    name = "scrfd"

    def __init__(
        self,
        model_path: Path,
        *,
        score_threshold: float = 0.5,
        nms_threshold: float = 0.4,
        input_size: int = 640,
        threads: int = 1,
    ) -> None:
        """Create the onnxruntime session on the CPU provider with ``threads`` intra-op threads."""
        model_path = Path(model_path)
        if not model_path.is_file():
            raise FileNotFoundError(f"SCRFD model not found: {model_path}")
        _check_unit("score_threshold", score_threshold)
        _check_unit("nms_threshold", nms_threshold)
        if input_size < 32 or input_size % 32:
            # The coarsest stride is 32; other sizes would give feature maps that do not tile the input.
            raise ValueError(f"input_size must be a positive multiple of 32, got {input_size}")
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.model_path = model_path
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.input_size = int(input_size)
        self.threads = int(threads)

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # initializer/shape-inference warnings of exported models are noise here
        self._session = ort.InferenceSession(str(model_path), sess_options=options, providers=onnx_providers())
        model_input = self._session.get_inputs()[0]
        self._input_name = model_input.name
        fixed = [d for d in model_input.shape[2:4] if isinstance(d, int)]
        if len(fixed) == 2:
            # An export with a fixed input size can only run at that size.
            if fixed[0] != fixed[1] or fixed[0] % 32:
                raise ValueError(f"{model_path.name}: fixed input {fixed} is not a square multiple of 32")
            self.input_size = fixed[0]
        self._output_names = [o.name for o in self._session.get_outputs()]
        self._anchor_cache: dict[tuple[int, int, int, int], np.ndarray] = {}
        # Resolve the output layout once with a blank input, so that a model we cannot decode fails at load
        # time rather than on the first photo.
        blank = np.zeros((1, 3, self.input_size, self.input_size), dtype=np.float32)
        self._layout = self._resolve_layout(self._session.run(self._output_names, {self._input_name: blank}))

    def _resolve_layout(self, outputs: list[np.ndarray]) -> list[_Level]:
        """Map raw outputs to pyramid levels, finest stride first.

        Outputs are grouped by their last dimension (1 = score, 4 = box distances, 10 = keypoints) and, within
        a group, sorted by row count: the finest stride (8) has the most rows, each next level a quarter.
        """
        by_width: dict[int, list[tuple[int, int]]] = {1: [], 4: [], 10: []}
        for idx, out in enumerate(outputs):
            width = int(out.shape[-1]) if out.ndim else 0
            if width not in by_width:
                raise ValueError(f"{self.model_path.name}: unexpected output shape {out.shape}; not an SCRFD model?")
            rows = int(np.prod(out.shape[:-1]))
            by_width[width].append((rows, idx))
        levels = len(by_width[1])
        if levels == 0 or len(by_width[4]) != levels or len(by_width[10]) not in (0, levels):
            counts = {k: len(v) for k, v in by_width.items()}
            raise ValueError(f"{self.model_path.name}: cannot pair SCRFD outputs by shape: {counts}")
        for group in by_width.values():
            group.sort(key=lambda item: -item[0])
        layout: list[_Level] = []
        for level in range(levels):
            stride = 8 << level  # 8, 16, 32 (and 64, 128 in five-level variants)
            rows = by_width[1][level][0]
            if by_width[4][level][0] != rows or (by_width[10] and by_width[10][level][0] != rows):
                raise ValueError(f"{self.model_path.name}: score/box/keypoint row counts differ at stride {stride}")
            cells = math.ceil(self.input_size / stride) ** 2
            if rows % cells:
                raise ValueError(f"{self.model_path.name}: {rows} rows at stride {stride} is not a multiple of {cells}")
            kps_idx = by_width[10][level][1] if by_width[10] else None
            layout.append(_Level(stride, by_width[1][level][1], by_width[4][level][1], kps_idx, rows // cells))
        return layout

    def _anchor_centres(self, height: int, width: int, stride: int, anchors: int) -> np.ndarray:
        """Return (height*width*anchors, 2) anchor centres (x, y): row-major cells, anchors innermost."""
        key = (height, width, stride, anchors)
        centres = self._anchor_cache.get(key)
        if centres is None:
            ys, xs = np.mgrid[:height, :width]
            # SCRFD's anchor centre is the top-left corner of its cell (no half-stride offset).
            centres = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float32) * stride
            centres = np.repeat(centres, anchors, axis=0)
            self._anchor_cache[key] = centres
        return centres

    def _preprocess(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Letterbox into the input square (pad bottom/right) and normalise; return the blob and (sx, sy)."""
        height, width = rgb.shape[:2]
        scale = min(self.input_size / height, self.input_size / width)
        new_w = max(1, min(self.input_size, round(width * scale)))
        new_h = max(1, min(self.input_size, round(height * scale)))
        interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
        canvas = np.zeros((self.input_size, self.input_size, 3), dtype=np.uint8)
        canvas[:new_h, :new_w] = cv2.resize(rgb, (new_w, new_h), interpolation=interp)
        blob = (canvas.astype(np.float32) - 127.5) / 128.0
        blob = np.ascontiguousarray(blob.transpose(2, 0, 1)[None])
        # Map back with the exact per-axis factors of the resize rather than `scale` (rounding differs).
        return blob, np.array([new_w / width, new_h / height])

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        """Detect faces in an RGB uint8 (H, W, 3) image; return them highest score first."""
        rgb = _check_rgb(rgb)
        height, width = rgb.shape[:2]
        if height == 0 or width == 0:
            return []
        blob, scale = self._preprocess(rgb)
        outputs = self._session.run(self._output_names, {self._input_name: blob})

        all_boxes: list[np.ndarray] = []
        all_scores: list[np.ndarray] = []
        all_kps: list[np.ndarray] = []
        has_kps = self._layout[0].kps is not None
        for stride, score_idx, bbox_idx, kps_idx, anchors in self._layout:
            scores = outputs[score_idx].reshape(-1)
            keep = np.nonzero(scores >= self.score_threshold)[0]
            if keep.size == 0:
                continue
            cells = math.ceil(self.input_size / stride)
            centres = self._anchor_centres(cells, cells, stride, anchors)[keep]
            dist = outputs[bbox_idx].reshape(-1, 4)[keep] * stride
            all_boxes.append(np.concatenate([centres - dist[:, :2], centres + dist[:, 2:]], axis=1))
            all_scores.append(scores[keep])
            if kps_idx is not None:
                offsets = outputs[kps_idx].reshape(-1, 5, 2)[keep] * stride
                all_kps.append(centres[:, None, :] + offsets)
        if not all_scores:
            return []

        boxes = np.concatenate(all_boxes).astype(np.float64) / np.tile(scale, 2)
        scores = np.concatenate(all_scores).astype(np.float64)
        kps = np.concatenate(all_kps).astype(np.float64) / scale if has_kps else None
        xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
        nms = cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), self.score_threshold, self.nms_threshold)
        kept = np.asarray(nms, dtype=np.int64).reshape(-1)
        if kept.size == 0:
            return []
        return _to_faces(boxes[kept], scores[kept], None if kps is None else kps[kept], width, height)


def load_onnx_detector(model_path: Path, family: str, **kwargs: Any) -> YuNetDetector | ScrfdDetector:
    """Build the detector for ``family`` ("yunet" or "scrfd"), passing ``kwargs`` to its constructor."""
    family_key = family.strip().lower()
    if family_key == YuNetDetector.name:
        return YuNetDetector(Path(model_path), **kwargs)
    if family_key == ScrfdDetector.name:
        return ScrfdDetector(Path(model_path), **kwargs)
    raise ValueError(f"unknown detector family {family!r}; expected 'yunet' or 'scrfd'")
