"""django-storages options for Cloudflare R2."""

from __future__ import annotations

from typing import Any

from .exceptions import MissingExtra


def r2_client_config() -> Any:
    """A botocore ``Config`` for R2: SigV4, and checksums only where required,
    since R2 rejects the default request checksums of boto3 1.36 and later."""
    try:
        from botocore.config import Config
    except ImportError as exc:
        raise MissingExtra("R2 storage", "r2") from exc
    return Config(
        signature_version="s3v4",
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"max_attempts": 5, "mode": "standard"},
    )


def r2_storage_options(
    *,
    bucket: str,
    endpoint_url: str,
    access_key: str,
    secret_key: str,
    signed_url_expiry: int = 600,
) -> dict[str, Any]:
    """``STORAGES[...]["OPTIONS"]`` for ``storages.backends.s3.S3Storage`` on R2.

    Private bucket: no ACLs (R2 implements none), no custom domain (R2 signs
    only its own endpoint), and ``url()`` returns a signed GET URL.
    """
    return {
        "bucket_name": bucket,
        "endpoint_url": endpoint_url,
        "access_key": access_key,
        "secret_key": secret_key,
        "region_name": "auto",
        "default_acl": None,
        "querystring_auth": True,
        "querystring_expire": signed_url_expiry,
        "file_overwrite": False,
        "client_config": r2_client_config(),
    }
