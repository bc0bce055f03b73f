"""Peak memory of the Stage 2 consumer handling one large image.

    .venv/bin/python bench/stage2_memory.py [--megabytes 20]

Runs everything on 127.0.0.1 in a throwaway directory: moto's S3 server as
R2 and the fake Workers AI, each in its own process, and the site (SQLite, the
meta and complete endpoints on a WSGI server thread) in the measuring process.
An upload of a PNG of about the given size (random pixels, so it does not
compress) and two small ones are stored on the fake R2. A fresh process then
handles the first small upload to warm up (imports, clients, boto3's service
model), and handles the second small one and the large one under
``tracemalloc``, each after a reset, reporting the peak of traced allocations
and the growth of the peak RSS: as a ratio to the file's size, and above the
small upload's run as the baseline.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECRET = "test-secret-0123456789abcdef"
ACCESS_KEY = "bench-access-key"
SECRET_KEY = "bench-secret-key-0123456789"
BUCKET = "bench-uploads"
MB = 1_000_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


# Child processes --------------------------------------------------------------


def django_setup(site_port: int | None = None) -> None:
    overrides = json.loads(os.environ.get("CF_INGEST_TEST_OVERRIDES", "{}"))
    if site_port is not None:
        overrides["INTERNAL_INGEST_BASE_URL"] = f"http://127.0.0.1:{site_port}"
    os.environ["CF_INGEST_TEST_OVERRIDES"] = json.dumps(overrides)
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    import django

    django.setup()


def noise_png(size: int) -> bytes:
    from PIL import Image

    side = int((size / 3) ** 0.5)
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=0)
    return buffer.getvalue()


def setup(megabytes: float) -> None:
    """Create the database, the bucket and the two uploads; print their ids."""
    django_setup()
    import boto3
    from django.core.management import call_command

    from django_cf_ingest.r2 import r2_client_config
    from django_cf_ingest.services import create_upload
    from tests.conftest import make_png

    call_command("migrate", verbosity=0)
    boto3.client(
        "s3",
        endpoint_url=os.environ["R2_ENDPOINT_URL"],
        region_name="auto",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=r2_client_config(),
    ).create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "auto"}
    )
    small = [
        create_upload(io.BytesIO(make_png(name)), "big-five", name=f"{name}.png").pk
        for name in ("warm", "small")
    ]
    large = create_upload(
        io.BytesIO(noise_png(int(megabytes * MB))), "big-five", name="large.png"
    )
    print(json.dumps({"warm": small[0], "small": small[1], "large": large.pk}))


def measure(warm_id: int, upload_ids: list[int]) -> None:
    """Handle a warm-up upload, then each upload under tracemalloc; print what
    each cost."""
    port = free_port()
    django_setup(port)
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

    from django_cf_ingest.consumer.stage2 import Stage2Handler
    from django_cf_ingest.models import Upload

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadedWSGIServer(("127.0.0.1", port), Quiet)
    server.set_app(WSGIHandler())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    handler = Stage2Handler(concurrency=1)
    handler.handle(warm_id)

    runs = []
    for upload_id in upload_ids:
        size = Upload.objects.get(pk=upload_id).size
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        tracemalloc.start()
        started = time.perf_counter()
        decision = handler.handle(upload_id)
        seconds = time.perf_counter() - started
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        runs.append(
            {
                "size": size,
                "decision": f"{decision.action}/{decision.outcome}",
                "status": Upload.objects.get(pk=upload_id).status,
                "peak": peak,
                "rss_growth": rss_after - rss_before,
                "seconds": seconds,
            }
        )
    handler.close()
    server.shutdown()
    print(json.dumps(runs))


# The orchestrator ---------------------------------------------------------------


def child(env: dict[str, str], *args: str, script: str = __file__) -> Any:
    """Run ``script`` with ``args``; its last line of output, as JSON."""
    result = subprocess.run(
        [sys.executable, script, *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if result.returncode != 0:
        raise RuntimeError(result.stdout + result.stderr)
    answer: Any = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


@contextmanager
def edge_services(work: str, *, latency: float = 0.0) -> Iterator[dict[str, str]]:
    """Run moto's S3 server (for R2) and the fake Workers AI, answering after
    ``latency`` seconds; yield the environment of the site's processes."""
    s3_port = free_port()
    moto = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(s3_port)]
    fake = [sys.executable, "-m", "tests.fakes.workers_ai", "--latency", str(latency)]
    processes = [
        subprocess.Popen(moto, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen(fake, cwd=ROOT, stdout=subprocess.PIPE, text=True),
    ]
    try:
        wait_for(s3_port)
        assert processes[1].stdout is not None
        ai_url = processes[1].stdout.readline().strip()
        from tests.fakes.workers_ai import ACCOUNT_ID, API_TOKEN

        overrides = {
            "INTERNAL_SECRETS": [SECRET],
            "PROVIDERS": {
                "workers_ai": {
                    "ACCOUNT_ID": ACCOUNT_ID,
                    "API_TOKEN": API_TOKEN,
                    "BASE_URL": ai_url + "/client/v4",
                }
            },
        }
        yield {
            **os.environ,
            "CF_INGEST_VAR_DIR": work,
            "CF_INGEST_TEST_OVERRIDES": json.dumps(overrides),
            "R2_BUCKET": BUCKET,
            "R2_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}",
            "R2_ACCESS_KEY_ID": ACCESS_KEY,
            "R2_SECRET_ACCESS_KEY": SECRET_KEY,
        }
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=20.0)
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="cf-ingest-bench-")
    with edge_services(work) as env:
        ids = child(env, "setup", str(args.megabytes))
        small, large = child(
            env, "measure", str(ids["warm"]), str(ids["small"]), str(ids["large"])
        )

    for label, run in (("small", small), ("large", large)):
        print(
            f"{label}: file {run['size']:,} bytes, {run['decision']}, upload "
            f"{run['status']}, {run['seconds']:.2f} s, tracemalloc peak "
            f"{run['peak'] / MB:.2f} MB, peak RSS growth "
            f"{run['rss_growth'] / MB:.2f} MB"
        )
    extra = large["peak"] - small["peak"]
    print(
        f"peak / file size: {large['peak'] / large['size']:.3f}; above the small "
        f"upload's run: {extra / MB:.2f} MB ({extra / large['size']:.3f} x file)"
    )
    print(f"peak RSS growth / file size: {large['rss_growth'] / large['size']:.3f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "setup":
        setup(float(sys.argv[2]))
    elif len(sys.argv) > 1 and sys.argv[1] == "measure":
        measure(int(sys.argv[2]), [int(arg) for arg in sys.argv[3:]])
    else:
        main()
