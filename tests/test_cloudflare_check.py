"""``manage.py cf_ingest_check`` against the emulator: a healthy setup, and the
problems it names."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from django.core.management import CommandError, call_command

from django_cf_ingest.emulator import READ_PERMISSIONS
from django_cf_ingest.queues.cloudflare import CloudflareBackend

from . import cloudflare_support
from .cloudflare_support import QUEUE, CloudflareSite

cloudflare = cloudflare_support.cloudflare
use_cloudflare = cloudflare_support.use_cloudflare

UseCloudflare = Callable[..., CloudflareBackend]


def check(*args: str) -> str:
    out = io.StringIO()
    call_command("cf_ingest_check", *args, stdout=out)
    return out.getvalue()


def test_a_healthy_setup(
    cloudflare: CloudflareSite, use_cloudflare: UseCloudflare
) -> None:
    use_cloudflare()
    use_cloudflare().enqueue_batch([{"uploadId": 1}, {"uploadId": 2}])

    output = check()

    assert (
        f"Queue: {QUEUE} id {cloudflare.queue_id} (resolved from '{QUEUE}')" in output
    )
    assert "API token: accepted" in output
    assert "Consumers: 1" in output
    assert "  - http_pull batch_size=5 max_retries=10" in output
    assert "Backlog: 2 message(s)" in output
    assert "This site: pulls with cf_ingest_consume" in output
    assert "WARNING" not in output
    assert output.rstrip().endswith("OK")
    # Nothing but reads and an empty ack.
    assert cloudflare.messages() == [{"uploadId": 1}, {"uploadId": 2}]
    ack = cloudflare.emulator.recorded("queues-ack-messages")[-1]
    assert ack.body == {"acks": []}


def test_a_wrong_token(
    cloudflare: CloudflareSite, use_cloudflare: UseCloudflare
) -> None:
    use_cloudflare(API_TOKEN="not-the-token")

    with pytest.raises(CommandError) as error:
        check()

    message = str(error.value)
    assert "Cloudflare rejected the API token" in message
    assert "code 10106" in message
    assert "Set CF_API_TOKEN" in message
    assert "not-the-token" not in message


def test_a_token_without_write_permission(
    cloudflare: CloudflareSite, use_cloudflare: UseCloudflare
) -> None:
    cloudflare.emulator.tokens["read-only"] = READ_PERMISSIONS
    use_cloudflare(API_TOKEN="read-only")

    with pytest.raises(CommandError, match="Queues Read and Queues Write") as error:
        check()

    assert "HTTP 403" in str(error.value)


def test_a_wrong_queue_name_or_id(
    cloudflare: CloudflareSite, use_cloudflare: UseCloudflare
) -> None:
    use_cloudflare(QUEUE="ai-ingset")
    with pytest.raises(CommandError) as by_name:
        check()
    use_cloudflare(QUEUE="0" * 32)
    with pytest.raises(CommandError) as by_id:
        check()

    assert "No queue named 'ai-ingset'" in str(by_name.value)
    assert "(queues: ai-ingest)" in str(by_name.value)
    assert "CF_AI_INGEST_QUEUE_ID" in str(by_name.value)
    assert f"There is no queue {'0' * 32}" in str(by_id.value)
    assert "code 10104" in str(by_id.value)


def test_a_worker_consumer_while_the_site_pulls(
    cloudflare: CloudflareSite, use_cloudflare: UseCloudflare
) -> None:
    cloudflare.emulator.add_queue(
        QUEUE, consumer="worker", script_name="ai-ingest-worker", max_retries=10
    )
    use_cloudflare()

    output = check()
    with pytest.raises(CommandError) as strict:
        check("--strict")

    assert "  - worker script=ai-ingest-worker" in output
    assert "WARNING: The queue is consumed by the Worker ai-ingest-worker" in output
    assert "CF_QUEUE_CONSUMER=worker" in output
    assert "OK with 1 warning(s)" in output
    assert strict.value.returncode == 2


def test_a_pull_consumer_while_the_site_expects_the_worker(
    cloudflare: CloudflareSite, use_cloudflare: UseCloudflare
) -> None:
    use_cloudflare(CONSUMER="worker")

    output = check()

    assert "This site: publishes only" in output
    assert "WARNING: The queue has an HTTP pull consumer" in output


def test_fewer_cloudflare_retries_than_attempts(
    cloudflare: CloudflareSite, use_cloudflare: UseCloudflare
) -> None:
    cloudflare.emulator.add_queue(QUEUE, max_retries=3)
    use_cloudflare()

    output = check()

    assert "after 4 deliveries (max_retries=3), before this site's MAX_ATTEMPTS=5" in (
        output
    )


def test_missing_settings_and_an_unreachable_api(
    cloudflare: CloudflareSite, use_cloudflare: UseCloudflare
) -> None:
    use_cloudflare(API_TOKEN="", ACCOUNT_ID="")
    with pytest.raises(CommandError) as missing:
        check()
    use_cloudflare(TIMEOUT=2)
    cloudflare.server.stop()
    with pytest.raises(CommandError) as unreachable:
        check()

    assert "no ACCOUNT_ID" in str(missing.value)
    assert "CF_ACCOUNT_ID" in str(missing.value)
    assert "no API_TOKEN" in str(missing.value)
    assert "cannot be reached" in str(unreachable.value)
    assert "CF_API_BASE_URL" in str(unreachable.value)


@pytest.mark.django_db
def test_the_database_queue() -> None:
    output = check()

    assert "Queue backend: DatabaseBackend" in output
    assert "Backlog: 0 message(s)" in output


def test_the_dead_letter_queue_must_exist(
    cloudflare: CloudflareSite, use_cloudflare: UseCloudflare
) -> None:
    cloudflare.emulator.add_queue("ai-ingest-dead", consumer=None)
    use_cloudflare(DEAD_LETTER_QUEUE="ai-ingest-dead")
    assert "Dead-letter queue: ai-ingest-dead id " in check()

    use_cloudflare(DEAD_LETTER_QUEUE="ai-ingest-gone")
    with pytest.raises(CommandError, match="CF_DEAD_LETTER_QUEUE"):
        check()


def test_retries_that_cover_every_attempt_are_fine(
    cloudflare: CloudflareSite, use_cloudflare: UseCloudflare
) -> None:
    # max_retries=4 means five deliveries: exactly MAX_ATTEMPTS.
    cloudflare.emulator.add_queue(QUEUE, max_retries=4)
    use_cloudflare()

    output = check()

    assert "deliveries (max_retries=" not in output
