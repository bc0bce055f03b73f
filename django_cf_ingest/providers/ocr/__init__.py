"""The offline ``ocr`` provider (needs the ``ocr`` extra)."""

from .provider import OcrProvider

__all__ = ["OcrProvider"]
