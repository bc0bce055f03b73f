"""The Cloudflare queue backend against the emulator, with assertions on the
exact requests it sends."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable

import pytest
from django.core.exceptions import ImproperlyConfigured

from django_cf_ingest.emulator import FaultPolicy
from django_cf_ingest.emulator.broker import StoredMessage
from django_cf_ingest.exceptions import PermanentQueueError, TransientQueueError
from django_cf_ingest.queues import Retry
from django_cf_ingest.queues.cloudflare import (
    CloudflareBackend,
    QueueNotFound,
    ack_warnings,
    decode_body,
)
from django_cf_ingest.queues.cloudflare_api import (
    CloudflarePermanentError,
    CloudflareTransientError,
)
from django_cf_ingest.retry_after import parse_retry_after

from . import cloudflare_support
from .cloudflare_support import ACCOUNT_ID, QUEUE, TOKEN, CloudflareSite

cloudflare = cloudflare_support.cloudflare
use_cloudflare = cloudflare_support.use_cloudflare

UseCloudflare = Callable[..., CloudflareBackend]


def operations(site: CloudflareSite) -> list[str]:
    return [r.operation for r in site.emulator.recorded()]


def test_push_and_batch_push_requests(
    cloudflare: CloudflareSite, use_cloudflare: UseCloudflare
) -> None:
    backend = use_cloudflare()

    backend.enqueue_batch([{"uploadId": 1}])
    backend.enqueue_batch([{"uploadId": 2}, {"uploadId": 3}], delay_seconds=2.5)

    listing, single, batch = cloudflare.emulator.recorded()
    assert (listing.method, listing.path) == (
        "GET",
        f"/client/v4/accounts/{ACCOUNT_ID}/queues",
    )
    assert (single.method, single.path) == ("POST", cloudflare.path("/messages"))
    assert single.body == {"body": {"uploadId": 1}, "content_type": "json"}
    assert single.headers["authorization"] == f"Bearer {TOKEN}"
    assert single.headers["content-type"] == "application/json"
    assert (batch.method, batch.path) == ("POST", cloudflare.path("/messages/batch"))
    assert batch.body == {
        "messages": [
            {"body": {"uploadId": 2}, "content_type": "json"},
            {"body": {"uploadId": 3}, "content_type": "json"},
        ],
        "delay_seconds": 3,
    }
    assert [r.status for r in cloudflare.emulator.recorded()] == [200, 200, 200]
    assert cloudflare.messages() == [{"uploadId": n} for n in (1, 2, 3)]


def test_an_id_is_used_as_is(
    cloudflare: CloudflareSite, use_cloudflare: UseCloudflare
) -> None:
    backend = use_cloudflare(QUEUE=cloudflare.queue_id.upper())

    backend.enqueue_batch([{"uploadId": 1}])

    assert operations(cloudflare) == ["queues-push-message"]


def test_batches_stay_within_count_and_byte_limits(
    cloudflare: CloudflareSite, use_cloudflare: UseCloudflare
) -> None:
    backend = use_cloudflare(QUEUE=cloudflare.queue_id)

    backend.enqueue_batch([{"uploadId": n} for n in range(250)])
    backend.enqueue_batch([{"uploadId": n, "note": "x" * 60_000} for n in range(5)])

    batches = cloudflare.emulator.recorded("queues-push-messages")
    assert [len(r.body["messages"]) for r in batches] == [100, 100, 50, 4]
    # The fifth large body did not fit: it went alone, as a single push.
    (single,) = cloudflare.emulator.recorded("queues-push-message")
    assert single.body["body"]["uploadId"] == 4
    for request in batches:
        size = sum(
            len(json.dumps(m["body"], separators=(",", ":"))) + 100
            for m in request.body["messages"]
        )
        assert size <= 256_000
        assert request.status == 200
    assert len(cloudflare.messages()) == 255


def test_a_message_over_128_kb_is_refused_before_sending(
    cloudflare: CloudflareSite, use_cloudflare: UseCloudflare
) -> None:
    backend = use_cloudflare(QUEUE=cloudflare.queue_id)

    with pytest.raises(PermanentQueueError, match="128000 bytes"):
        backend.enqueue_batch([{"uploadId": 1}, {"blob": "x" * 128_000}])

    assert cloudflare.emulator.recorded() == []


def test_rate_limits_and_server_errors_are_transient(
    cloudflare: CloudflareSite, use_cloudflare: UseCloudflare
) -> None:
    backend = use_cloudflare(QUEUE=cloudflare.queue_id)
    cloudflare.emulator.faults = FaultPolicy(
        rate=1, rate_limited_share=1, retry_after=7
    )

    with pytest.raises(CloudflareTransientError) as limited:
        backend.enqueue_batch([{"uploadId": 1}])
    cloudflare.emulator.faults = FaultPolicy(rate=1, rate_limited_share=0)
    with pytest.raises(CloudflareTransientError) as failed:
        backend.receive(5, visibility_timeout=30)

    assert limited.value.status_code == 429
    assert limited.value.codes == (10250,)
    assert limited.value.retry_after == 7
    assert "code 10250: Queue overloaded" in str(limited.value)
    assert failed.value.status_code == 500
    assert failed.value.codes == (15000,)
    assert cloudflare.messages() == []


def test_other_client_errors_are_permanent_and_never_show_the_token(
    cloudflare: CloudflareSite, use_cloudflare: UseCloudflare
) -> None:
    backend = use_cloudflare(QUEUE=cloudflare.queue_id, API_TOKEN="wrong-secret-token")

    with pytest.raises(CloudflarePermanentError) as unauthorized:
        backend.enqueue_batch([{"uploadId": 1}])
    missing = use_cloudflare(QUEUE="f" * 32)
    with pytest.raises(CloudflarePermanentError) as not_found:
        missing.enqueue_batch([{"uploadId": 1}])

    assert unauthorized.value.status_code == 401
    assert unauthorized.value.codes == (10106,)
    assert unauthorized.value.is_auth_failure
    assert "wrong-secret-token" not in str(unauthorized.value)
    assert not_found.value.codes == (10104,)
    assert isinstance(not_found.value, PermanentQueueError)


def test_an_unreachable_api_is_transient(
    cloudflare: CloudflareSite, use_cloudflare: UseCloudflare
) -> None:
    backend = use_cloudflare(QUEUE=cloudflare.queue_id, TIMEOUT=2)
    cloudflare.server.stop()

    with pytest.raises(TransientQueueError, match="could not reach the API"):
        backend.enqueue_batch([{"uploadId": 1}])


def test_a_queue_name_is_resolved_once_across_pages(
    cloudflare: CloudflareSite, use_cloudflare: UseCloudflare
) -> None:
    for n in range(25):
        cloudflare.emulator.add_queue(f"other-{n:02d}", consumer=None)
    cloudflare.emulator.add_queue("late-queue")
    backend = use_cloudflare(QUEUE="late-queue")

    backend.enqueue_batch([{"uploadId": 1}])
    backend.enqueue_batch([{"uploadId": 2}])

    listings = cloudflare.emulator.recorded("queues-list")
    assert [r.query for r in listings] == [{}, {"page": "2"}]
    assert cloudflare.messages("late-queue") == [{"uploadId": 1}, {"uploadId": 2}]
    with pytest.raises(QueueNotFound, match=r"No queue named 'nope'.*ai-ingest"):
        use_cloudflare(QUEUE="nope").queue_id()


def test_receive_sends_batch_size_and_visibility_and_decodes_bodies(
    cloudflare: CloudflareSite, use_cloudflare: UseCloudflare
) -> None:
    backend = use_cloudflare(BATCH_SIZE=3)
    backend.enqueue_batch([{"uploadId": 11}, {"uploadId": 12}])
    cloudflare.emulator.clear_records()

    messages = backend.receive(10, visibility_timeout=45)

    (pull,) = cloudflare.emulator.recorded()
    assert pull.path == cloudflare.path("/messages/pull")
    assert pull.body == {"batch_size": 3, "visibility_timeout_ms": 45_000}
    assert [m.body for m in messages] == [{"uploadId": 11}, {"uploadId": 12}]
    assert [m.upload_id() for m in messages] == [11, 12]
    assert {m.attempts for m in messages} == {1}
    assert all(m.lease_id and len(m.id) == 32 for m in messages)
    assert messages[0].extra["content_type"] == "json"
    assert backend.backlog() == 2  # from the pull's answer, no request
    assert len(cloudflare.emulator.recorded()) == 1


def test_the_visibility_option_overrides_and_limits_are_kept(
    cloudflare: CloudflareSite, use_cloudflare: UseCloudflare
) -> None:
    use_cloudflare(VISIBILITY_TIMEOUT_MS=120_000).receive(500, visibility_timeout=5)
    use_cloudflare().receive(5, visibility_timeout=10**6)

    bodies = [r.body for r in cloudflare.emulator.recorded("queues-pull-messages")]
    assert bodies == [
        {"batch_size": 100, "visibility_timeout_ms": 120_000},
        {"batch_size": 5, "visibility_timeout_ms": 43_200_000},
    ]


def test_undecodable_bodies_come_back_with_the_reason(
    cloudflare: CloudflareSite, use_cloudflare: UseCloudflare
) -> None:
    backend = use_cloudflare()
    queue = cloudflare.emulator.queue(QUEUE)
    with cloudflare.emulator.broker.lock:
        for content_type, body in (("text", "not json"), ("v8", {"opaque": 1})):
            message = StoredMessage(
                id=f"{content_type:0>32}",
                body=body,
                content_type=content_type,
                size=200,
                timestamp_ms=1,
            )
            cloudflare.emulator.broker._store(queue, message, 0)

    text, v8 = backend.receive(5, visibility_timeout=30)

    assert text.body == "not json"
    assert text.upload_id() is None
    assert v8.upload_id() is None
    assert "cannot be decoded outside Workers" in v8.extra["decode_error"]


def test_decode_body_is_tolerant() -> None:
    encoded = base64.b64encode(b'{"uploadId": 5}').decode()

    assert decode_body(encoded, "json") == ({"uploadId": 5}, "")
    assert decode_body('{"uploadId": 5}', "json") == ({"uploadId": 5}, "")
    assert decode_body({"uploadId": 5}, "json") == ({"uploadId": 5}, "")
    assert decode_body("%%%", "json") == ("%%%", "json body is not base64")
    not_json = base64.b64encode(b"\xff\xfe").decode()
    assert decode_body(not_json, "bytes") == (not_json, "bytes body does not hold JSON")


def test_settle_sends_acks_and_retries_in_one_call(
    cloudflare: CloudflareSite, use_cloudflare: UseCloudflare
) -> None:
    backend = use_cloudflare(ACK_DELAY_MS=0)
    backend.enqueue_batch([{"uploadId": n} for n in range(4)])
    one, two, three, four = backend.receive(4, visibility_timeout=30)
    cloudflare.emulator.clear_records()

    backend.settle([one, two], [Retry(three, 1.2), Retry(four, 10**6)])

    (call,) = cloudflare.emulator.recorded()
    assert call.path == cloudflare.path("/messages/ack")
    assert call.body == {
        "acks": [{"lease_id": one.lease_id}, {"lease_id": two.lease_id}],
        "retries": [
            {"lease_id": three.lease_id, "delay_seconds": 2},
            {"lease_id": four.lease_id, "delay_seconds": 43_200},
        ],
    }
    assert call.response["result"] == {"ackCount": 2, "retryCount": 2, "warnings": {}}
    backend.settle([], [])
    assert len(cloudflare.emulator.recorded()) == 1


def test_acks_held_back_by_a_failed_call_go_with_the_next_one(
    cloudflare: CloudflareSite, use_cloudflare: UseCloudflare
) -> None:
    backend = use_cloudflare(ACK_DELAY_MS=0)
    backend.enqueue_batch([{"uploadId": n} for n in range(3)])
    one, two, three = backend.receive(3, visibility_timeout=30)
    cloudflare.emulator.faults = FaultPolicy(rate=1, rate_limited_share=0)

    with pytest.raises(CloudflareTransientError):
        backend.settle([one], [Retry(two, 5)])
    cloudflare.emulator.faults = FaultPolicy()
    backend.settle([three], [])  # joins the held-back ones, which wait
    assert len(cloudflare.emulator.recorded("queues-ack-messages")) == 1
    time.sleep(0.6)
    backend.settle([], [])

    failed, retried = cloudflare.emulator.recorded("queues-ack-messages")
    assert failed.refused
    assert retried.body == {
        "acks": [{"lease_id": one.lease_id}, {"lease_id": three.lease_id}],
        "retries": [{"lease_id": two.lease_id, "delay_seconds": 5}],
    }
    assert retried.response["result"]["ackCount"] == 2
    assert cloudflare.messages() == [{"uploadId": 1}]


def test_settlements_within_the_ack_delay_share_one_call(
    cloudflare: CloudflareSite, use_cloudflare: UseCloudflare
) -> None:
    backend = use_cloudflare(ACK_DELAY_MS=300)
    backend.enqueue_batch([{"uploadId": n} for n in range(4)])
    one, two, three, four = backend.receive(4, visibility_timeout=30)

    backend.settle([one], [])
    backend.settle([], [Retry(two, 3)])
    assert cloudflare.emulator.recorded("queues-ack-messages") == []
    time.sleep(0.35)
    backend.settle([three], [])  # finds the first two due: one call for all
    backend.settle([four], [])
    backend.close()  # sends what is left

    first, last = cloudflare.emulator.recorded("queues-ack-messages")
    assert first.body == {
        "acks": [{"lease_id": one.lease_id}, {"lease_id": three.lease_id}],
        "retries": [{"lease_id": two.lease_id, "delay_seconds": 3}],
    }
    assert last.body == {"acks": [{"lease_id": four.lease_id}]}
    assert cloudflare.messages() == [{"uploadId": 1}]


def test_release_retries_without_delay_and_the_next_delivery_counts(
    cloudflare: CloudflareSite, use_cloudflare: UseCloudflare
) -> None:
    backend = use_cloudflare()
    backend.enqueue_batch([{"uploadId": 1}])
    (message,) = backend.receive(1, visibility_timeout=30)

    backend.release([message])

    (release,) = cloudflare.emulator.recorded("queues-ack-messages")
    assert release.body == {
        "retries": [{"lease_id": message.lease_id, "delay_seconds": 0}]
    }
    (again,) = backend.receive(1, visibility_timeout=30)
    assert again.id == message.id
    assert again.attempts == 2


def test_dead_letter_pushes_body_and_reason_then_acks(
    cloudflare: CloudflareSite, use_cloudflare: UseCloudflare
) -> None:
    cloudflare.emulator.add_queue("ai-ingest-dead", consumer=None)
    backend = use_cloudflare(DEAD_LETTER_QUEUE="ai-ingest-dead", ACK_DELAY_MS=0)
    backend.enqueue_batch([{"upload": "wrong"}])
    (message,) = backend.receive(1, visibility_timeout=30)

    backend.dead_letter(message, "message body is not {uploadId}")

    assert cloudflare.messages("ai-ingest-dead") == [
        {
            "body": {"upload": "wrong"},
            "reason": "message body is not {uploadId}",
            "attempts": 1,
            "messageId": message.id,
            "queue": QUEUE,
        }
    ]
    assert cloudflare.messages() == []
    assert operations(cloudflare)[-2:] == ["queues-push-message", "queues-ack-messages"]


def test_dead_letter_without_a_queue_acks(
    cloudflare: CloudflareSite, use_cloudflare: UseCloudflare
) -> None:
    backend = use_cloudflare(ACK_DELAY_MS=0)
    backend.enqueue_batch([{"uploadId": 1}])
    (message,) = backend.receive(1, visibility_timeout=30)

    backend.dead_letter(message, "gave up")

    assert cloudflare.messages() == []


def test_backlog_falls_back_to_the_metrics_operation(
    cloudflare: CloudflareSite, use_cloudflare: UseCloudflare
) -> None:
    backend = use_cloudflare(ACK_DELAY_MS=0)
    backend.enqueue_batch([{"uploadId": n} for n in range(3)])
    messages = backend.receive(3, visibility_timeout=30)
    backend.settle(messages[:1], [])
    cloudflare.emulator.clear_records()

    assert backend.backlog() == 2

    assert operations(cloudflare) == ["queues-get-metrics"]


def test_ack_warnings_map_or_list() -> None:
    assert ack_warnings({"lease-a": "Unknown lease"}) == ["Unknown lease"]
    assert ack_warnings(["lease expired"]) == ["lease expired"]
    assert ack_warnings(None) == []


def test_retry_after_header_forms() -> None:
    assert parse_retry_after("12") == 12
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_configuration_checks(use_cloudflare: UseCloudflare) -> None:
    empty = CloudflareBackend({})
    plain_http = CloudflareBackend(
        {
            "ACCOUNT_ID": "acct",
            "API_TOKEN": "t",
            "QUEUE": "q",
            "API_BASE_URL": "http://cf.example.com/client/v4",
            "VISIBILITY_TIMEOUT_MS": 5000,
        }
    )

    assert [m.id for m in empty.check()] == [
        "cf_ingest.E040",
        "cf_ingest.E041",
        "cf_ingest.E042",
    ]
    assert [m.id for m in plain_http.check()] == [
        "cf_ingest.W040",
        "cf_ingest.W041",
        "cf_ingest.W042",
    ]
    assert use_cloudflare().check() == []
    with pytest.raises(ImproperlyConfigured, match="unknown key"):
        CloudflareBackend({"QUEUE_ID": "x"})
    with pytest.raises(ImproperlyConfigured, match="CONSUMER"):
        CloudflareBackend({"CONSUMER": "push"})
    with pytest.raises(ImproperlyConfigured, match="BATCH_SIZE"):
        CloudflareBackend({"BATCH_SIZE": 500})
    assert CloudflareBackend({"CONSUMER": "worker"}).can_receive is False
    with pytest.raises(ImproperlyConfigured, match="CF_API_TOKEN"):
        empty.enqueue_batch([{"uploadId": 1}])
