"""The Cloudflare Queues emulator: the API's documented semantics, its error
codes, fault injection, and OpenAPI validation of what it answers."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from django_cf_ingest.emulator import (
    READ_PERMISSIONS,
    Emulator,
    FaultPolicy,
    LostResponse,
)
from django_cf_ingest.emulator.faults import Refusal

from .subprocess_env import ROOT

ACCOUNT = "0123456789abcdef0123456789abcdef"
TOKEN = "emulator-test-token"
READ_ONLY = "read-only-token"


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    emulator = Emulator(
        account_id=ACCOUNT, token=TOKEN, tokens={READ_ONLY: READ_PERMISSIONS}
    )
    emulator.add_queue("jobs", max_retries=3, dead_letter_queue="jobs-dlq")
    emulator.add_queue("edge", consumer="worker", script_name="ingest-worker")
    yield emulator
    assert emulator.errors == []


@pytest.fixture
def api(emulator: Emulator) -> Iterator[httpx.Client]:
    with (
        emulator.serve() as server,
        httpx.Client(
            base_url=f"{server.base_url}/accounts/{ACCOUNT}/queues",
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as client,
    ):
        yield client


def qid(emulator: Emulator, name: str = "jobs") -> str:
    return emulator.queue(name).id


def push(
    api: httpx.Client, queue: str, messages: list[dict[str, Any]], **kw: Any
) -> Any:
    return api.post(f"/{queue}/messages/batch", json={"messages": messages, **kw})


def pull(api: httpx.Client, queue: str, **body: Any) -> dict[str, Any]:
    response = api.post(f"/{queue}/messages/pull", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["result"]
    return result


def ack(api: httpx.Client, queue: str, **body: Any) -> dict[str, Any]:
    response = api.post(f"/{queue}/messages/ack", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["result"]
    return result


def error_of(response: httpx.Response) -> tuple[int, int]:
    data = response.json()
    assert data["success"] is False
    return response.status_code, data["errors"][0]["code"]


def test_queues_consumers_and_paging(emulator: Emulator, api: httpx.Client) -> None:
    for n in range(25):
        emulator.add_queue(f"extra-{n:02d}", consumer=None)

    first = api.get("").json()
    second = api.get("", params={"page": 2}).json()

    assert first["success"] is True
    assert first["result_info"] == {
        "page": 1,
        "per_page": 20,
        "count": 20,
        "total_count": 28,
        "total_pages": 2,
    }
    names = [q["queue_name"] for q in first["result"] + second["result"]]
    assert names[:3] == ["jobs", "jobs-dlq", "edge"]
    assert len(names) == 28
    queue = api.get(f"/{qid(emulator)}").json()["result"]
    assert queue["queue_id"] == qid(emulator)
    assert re.fullmatch(r"[0-9a-f]{32}", queue["queue_id"])
    assert queue["consumers_total_count"] == 1
    (pull_consumer,) = api.get(f"/{qid(emulator)}/consumers").json()["result"]
    assert pull_consumer["type"] == "http_pull"
    assert pull_consumer["dead_letter_queue"] == "jobs-dlq"
    assert pull_consumer["settings"]["max_retries"] == 3
    (worker,) = api.get(f"/{qid(emulator, 'edge')}/consumers").json()["result"]
    assert (worker["type"], worker["script_name"]) == ("worker", "ingest-worker")


def test_authentication_and_permissions(emulator: Emulator, api: httpx.Client) -> None:
    queue = qid(emulator)
    no_token = httpx.post(
        f"{str(api.base_url).rstrip('/')}/{queue}/messages/pull", json={}
    )
    wrong = api.post(
        f"/{queue}/messages/pull", json={}, headers={"Authorization": "Bearer nope"}
    )
    read_only = api.post(
        f"/{queue}/messages",
        json={"body": {"uploadId": 1}, "content_type": "json"},
        headers={"Authorization": f"Bearer {READ_ONLY}"},
    )
    other_account = api.get(str(api.base_url).replace(ACCOUNT, "f" * 32) + queue)

    assert error_of(no_token) == (401, 10106)
    assert error_of(wrong) == (401, 10106)
    assert error_of(read_only) == (403, 10106)
    assert "queue.push" in read_only.json()["errors"][0]["message"]
    assert error_of(other_account) == (403, 10106)
    assert (
        api.get(
            f"/{queue}", headers={"Authorization": f"Bearer {READ_ONLY}"}
        ).status_code
        == 200
    )
    assert emulator.queue("jobs").messages == {}


def test_queue_id_not_name(emulator: Emulator, api: httpx.Client) -> None:
    assert error_of(api.get("/jobs")) == (400, 10107)
    assert error_of(api.get(f"/{'a' * 32}")) == (404, 10104)
    assert error_of(api.post(f"/{'a' * 32}/messages/pull", json={})) == (404, 10104)


def test_json_bodies_are_base64_on_pull_text_bodies_are_not(
    emulator: Emulator, api: httpx.Client
) -> None:
    queue = qid(emulator)
    one = api.post(
        f"/{queue}/messages", json={"body": {"uploadId": 7}, "content_type": "json"}
    )
    batch = push(api, queue, [{"body": "plain words", "content_type": "text"}])

    assert one.status_code == batch.status_code == 200
    metrics = batch.json()["result"]["metadata"]["metrics"]
    assert metrics["backlog_count"] == 2
    result = pull(api, queue, batch_size=10)
    assert result["message_backlog_count"] == 2
    by_type = {m["metadata"]["CF-Content-Type"]: m for m in result["messages"]}
    assert json.loads(base64.b64decode(by_type["json"]["body"])) == {"uploadId": 7}
    assert by_type["text"]["body"] == "plain words"
    for message in result["messages"]:
        assert message["attempts"] == 1
        assert re.fullmatch(r"[0-9a-f]{32}", message["id"])
        assert message["lease_id"]
        assert message["timestamp_ms"] > 0


def test_an_expired_lease_delivers_again_with_one_more_attempt(
    emulator: Emulator, api: httpx.Client
) -> None:
    queue = qid(emulator)
    push(api, queue, [{"body": {"uploadId": 1}, "content_type": "json"}])
    (first,) = pull(api, queue, visibility_timeout_ms=60_000)["messages"]

    assert pull(api, queue)["messages"] == []  # leased
    emulator.broker.advance(61)
    (second,) = pull(api, queue)["messages"]

    assert second["id"] == first["id"]
    assert second["attempts"] == 2
    assert second["lease_id"] != first["lease_id"]
    # Both holders may ack; the message goes once.
    assert ack(api, queue, acks=[{"lease_id": first["lease_id"]}])["ackCount"] == 1
    result = ack(api, queue, acks=[{"lease_id": second["lease_id"]}])
    assert result == {"ackCount": 0, "retryCount": 0, "warnings": {}}
    assert emulator.queue("jobs").messages == {}


def test_ack_and_retry_in_one_call(emulator: Emulator, api: httpx.Client) -> None:
    queue = qid(emulator)
    push(api, queue, [{"body": {"uploadId": n}} for n in (1, 2, 3)])
    messages = pull(api, queue, batch_size=3)["messages"]

    result = ack(
        api,
        queue,
        acks=[{"lease_id": messages[0]["lease_id"]}],
        retries=[
            {"lease_id": messages[1]["lease_id"], "delay_seconds": 30},
            {"lease_id": messages[2]["lease_id"]},
        ],
    )

    assert result == {"ackCount": 1, "retryCount": 2, "warnings": {}}
    (again,) = pull(api, queue, batch_size=10, visibility_timeout_ms=600_000)[
        "messages"
    ]
    assert again["id"] == messages[2]["id"]
    assert again["attempts"] == 2
    emulator.broker.advance(31)
    (later,) = pull(api, queue)["messages"]
    assert later["id"] == messages[1]["id"]
    assert later["attempts"] == 2


def test_a_superseded_or_unknown_lease_gets_a_warning(
    emulator: Emulator, api: httpx.Client
) -> None:
    queue = qid(emulator)
    push(api, queue, [{"body": {"uploadId": 1}}])
    (old,) = pull(api, queue, visibility_timeout_ms=1000)["messages"]
    emulator.broker.advance(2)
    (new,) = pull(api, queue)["messages"]

    result = ack(
        api,
        queue,
        retries=[{"lease_id": old["lease_id"], "delay_seconds": 0}],
        acks=[{"lease_id": "not-a-lease"}],
    )

    assert result["retryCount"] == 0
    assert set(result["warnings"]) == {old["lease_id"], "not-a-lease"}
    assert ack(api, queue, acks=[{"lease_id": new["lease_id"]}])["ackCount"] == 1


def test_max_retries_then_the_dead_letter_queue(
    emulator: Emulator, api: httpx.Client
) -> None:
    queue = qid(emulator)
    push(api, queue, [{"body": {"uploadId": 9}, "content_type": "json"}])

    for attempt in (1, 2, 3):
        (message,) = pull(api, queue)["messages"]
        assert message["attempts"] == attempt
        ack(api, queue, retries=[{"lease_id": message["lease_id"], "delay_seconds": 0}])

    assert pull(api, queue)["messages"] == []
    assert emulator.queue("jobs").exhausted == 1
    (dead,) = emulator.queue("jobs-dlq").messages.values()
    assert dead.body == {"uploadId": 9}
    assert dead.attempts == 0


def test_exhausted_without_a_dead_letter_queue_is_deleted(
    emulator: Emulator, api: httpx.Client
) -> None:
    emulator.add_queue("plain", max_retries=1)
    queue = qid(emulator, "plain")
    push(api, queue, [{"body": {"uploadId": 1}}])
    pull(api, queue, visibility_timeout_ms=1000)
    emulator.broker.advance(2)

    assert pull(api, queue)["messages"] == []  # the lease ran out on attempt 1
    assert emulator.queue("plain").messages == {}
    assert emulator.queue("plain").exhausted == 1


def test_message_batch_and_queue_delays(emulator: Emulator, api: httpx.Client) -> None:
    emulator.add_queue("slow", delivery_delay=100)
    queue, slow = qid(emulator), qid(emulator, "slow")
    push(
        api,
        queue,
        [{"body": {"n": 1}}, {"body": {"n": 2}, "delay_seconds": 50}],
        delay_seconds=20,
    )
    api.post(f"/{queue}/messages", json={"body": {"n": 3}, "content_type": "json"})
    api.post(f"/{slow}/messages", json={"body": {"n": 4}, "content_type": "json"})

    def bodies(queue_id: str) -> list[Any]:
        found = pull(api, queue_id, batch_size=10, visibility_timeout_ms=3_600_000)[
            "messages"
        ]
        return [json.loads(base64.b64decode(m["body"]))["n"] for m in found]

    assert bodies(queue) == [3]
    emulator.broker.advance(21)
    assert bodies(queue) == [1]
    emulator.broker.advance(30)
    assert bodies(queue) == [2]
    assert bodies(slow) == []
    emulator.broker.advance(50)
    assert bodies(slow) == [4]


def test_size_and_delay_limits(emulator: Emulator, api: httpx.Client) -> None:
    queue = qid(emulator)
    big = "x" * 127_950
    over_count = push(api, queue, [{"body": {"n": n}} for n in range(101)])
    over_message = api.post(
        f"/{queue}/messages", json={"body": big, "content_type": "text"}
    )
    over_batch = push(api, queue, [{"body": "y" * 100_000, "content_type": "text"}] * 3)
    bad_batch_delay = push(api, queue, [{"body": {"n": 1}}], delay_seconds=86_401)
    bad_delay = push(api, queue, [{"body": {"n": 1}, "delay_seconds": -1}])
    at_limit = push(api, queue, [{"body": {"n": n}} for n in range(100)])

    assert error_of(over_count) == (400, 10206)
    assert error_of(over_message) == (400, 10204)
    assert error_of(over_batch) == (400, 10205)
    assert error_of(bad_batch_delay) == (400, 10202)
    assert error_of(bad_delay) == (400, 10203)
    assert at_limit.status_code == 200
    assert len(emulator.queue("jobs").messages) == 100


def test_requests_are_validated_against_the_openapi_description(
    emulator: Emulator, api: httpx.Client
) -> None:
    queue = qid(emulator)
    wrong_type = api.post(f"/{queue}/messages/pull", json={"batch_size": "ten"})
    not_json = api.post(
        f"/{queue}/messages/pull",
        content=b"{batch_size: 10",
        headers={"Content-Type": "application/json"},
    )
    ambiguous = push(api, queue, [{"body": "no content type"}])
    too_many = api.post(f"/{queue}/messages/pull", json={"batch_size": 101})
    no_route = api.get(f"/{queue}/messages/peek")

    assert error_of(wrong_type) == (400, 10207)
    assert "'ten' is not of type 'number'" in wrong_type.json()["errors"][0]["message"]
    assert error_of(not_json) == (400, 10208)
    # A string body without content_type matches both message schemas.
    assert error_of(ambiguous) == (400, 10207)
    assert error_of(too_many) == (400, 10207)
    assert no_route.status_code == 404
    assert emulator.queue("jobs").messages == {}


def test_pulling_a_queue_consumed_by_a_worker_fails(
    emulator: Emulator, api: httpx.Client
) -> None:
    response = api.post(f"/{qid(emulator, 'edge')}/messages/pull", json={})

    assert response.status_code == 400
    assert "Worker" in response.json()["errors"][0]["message"]


def test_metrics(emulator: Emulator, api: httpx.Client) -> None:
    queue = qid(emulator)
    push(api, queue, [{"body": {"uploadId": n}} for n in range(3)])

    metrics = api.get(f"/{queue}/metrics").json()["result"]

    assert metrics["backlog_count"] == 3
    assert metrics["backlog_bytes"] == 3 * (len('{"uploadId":0}') + 100)
    assert metrics["oldest_message_timestamp_ms"] > 0


def test_faults_are_seeded_and_refuse_before_doing_anything(
    emulator: Emulator, api: httpx.Client
) -> None:
    emulator.faults = FaultPolicy(rate=0.5, seed=7, retry_after=3)
    queue = qid(emulator)

    statuses = [
        push(api, queue, [{"body": {"uploadId": n}}]).status_code for n in range(40)
    ]
    listing = [api.get("").status_code for _ in range(10)]

    replay = FaultPolicy(rate=0.5, seed=7)
    expected = []
    for _ in range(40):
        refusal = replay.refusal("queues-push-messages")
        expected.append(refusal.status if isinstance(refusal, Refusal) else 200)
    assert statuses == expected
    assert 10 < statuses.count(200) < 30
    assert {429, 500} <= set(statuses)
    assert listing == [200] * 10  # only push, pull and ack are faulted
    assert len(emulator.queue("jobs").messages) == statuses.count(200)
    refused = [r for r in emulator.recorded("queues-push-messages") if r.refused]
    limited = next(r for r in refused if r.status == 429)
    assert limited.response["errors"][0]["code"] == 10250
    failed = next(r for r in refused if r.status == 500)
    assert failed.response["errors"][0]["code"] == 15000


def test_retry_after_header_on_429(emulator: Emulator, api: httpx.Client) -> None:
    emulator.faults = FaultPolicy(rate=1.0, rate_limited_share=1.0, retry_after=3)

    response = api.post(f"/{qid(emulator)}/messages/pull", json={})

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "3"


def test_a_lost_response_still_stores_the_message(
    emulator: Emulator, api: httpx.Client
) -> None:
    emulator.faults.lose_responses("queues-push-message", 1, LostResponse("error"))
    queue = qid(emulator)

    lost = api.post(f"/{queue}/messages", json={"body": {"uploadId": 1}})
    kept = api.post(f"/{queue}/messages", json={"body": {"uploadId": 2}})

    assert error_of(lost) == (500, 15000)
    assert kept.status_code == 200
    assert [m.body for m in emulator.queue("jobs").messages.values()] == [
        {"uploadId": 1},
        {"uploadId": 2},
    ]


def test_the_emulator_command_serves_the_api() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "manage.py"),
            "cf_ingest_emulator",
            "--port",
            "0",
            "--queue",
            "demo",
            "--worker-queue",
            "edge",
            "--token",
            TOKEN,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        match = re.search(r"on (http://127\.0\.0\.1:\d+/client/v4)", first)
        assert match, first
        base_url = match.group(1)
        deadline = time.monotonic() + 10
        while True:
            try:
                response = httpx.get(
                    f"{base_url}/accounts/023e105f4ecef8ad9ca31a8372d0c353/queues",
                    headers={"Authorization": f"Bearer {TOKEN}"},
                )
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        kinds = {
            q["queue_name"]: q["consumers"][0]["type"]
            for q in response.json()["result"]
        }
        assert kinds == {"demo": "http_pull", "edge": "worker"}
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=10)
    assert process.returncode == 0
    assert output.rstrip().endswith("stopped")
