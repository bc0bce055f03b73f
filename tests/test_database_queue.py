from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from django.db import close_old_connections

from django_cf_ingest.models import QueueMessage
from django_cf_ingest.queues import Retry
from django_cf_ingest.queues.database import DatabaseBackend


@pytest.fixture
def backend() -> DatabaseBackend:
    return DatabaseBackend({"QUEUE": "test"})


@pytest.mark.django_db
def test_receive_leases_and_counts_attempts(backend: DatabaseBackend) -> None:
    backend.enqueue_batch([{"uploadId": 1}, {"uploadId": 2}])

    first = backend.receive(10, visibility_timeout=30)
    again = backend.receive(10, visibility_timeout=30)

    assert [m.body for m in first] == [{"uploadId": 1}, {"uploadId": 2}]
    assert [m.attempts for m in first] == [1, 1]
    assert again == []
    assert backend.backlog() == 2


@pytest.mark.django_db
def test_ack_removes_and_retry_delays(backend: DatabaseBackend) -> None:
    backend.enqueue_batch([{"uploadId": 1}, {"uploadId": 2}])
    one, two = backend.receive(10, visibility_timeout=30)

    backend.settle([one], [Retry(two, 0.3)])

    assert backend.backlog() == 1
    assert backend.receive(10, visibility_timeout=30) == []
    time.sleep(0.35)
    (redelivered,) = backend.receive(10, visibility_timeout=30)
    assert redelivered.body == {"uploadId": 2}
    assert redelivered.attempts == 2


@pytest.mark.django_db
def test_expired_lease_is_delivered_again(backend: DatabaseBackend) -> None:
    backend.enqueue_batch([{"uploadId": 7}])
    (held,) = backend.receive(1, visibility_timeout=0.2)

    time.sleep(0.25)
    (again,) = backend.receive(1, visibility_timeout=30)

    assert again.body == held.body
    assert again.attempts == 2
    # The first holder's lease is gone: its ack must not remove the message.
    backend.ack(held)
    assert backend.backlog() == 1
    backend.ack(again)
    assert backend.backlog() == 0


@pytest.mark.django_db
def test_release_does_not_count_an_attempt(backend: DatabaseBackend) -> None:
    backend.enqueue_batch([{"uploadId": 3}])
    (held,) = backend.receive(1, visibility_timeout=30)

    backend.release([held])
    (again,) = backend.receive(1, visibility_timeout=30)

    assert again.attempts == 1


@pytest.mark.django_db
def test_dead_letter_keeps_the_reason(backend: DatabaseBackend) -> None:
    backend.enqueue_batch([{"nonsense": True}])
    (held,) = backend.receive(1, visibility_timeout=30)

    backend.dead_letter(held, "message body is not {uploadId}")

    row = QueueMessage.objects.get()
    assert row.dead_at is not None
    assert row.last_error == "message body is not {uploadId}"
    assert backend.backlog() == 0
    assert backend.dead_count() == 1
    assert backend.receive(1, visibility_timeout=30) == []


@pytest.mark.django_db(transaction=True)
def test_concurrent_consumers_never_share_a_message(backend: DatabaseBackend) -> None:
    backend.enqueue_batch([{"uploadId": n} for n in range(1, 201)])
    seen: Counter[int] = Counter()
    lock = threading.Lock()

    def consume() -> None:
        try:
            while messages := backend.receive(7, visibility_timeout=60):
                with lock:
                    seen.update(m.body["uploadId"] for m in messages)
                backend.settle(messages, [])
        finally:
            close_old_connections()

    threads = [threading.Thread(target=consume) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(seen) == list(range(1, 201))
    assert max(seen.values()) == 1
    assert backend.backlog() == 0
