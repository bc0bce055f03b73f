"""Cloudflare R2, played by moto's S3 server running in a thread on 127.0.0.1.

The site reaches it the way it reaches R2: django-storages' S3 backend with
the options ``django_cf_ingest.r2.r2_storage_options`` builds (region
``auto``, SigV4, checksums only when required, no ACLs), at an endpoint URL.
Every request the server receives is recorded with its headers, so a test can
assert that nothing R2 rejects was sent: the default request checksums of
boto3 1.36 and later (``x-amz-checksum-*``, ``x-amz-sdk-checksum-algorithm``)
and ``aws-chunked`` bodies with trailers.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Self

import boto3
from moto.server import ThreadedMotoServer

from django_cf_ingest.r2 import r2_client_config, r2_storage_options

ACCESS_KEY = "r2-fake-access-key-id"
SECRET_KEY = "r2-fake-secret-access-key-0123456789"


@dataclass(frozen=True)
class S3Request:
    method: str
    path: str
    query: str
    #: Header names in lower case.
    headers: dict[str, str]

    def rejected_by_r2(self) -> list[str]:
        """The headers of this request that R2 refuses."""
        found = [
            name
            for name in self.headers
            if name.startswith("x-amz-checksum-")
            or name in ("x-amz-sdk-checksum-algorithm", "x-amz-trailer")
        ]
        if "aws-chunked" in self.headers.get("content-encoding", ""):
            found.append("content-encoding: aws-chunked")
        if self.headers.get("x-amz-content-sha256", "").startswith("STREAMING-"):
            found.append("x-amz-content-sha256: streaming")
        return found


class FakeR2:
    """moto's S3 server in a thread; see the module docstring."""

    def __init__(self) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.requests: list[S3Request] = []
        self._lock = threading.Lock()

    def start(self) -> Self:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server.start()
        wsgi = self._server._server  # the werkzeug server behind the thread
        assert wsgi is not None
        inner = wsgi.app

        def recording_app(environ: dict[str, Any], start_response: Any) -> Any:
            headers = {
                key[5:].replace("_", "-").lower(): value
                for key, value in environ.items()
                if key.startswith("HTTP_")
            }
            for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                if environ.get(key):
                    headers[key.replace("_", "-").lower()] = environ[key]
            with self._lock:
                self.requests.append(
                    S3Request(
                        environ["REQUEST_METHOD"],
                        environ.get("PATH_INFO", ""),
                        environ.get("QUERY_STRING", ""),
                        headers,
                    )
                )
            return inner(environ, start_response)

        wsgi.app = recording_app
        return self

    def stop(self) -> None:
        self._server.stop()

    @property
    def endpoint_url(self) -> str:
        host, port = self._server.get_host_and_port()
        return f"http://{host}:{port}"

    def client(self, config: Any = None) -> Any:
        """A boto3 S3 client for the fake, configured for R2 unless told."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name="auto",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=config or r2_client_config(),
        )

    def create_bucket(self, name: str | None = None) -> str:
        """A new bucket in region ``auto``, which needs a ``LocationConstraint``."""
        name = name or f"uploads-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(
            Bucket=name, CreateBucketConfiguration={"LocationConstraint": "auto"}
        )
        return name

    def storage_options(self, bucket: str) -> dict[str, Any]:
        return r2_storage_options(
            bucket=bucket,
            endpoint_url=self.endpoint_url,
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
        )

    def storages(self, bucket: str) -> dict[str, Any]:
        """A ``STORAGES`` setting with uploads on this bucket."""
        return {
            "default": {
                "BACKEND": "storages.backends.s3.S3Storage",
                "OPTIONS": self.storage_options(bucket),
            },
            "staticfiles": {
                "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
            },
        }

    def environment(self, bucket: str) -> dict[str, str]:
        """The variables that put the example site's uploads on this bucket."""
        return {
            "R2_BUCKET": bucket,
            "R2_ENDPOINT_URL": self.endpoint_url,
            "R2_ACCESS_KEY_ID": ACCESS_KEY,
            "R2_SECRET_ACCESS_KEY": SECRET_KEY,
        }

    def rejected(self) -> list[tuple[str, str, list[str]]]:
        """Requests that carried something R2 refuses, and what."""
        with self._lock:
            requests = list(self.requests)
        return [
            (request.method, request.path, found)
            for request in requests
            if (found := request.rejected_by_r2())
        ]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()
