"""Size of the Workers AI request body: the image as base64 versus as a JSON
array of byte values.

    .venv/bin/python bench/workers_ai_payload.py [--megabytes 2]

Builds the request the provider sends for a JPEG of about the given size (a
photograph-like image, so its bytes are spread like any compressed file's)
and the same request with ``image`` as an array of integers, the form the
Worker binding examples use, and prints both sizes, the ratio, and the cost
per megabyte of image. It runs offline; nothing is sent.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image, ImageFilter

from django_cf_ingest.providers.workers_ai import RunBody

MB = 1_000_000
FIELDS = {
    "messages": [
        {"role": "system", "content": "Read the five scores. " * 20},
        {"role": "user", "content": "Read the document in the attached image."},
    ],
    "max_tokens": 2048,
    "temperature": 0,
}


def jpeg_of_about(size: int) -> bytes:
    """A JPEG close to ``size`` bytes: blurred noise, which compresses like a
    photographed page."""
    rng = random.Random(7)
    side = 800
    while True:
        noise = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
        image = noise.filter(ImageFilter.GaussianBlur(1.2))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=92)
        if buffer.tell() >= size:
            return buffer.getvalue()
        side = int(side * 1.15)


def measure(image: bytes) -> dict[str, float]:
    started = time.perf_counter()
    as_base64 = len(RunBody(FIELDS, io.BytesIO(image), len(image)).encode())
    base64_seconds = time.perf_counter() - started
    started = time.perf_counter()
    as_array = len(
        json.dumps({**FIELDS, "image": list(image)}, separators=(",", ":")).encode()
    )
    array_seconds = time.perf_counter() - started
    spaced = len(json.dumps({**FIELDS, "image": list(image)}).encode())
    return {
        "image": len(image),
        "base64": as_base64,
        "array": as_array,
        "array_spaced": spaced,
        "base64_seconds": base64_seconds,
        "array_seconds": array_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=2.0)
    args = parser.parse_args()

    image = jpeg_of_about(int(args.megabytes * MB))
    result = measure(image)
    uniform = measure(os.urandom(MB))
    per_mb = {key: result[key] / result["image"] * MB for key in ("base64", "array")}

    print(f"image: JPEG of {result['image']:,} bytes ({result['image'] / MB:.2f} MB)")
    print(
        f"base64 body:        {result['base64']:>12,} bytes "
        f"({result['base64'] / result['image']:.3f} x image, "
        f"encoded in {result['base64_seconds'] * 1000:.0f} ms)"
    )
    print(
        f"integer array body: {result['array']:>12,} bytes "
        f"({result['array'] / result['image']:.3f} x image, "
        f"encoded in {result['array_seconds'] * 1000:.0f} ms)"
    )
    print(
        f"  with json.dumps' default ', ' separators: {result['array_spaced']:,} bytes"
    )
    print(f"ratio array / base64: {result['array'] / result['base64']:.2f}")
    print(
        f"per MB of image: base64 {per_mb['base64'] / MB:.3f} MB, "
        f"integer array {per_mb['array'] / MB:.3f} MB"
    )
    wanted = args.megabytes * MB
    print(
        f"scaled to a {args.megabytes:g} MB image: base64 "
        f"{per_mb['base64'] * wanted / MB / MB:.2f} MB, integer array "
        f"{per_mb['array'] * wanted / MB / MB:.2f} MB"
    )
    print(
        f"per MB of uniformly random bytes: base64 {uniform['base64'] / MB:.3f} MB, "
        f"integer array {uniform['array'] / MB:.3f} MB"
    )


if __name__ == "__main__":
    main()
