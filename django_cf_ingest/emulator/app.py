"""The emulator's WSGI application: Cloudflare's Queues REST API, in memory.

Each request goes through the same steps as on the real API: routing, bearer
token authentication, validation against the OpenAPI description, the
operation, and the envelope. Every request and every response is checked
with ``openapi-core``; a response that fails its schema is an emulator bug,
kept in ``errors`` and answered 500, so tests notice it.

Every request is recorded (``requests``) for tests to assert on. Recorded
requests keep their headers in memory only; nothing is logged but the method,
the operation and the status.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from openapi_core.contrib.werkzeug import (
    WerkzeugOpenAPIRequest,
    WerkzeugOpenAPIResponse,
)
from openapi_core.validation.request.exceptions import SecurityValidationError
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, RequestRedirect, Rule
from werkzeug.wrappers import Request, Response

from . import broker as codes
from .broker import ApiError, Broker, ConsumerType, Queue
from .faults import FaultPolicy
from .spec import load_openapi, operations, permission

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

logger = logging.getLogger("django_cf_ingest.emulator")

DEFAULT_ACCOUNT_ID = "023e105f4ecef8ad9ca31a8372d0c353"
DEFAULT_TOKEN = "local-emulator-token"  # noqa: S105 - the emulator's own
DEFAULT_BASE_PATH = "/client/v4"
#: Every permission the queue operations need.
ALL_PERMISSIONS = frozenset(
    {"queue.list", "queue.read", "queue.push", "queue.pull", "queue.ack"}
)
#: What a "Queues Read" token may do.
READ_PERMISSIONS = frozenset({"queue.list", "queue.read"})
QUEUES_PER_PAGE = 20

_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_NO_ROUTE = 7003


@dataclass
class RecordedRequest:
    operation: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    status: int = 0
    response: Any = None
    #: Refused by fault injection before anything was done.
    refused: bool = False
    #: Carried out, but the client got an error or a late answer.
    lost: bool = False
    at: float = field(default_factory=time.time)


def _envelope(result: Any, **extra: Any) -> dict[str, Any]:
    return {"success": True, "errors": [], "messages": [], "result": result, **extra}


def _failure(status: int, code: int, message: str) -> Response:
    body = {
        "success": False,
        "errors": [{"code": code, "message": message}],
        "messages": [],
    }
    return Response(json.dumps(body), status=status, mimetype="application/json")


class Emulator:
    """An emulated Cloudflare account with queues, served as a WSGI app."""

    def __init__(
        self,
        *,
        account_id: str = DEFAULT_ACCOUNT_ID,
        token: str = DEFAULT_TOKEN,
        faults: FaultPolicy | None = None,
        base_path: str = DEFAULT_BASE_PATH,
        tokens: dict[str, frozenset[str]] | None = None,
    ) -> None:
        self.account_id = account_id
        self.base_path = "/" + base_path.strip("/")
        self.broker = Broker(account_id)
        self.faults = faults or FaultPolicy()
        self.tokens: dict[str, frozenset[str]] = {token: ALL_PERMISSIONS}
        self.tokens.update(tokens or {})
        self.requests: list[RecordedRequest] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._openapi = load_openapi(self.base_path)
        self._operations = operations()
        self._routes = Map(
            [
                Rule(
                    self.base_path + re.sub(r"{(\w+)}", r"<\1>", spec["path"]),
                    endpoint=operation_id,
                    methods=[spec["method"]],
                )
                for operation_id, spec in self._operations.items()
            ],
            strict_slashes=False,
        )

    # Set-up and inspection -------------------------------------------------

    def add_queue(
        self, name: str, *, consumer: ConsumerType | None = "http_pull", **options: Any
    ) -> Queue:
        return self.broker.add_queue(name, consumer=consumer, **options)

    def queue(self, name: str) -> Queue:
        queue = self.broker.by_name(name)
        if queue is None:
            raise KeyError(name)
        return queue

    def recorded(self, *operations: str) -> list[RecordedRequest]:
        """Recorded requests, optionally of some operations only."""
        with self._lock:
            return [
                r for r in self.requests if not operations or r.operation in operations
            ]

    def clear_records(self) -> None:
        with self._lock:
            self.requests.clear()

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> Any:
        """Start serving in a background thread; returns the running server."""
        from .server import EmulatorServer

        return EmulatorServer(self, host, port).start()

    # WSGI ------------------------------------------------------------------

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        # "/queues/" is "/queues": the API ignores a trailing slash.
        environ["PATH_INFO"] = environ.get("PATH_INFO", "").rstrip("/") or "/"
        request = Request(environ)
        response = self._respond(request)
        return response(environ, start_response)

    def _respond(self, request: Request) -> Response:
        adapter = self._routes.bind_to_environ(request.environ)
        try:
            operation, args = adapter.match()
        except MethodNotAllowed:
            return _failure(405, _NO_ROUTE, "Method not allowed for that URI")
        except (NotFound, RequestRedirect):
            return _failure(404, _NO_ROUTE, "No route for that URI")
        record = RecordedRequest(
            operation=str(operation),
            method=request.method,
            path=request.path,
            query=dict(request.args),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=self._json_or_text(request),
        )
        with self._lock:
            self.requests.append(record)

        latency = self.faults.latency()
        if latency:
            time.sleep(latency)
        refusal = self.faults.refusal(record.operation)
        if refusal is not None:
            record.refused = True
            if refusal.status == 429:
                response = _failure(429, codes.QUEUE_OVERLOADED, "Queue overloaded")
                response.headers["Retry-After"] = str(refusal.retry_after or 1)
            else:
                response = _failure(500, codes.INTERNAL_ERROR, "Internal error")
        else:
            response = self._operate(record.operation, dict(args), request)
            lost = self.faults.lost_response(record.operation)
            if lost is not None:
                record.lost = True
                if lost.mode == "timeout":
                    time.sleep(lost.delay)
                else:
                    response = _failure(500, codes.INTERNAL_ERROR, "Internal error")

        response = self._checked(request, response)
        record.status = response.status_code
        record.response = response.get_json(silent=True)
        logger.debug(
            "emulator request operation=%s status=%s", operation, record.status
        )
        return response

    @staticmethod
    def _json_or_text(request: Request) -> Any:
        data = request.get_data(cache=True)
        if not data:
            return None
        try:
            return json.loads(data)
        except ValueError:
            return data.decode("utf-8", "replace")

    def _checked(self, request: Request, response: Response) -> Response:
        try:
            self._openapi.validate_response(
                WerkzeugOpenAPIRequest(request), WerkzeugOpenAPIResponse(response)
            )
        except Exception as exc:
            detail = _describe(exc)[:2000]
            message = f"{request.method} {request.path}: {type(exc).__name__}: {detail}"
            with self._lock:
                self.errors.append(message)
            logger.error("emulator response failed validation: %s", message)
            return _failure(500, codes.INTERNAL_ERROR, "Response failed validation")
        return response

    # Operations ------------------------------------------------------------

    def _operate(
        self, operation: str, args: dict[str, str], request: Request
    ) -> Response:
        errors = list(
            self._openapi.iter_request_errors(WerkzeugOpenAPIRequest(request))
        )
        try:
            self._authorize(operation, args, request, errors)
            body = self._validated_body(request, errors)
            return self._dispatch(operation, args, request, body)
        except ApiError as exc:
            return _failure(exc.status, exc.code, exc.message)

    def _authorize(
        self,
        operation: str,
        args: dict[str, str],
        request: Request,
        errors: list[Exception],
    ) -> None:
        if any(isinstance(e, SecurityValidationError) for e in errors):
            raise ApiError(401, codes.UNAUTHORIZED, "Unauthorized: no credentials")
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        granted = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if granted is None:
            raise ApiError(401, codes.UNAUTHORIZED, "Unauthorized: invalid API token")
        if args.get("account_id") != self.account_id:
            raise ApiError(
                403,
                codes.UNAUTHORIZED,
                "Unauthorized: the token has no access to this account",
            )
        needed = permission(self._operations[operation])
        if needed not in granted:
            raise ApiError(
                403,
                codes.UNAUTHORIZED,
                f"Unauthorized: the token lacks the permission {needed}",
            )

    @staticmethod
    def _validated_body(request: Request, errors: list[Exception]) -> Any:
        data = request.get_data(cache=True)
        body: Any = None
        if data:
            try:
                body = json.loads(data)
            except ValueError as exc:
                raise ApiError(
                    400, codes.BODY_NOT_JSON, "Body is not valid JSON"
                ) from exc
        if errors:
            detail = "; ".join(_describe(e) for e in errors)[:500]
            raise ApiError(
                400,
                codes.BODY_SCHEMA_MISMATCH,
                f"Body does not match the schema: {detail}",
            )
        return body

    def _queue(self, args: dict[str, str]) -> Queue:
        queue_id = args["queue_id"]
        if not _HEX32.match(queue_id):
            raise ApiError(400, codes.QUEUE_ID_MALFORMED, "Queue ID is malformed")
        return self.broker.get(queue_id)

    def _dispatch(
        self, operation: str, args: dict[str, str], request: Request, body: Any
    ) -> Response:
        body = body if isinstance(body, dict) else {}
        if operation == "queues-list":
            return self._list_queues(request)
        queue = self._queue(args)
        result: Any
        if operation == "queues-get":
            result = queue.as_json()
        elif operation == "queues-list-consumers":
            result = queue.as_json()["consumers"]
        elif operation == "queues-get-metrics":
            with self.broker.lock:
                result = queue.metrics()
        elif operation == "queues-push-message":
            metrics = self.broker.push(queue, [body], batch=False)
            result = {"metadata": {"metrics": metrics}}
        elif operation == "queues-push-messages":
            metrics = self.broker.push(
                queue,
                list(body.get("messages") or []),
                batch_delay=body.get("delay_seconds"),
            )
            result = {"metadata": {"metrics": metrics}}
        elif operation == "queues-pull-messages":
            deliveries, metrics = self.broker.pull(
                queue, body.get("batch_size"), body.get("visibility_timeout_ms")
            )
            result = {
                "message_backlog_count": metrics["backlog_count"],
                "messages": [d.as_json() for d in deliveries],
                "metadata": {"metrics": metrics},
            }
        elif operation == "queues-ack-messages":
            acked, retried, warnings = self.broker.settle(
                queue, list(body.get("acks") or []), list(body.get("retries") or [])
            )
            result = {"ackCount": acked, "retryCount": retried, "warnings": warnings}
        else:  # pragma: no cover - every routed operation is handled above
            raise ApiError(404, _NO_ROUTE, "No route for that URI")
        return self._success(result)

    def _list_queues(self, request: Request) -> Response:
        queues = self.broker.all_queues()
        try:
            page = max(1, int(request.args.get("page", 1)))
            per_page = max(
                1, min(1000, int(request.args.get("per_page", QUEUES_PER_PAGE)))
            )
        except ValueError as exc:
            raise ApiError(400, codes.BODY_SCHEMA_MISMATCH, "Invalid paging") from exc
        chunk = queues[(page - 1) * per_page : page * per_page]
        info = {
            "page": page,
            "per_page": per_page,
            "count": len(chunk),
            "total_count": len(queues),
            "total_pages": max(1, -(-len(queues) // per_page)),
        }
        return self._success([q.as_json() for q in chunk], result_info=info)

    @staticmethod
    def _success(result: Any, **extra: Any) -> Response:
        return Response(
            json.dumps(_envelope(result, **extra)),
            status=200,
            mimetype="application/json",
        )


def _describe(error: Exception) -> str:
    cause = error.__cause__
    details = getattr(cause, "schema_errors", None)
    if details:
        return "; ".join(getattr(d, "message", str(d)) for d in details)
    return str(cause or error)
