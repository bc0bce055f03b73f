"""The OCR engine: RapidOCR on onnxruntime with the models its package ships.

One engine is loaded per process, on first use, and shared by all threads.
Recognition runs one image at a time: onnxruntime already spreads a single
run over every core, and parallel runs would only multiply the memory held
by their intermediate tensors.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from importlib import metadata
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from PIL import Image

from ...exceptions import MissingExtra
from .layout import TextBox

logger = logging.getLogger("django_cf_ingest.providers.ocr")

_load_lock = threading.Lock()
_run_lock = threading.Lock()
_engines: dict[tuple[tuple[str, Any], ...], Any] = {}

#: Longest side, in pixels, of the image text detection runs on. Detection
#: memory grows with its square (about 330 MB at 1280, 190 MB at 960).
DETECTION_SIDE = 1280
#: Modules the engine needs, all from the ``ocr`` extra.
REQUIRED_MODULES = ("rapidocr", "onnxruntime", "pypdfium2")


def missing_modules() -> list[str]:
    """The required modules that are not installed (checked without importing)."""
    return [name for name in REQUIRED_MODULES if importlib.util.find_spec(name) is None]


def version() -> str:
    try:
        return metadata.version("rapidocr")
    except metadata.PackageNotFoundError:
        return "unknown"


def model_name() -> str:
    return f"rapidocr-{version()}"


def bundled_models_dir() -> Path | None:
    spec = importlib.util.find_spec("rapidocr")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "models"


def _expected_models(engine: Any) -> list[Path]:
    """Files the engine's default configuration would load (and, if absent,
    download). Resolved with RapidOCR's own model table."""
    from rapidocr.inference_engine.base import FileInfo, InferSession

    config = engine.cfg
    root = Path(config.Global.model_root_dir)
    paths = []
    for section in (config.Det, config.Rec):
        if section.get("model_path"):
            paths.append(Path(section.model_path))
            continue
        info = InferSession.get_model_url(
            FileInfo(
                engine_type=section.engine_type,
                ocr_version=section.ocr_version,
                task_type=section.task_type,
                lang_type=section.lang_type,
                model_type=section.model_type,
            )
        )
        paths.append(root / Path(info["model_dir"]).name)
    return paths


def _create(threads: int, detection_side: int) -> Any:
    try:
        from rapidocr import RapidOCR
    except ImportError as exc:
        raise MissingExtra("The ocr provider", "ocr") from exc

    # Uploads are upright pages (EXIF orientation is applied before). The
    # angle classifier squeezes each line to a short strip to judge it, and
    # turned long lines and short numbers upside down when left on.
    params: dict[str, Any] = {
        "Global.log_level": "error",
        "Global.use_cls": False,
        # Detection on at most ``detection_side`` pixels: at the default an A4
        # page at 144 dpi keeps its small print, and memory stays bounded.
        "Det.limit_type": "max",
        "Det.limit_side_len": detection_side,
    }
    if threads > 0:
        params["EngineConfig.onnxruntime.intra_op_num_threads"] = threads
    engine = RapidOCR(params=params)

    # RapidOCR fetches a model it cannot find; this provider must stay offline.
    try:
        missing = [p for p in _expected_models(engine) if not p.is_file()]
    except (ImportError, AttributeError, KeyError, ValueError):
        missing = []  # An unknown RapidOCR layout: rely on its own checks.
    if missing:
        raise ImproperlyConfigured(
            "RapidOCR's bundled models are missing "
            f"({', '.join(p.name for p in missing)}); reinstall the package: "
            'pip install --force-reinstall "django-cf-ingest[ocr]"'
        )
    logger.info(
        "ocr engine loaded version=%s threads=%s detection_side=%s",
        version(),
        threads or "auto",
        detection_side,
    )
    return engine


def get_engine(threads: int = 0, detection_side: int = DETECTION_SIDE) -> Any:
    key = (("threads", threads), ("detection_side", detection_side))
    engine = _engines.get(key)
    if engine is None:
        with _load_lock:
            engine = _engines.get(key)
            if engine is None:
                engine = _create(threads, detection_side)
                _engines[key] = engine
    return engine


def recognise(
    image: Image.Image, threads: int = 0, detection_side: int = DETECTION_SIDE
) -> list[TextBox]:
    """Text boxes found in an RGB image, in its pixel coordinates."""
    engine = get_engine(threads, detection_side)
    with _run_lock:
        output = engine(image)
    texts = getattr(output, "txts", None)
    if not texts:
        return []
    boxes = []
    for quad, text, score in zip(output.boxes, texts, output.scores, strict=False):
        xs = [float(point[0]) for point in quad]
        ys = [float(point[1]) for point in quad]
        boxes.append(
            TextBox(str(text), min(xs), min(ys), max(xs), max(ys), float(score))
        )
    return boxes
