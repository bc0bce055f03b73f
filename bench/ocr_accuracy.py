"""Speed, accuracy and memory of the offline ocr provider on the sample set.

    .venv/bin/python bench/ocr_accuracy.py [--rounds 2] [--threads 0]
        [--detection-side 1280]

Loads the engine once (reported apart), then reads every document listed in
``example_project/demo/samples/manifest.json`` through ``OcrProvider.extract``
``--rounds`` times, and prints the time per document (OCR and extraction,
with the kind of each page), documents per second by wall clock and by the
process's CPU time (which a busy machine does not inflate), the accuracy of
each field against the manifest's expected values (exact equality), and the
process's peak RSS after each round.

The baseline, timed in the same process, is decoding each document into its
page images (Pillow for images, pypdfium2 at the provider's 144 dpi for every
PDF page): the least any reader of these files must do. The time per
document is also printed as a ratio of it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def decode_seconds(content: bytes, is_pdf: bool) -> float:
    """Seconds to decode a document into page images: the baseline."""
    import io

    from PIL import Image

    started = time.perf_counter()
    if is_pdf:
        import pypdfium2

        document = pypdfium2.PdfDocument(content)
        try:
            for page in document:
                page.render(scale=144 / 72).to_pil().convert("RGB")
        finally:
            document.close()
    else:
        with Image.open(io.BytesIO(content)) as image:
            image.convert("RGB")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--detection-side", type=int, default=1280)
    args = parser.parse_args()

    import django

    django.setup()
    from PIL import Image

    from django_cf_ingest.providers.base import ExtractionRequest
    from django_cf_ingest.providers.ocr import OcrProvider, engine
    from django_cf_ingest.registry import get_spec
    from example_project.demo.samples import SAMPLES_DIR

    manifest = json.loads((SAMPLES_DIR / "manifest.json").read_text())
    options = {"THREADS": args.threads, "DETECTION_SIDE": args.detection_side}
    provider = OcrProvider("ocr", options)
    before_engine = peak_rss_mb()
    started = time.perf_counter()
    engine.recognise(
        Image.new("RGB", (64, 32), "white"), args.threads, args.detection_side
    )
    print(
        f"engine {engine.model_name()} loaded in {time.perf_counter() - started:.2f} s "
        f"(peak RSS {before_engine:.0f} -> {peak_rss_mb():.0f} MB)"
    )

    baseline: dict[str, float] = {}
    for entry in manifest:
        content = (SAMPLES_DIR / entry["file"]).read_bytes()
        is_pdf = entry["file"].endswith(".pdf")
        baseline[entry["file"]] = min(decode_seconds(content, is_pdf) for _ in range(3))

    timings: dict[str, list[float]] = defaultdict(list)
    cpu_timings: dict[str, list[float]] = defaultdict(list)
    right: dict[str, int] = defaultdict(int)
    seen: dict[str, int] = defaultdict(int)
    total = 0.0
    cpu_total = 0.0
    for round_number in range(args.rounds):
        for entry in manifest:
            spec = get_spec(entry["type"])
            assert spec is not None
            name = entry["file"]
            request = ExtractionRequest(
                spec=spec,
                instructions=spec.instructions,
                content=(SAMPLES_DIR / name).read_bytes(),
                content_type="application/pdf"
                if name.endswith(".pdf")
                else "image/png",
                filename=name,
            )
            started, cpu_started = time.perf_counter(), time.process_time()
            result = provider.extract(request)
            elapsed = time.perf_counter() - started
            cpu_timings[name].append(time.process_time() - cpu_started)
            cpu_total += cpu_timings[name][-1]
            total += elapsed
            timings[name].append(elapsed)
            if round_number:
                continue
            data = result.data or {}
            sources = "+".join(p["source"] for p in result.raw_response["pages"])
            wrong = [k for k, v in entry["expected"].items() if data.get(k) != v]
            for field, expected in entry["expected"].items():
                key = f"{entry['type']}.{field}"
                seen[key] += 1
                right[key] += int(data.get(field) == expected)
            status = "all fields right" if not wrong else f"wrong: {', '.join(wrong)}"
            print(
                f"  {name:<30} {sources:<9} {elapsed:6.2f} s  "
                f"confidence {result.confidence:.3f}  "
                f"peak RSS {peak_rss_mb():4.0f} MB  {status}"
            )
        print(f"round {round_number + 1} done: peak RSS {peak_rss_mb():.0f} MB")

    documents = args.rounds * len(manifest)
    print()
    print(
        "seconds per document, median of rounds (wall / CPU), "
        "and wall time as a ratio of decoding the document (baseline):"
    )
    for name, values in timings.items():
        cpu = sorted(cpu_timings[name])[len(values) // 2]
        wall = sorted(values)[len(values) // 2]
        print(
            f"  {name:<30} {wall:6.2f} / {cpu:6.2f}   "
            f"{wall / baseline[name]:7.0f}x of {baseline[name] * 1000:6.1f} ms"
        )
    median_total = sum(sorted(v)[len(v) // 2] for v in timings.values())
    print(
        f"  {'all documents':<30} {median_total:6.2f} s        "
        f"{median_total / sum(baseline.values()):7.0f}x of "
        f"{sum(baseline.values()) * 1000:6.1f} ms"
    )
    print(
        f"documents/second: {documents / total:.2f} by wall clock, "
        f"{documents / cpu_total:.2f} per CPU second ({documents} documents, "
        f"{total:.1f} s wall, {cpu_total:.1f} s CPU, "
        f"onnxruntime threads={args.threads or 'auto'}, "
        f"detection side {args.detection_side}, {os.cpu_count()} cores)"
    )
    print()
    print("accuracy per field (exact match):")
    for key in seen:
        print(f"  {key:<42} {right[key]}/{seen[key]}")
    fields = sum(seen.values())
    print(
        f"  {'all fields':<42} {sum(right.values())}/{fields} "
        f"({100 * sum(right.values()) / fields:.1f}%)"
    )
    print(f"peak RSS: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
