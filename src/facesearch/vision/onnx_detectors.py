"""Face detectors backed by ONNX models: YuNet (through OpenCV) and SCRFD (through onnxruntime).

Both take an RGB ``uint8`` array of shape (H, W, 3) and return :class:`~facesearch.vision.types.DetectedFace`
objects whose boxes and landmarks are in pixels of that array, whatever resizing or padding happened inside.
Landmarks come in :data:`~facesearch.vision.types.LANDMARK_NAMES` order (image-left eye first).
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort

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


class YuNetDetector:
    """YuNet face detector (OpenCV zoo ``face_detection_yunet_2023mar.onnx``) run by ``cv2.FaceDetectorYN``.

    * Images whose long side exceeds ``max_side`` are downscaled before detection (speed; YuNet's smallest
      reliable face is about 10 px, so 1280 keeps faces of ~1% of a 1280 px frame).
    * Images whose short side is below ``min_side`` are upscaled (0, the default, never upscales); the long
      side is still kept within ``max_side``.
    * YuNet misses faces that fill the frame or touch its border (LFW-style crops). When the plain pass finds
      nothing, the image is padded by ``pad`` of its long side on every side and detected again
      (``pad=0`` turns this off). Only a miss pays for the second pass.

    All coordinates are mapped back to the input image. ``detect`` is serialised by a lock because
    ``cv2.FaceDetectorYN`` keeps the input size as mutable state.
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
        pad: float = 0.25,
        top_k: int = 5000,
    ) -> None:
        """Load the model; raise ``FileNotFoundError`` when ``model_path`` does not exist."""
        model_path = Path(model_path)
        if not model_path.is_file():
            raise FileNotFoundError(f"YuNet model not found: {model_path}")
        _check_unit("score_threshold", score_threshold)
        _check_unit("nms_threshold", nms_threshold)
        if max_side < 32:
            raise ValueError(f"max_side must be at least 32, got {max_side}")
        if min_side < 0 or min_side > max_side:
            raise ValueError(f"min_side must be in [0, max_side], got {min_side}")
        if pad < 0:
            raise ValueError(f"pad must be >= 0, got {pad}")
        self.model_path = model_path
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.max_side = int(max_side)
        self.min_side = int(min_side)
        self.pad = float(pad)
        # The input size given here is a placeholder: detect() sets the real one for every image.
        self._net = cv2.FaceDetectorYN.create(
            str(model_path), "", (320, 320), self.score_threshold, self.nms_threshold, int(top_k)
        )
        self._lock = threading.Lock()

    def _scale_for(self, height: int, width: int) -> float:
        long_side, short_side = max(height, width), min(height, width)
        scale = 1.0
        if self.min_side and short_side < self.min_side:
            scale = self.min_side / short_side
        return min(scale, self.max_side / long_side)

    def _run(self, bgr: np.ndarray) -> np.ndarray:
        """Run YuNet on a BGR image; return an (N, 15) float32 array (empty when nothing is found)."""
        with self._lock:
            self._net.setInputSize((bgr.shape[1], bgr.shape[0]))
            _, faces = self._net.detect(bgr)
        if faces is None:
            return np.zeros((0, 15), dtype=np.float32)
        return np.asarray(faces, dtype=np.float32).reshape(-1, 15)

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        """Detect faces in an RGB uint8 (H, W, 3) image; return them highest score first."""
        rgb = _check_rgb(rgb)
        height, width = rgb.shape[:2]
        if height == 0 or width == 0:
            return []
        scale = self._scale_for(height, width)
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        if scale != 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            # INTER_AREA avoids aliasing when shrinking; LINEAR is the usual choice when enlarging.
            interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
            bgr = cv2.resize(bgr, size, interpolation=interp)
        # Exact per-axis factors, since rounding the resized size changes them slightly.
        sx = width / bgr.shape[1]
        sy = height / bgr.shape[0]

        raw = self._run(bgr)
        offset = 0
        if len(raw) == 0 and self.pad > 0:
            offset = round(self.pad * max(bgr.shape[:2]))
            # A constant (black) border: replicate and reflect borders smear or mirror the face at the edge,
            # and reflect in particular makes mirrored duplicate faces.
            padded = cv2.copyMakeBorder(bgr, offset, offset, offset, offset, cv2.BORDER_CONSTANT, value=0)
            raw = self._run(padded)
        if len(raw) == 0:
            return []

        boxes = raw[:, 0:4].astype(np.float64)
        xyxy = np.stack(
            [
                (boxes[:, 0] - offset) * sx,
                (boxes[:, 1] - offset) * sy,
                (boxes[:, 0] + boxes[:, 2] - offset) * sx,
                (boxes[:, 1] + boxes[:, 3] - offset) * sy,
            ],
            axis=1,
        )
        # cv2.FaceDetectorYN gives (right eye, left eye, nose, right mouth, left mouth) of the *subject*,
        # i.e. image-left eye first: already our order, checked against dlib's 68-point annotations.
        landmarks = raw[:, 4:14].astype(np.float64).reshape(-1, 5, 2)
        landmarks = (landmarks - offset) * np.array([sx, sy])
        return _to_faces(xyxy, raw[:, 14].astype(np.float64), landmarks, width, height)


class ScrfdDetector:
    """SCRFD face detector (InsightFace ``det_500m`` / ``det_2.5g`` / ``det_10g`` ...) run by onnxruntime.

    The image is letterboxed into an ``input_size`` square (aspect kept, padding at the bottom/right),
    normalised as ``(x - 127.5) / 128`` in RGB, and the per-stride score / distance / keypoint outputs are
    decoded around anchor centres. Outputs are matched to their role by shape, not name, so any SCRFD export
    with 1/4/10-wide outputs (or without the keypoint branch) loads.
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
        self._session = ort.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])
        self._input_name = self._session.get_inputs()[0].name
        self._output_names = [o.name for o in self._session.get_outputs()]
        self._anchor_cache: dict[tuple[int, int, int, int], np.ndarray] = {}
        # Resolve the output layout once with a blank input, so that a model we cannot decode fails at load
        # time rather than on the first photo.
        blank = np.zeros((1, 3, self.input_size, self.input_size), dtype=np.float32)
        self._layout = self._resolve_layout(self._session.run(self._output_names, {self._input_name: blank}))

    def _resolve_layout(self, outputs: list[np.ndarray]) -> list[tuple[int, int, int | None, int, int]]:
        """Map raw outputs to levels: ``(stride, score_idx, bbox_idx, kps_idx or None, anchors)`` per level.

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
        layout: list[tuple[int, int, int | None, int, int]] = []
        for level in range(levels):
            stride = 8 * 2**level
            rows = by_width[1][level][0]
            if by_width[4][level][0] != rows or (by_width[10] and by_width[10][level][0] != rows):
                raise ValueError(f"{self.model_path.name}: score/box/keypoint row counts differ at stride {stride}")
            cells = math.ceil(self.input_size / stride) ** 2
            if rows % cells:
                raise ValueError(f"{self.model_path.name}: {rows} rows at stride {stride} is not a multiple of {cells}")
            kps_idx = by_width[10][level][1] if by_width[10] else None
            layout.append((stride, by_width[1][level][1], by_width[4][level][1], kps_idx, rows // cells))
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
        has_kps = self._layout[0][3] is not None
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
        kept = cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), self.score_threshold, self.nms_threshold)
        kept = np.asarray(kept, dtype=np.int64).reshape(-1)
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
