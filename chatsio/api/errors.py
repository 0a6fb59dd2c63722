"""One middleware turning every failure into the protocol's ``{"error": Error}``."""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from chatsio.api.keys import metrics_key
from chatsio.errors import ChatsioError, InternalFault, InvalidPayload

logger = logging.getLogger(__name__)

CODES_BY_STATUS = {
    400: "invalid",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "invalid",
    409: "conflict",
    410: "terminated",
    413: "too_large",
    429: "rate_limited",
}


def error_response(
    request: web.Request, status: int, code: str, message: str, fields=None
) -> web.Response:
    request.app[metrics_key].errors.labels(code, "rest").inc()
    body = {"error": {"code": code, "message": message, "fields": fields}}
    return web.json_response(body, status=status)


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ChatsioError as exc:
        logger.info(
            "%s %s -> %s: %s", request.method, request.path, exc.code, exc.message
        )
        response = error_response(
            request, exc.status, exc.code, exc.message, exc.fields
        )
        if exc.retry_after is not None:  # whole seconds, at least 1 (RFC 9110)
            response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
        return response
    except web.HTTPException as exc:
        if exc.status < 400 or not request.path.startswith("/api/"):
            raise
        code = CODES_BY_STATUS.get(exc.status, "invalid")
        response = error_response(request, exc.status, code, exc.reason)
        if "Allow" in exc.headers:  # a 405 names the methods that would work
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except ConnectionResetError:  # the client hung up: nothing to answer
        logger.debug("%s %s: the client hung up", request.method, request.path)
        return web.Response(status=400)
    except Exception:
        if not request.path.startswith("/api/"):
            raise  # not ours to answer: Socket.IO, static files
        logger.exception("%s %s failed", request.method, request.path)
        fault = InternalFault()
        return error_response(request, fault.status, fault.code, fault.message)


async def read_json(request: web.Request) -> Any:
    """The request body as JSON; anything unparsable is an ``invalid`` error."""
    try:
        return json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        raise InvalidPayload("the body is not valid JSON") from None
    except RecursionError:
        raise InvalidPayload("the body is nested too deeply") from None


class MalformedRequestsAsInfo(logging.Filter):
    """aiohttp's server logs every malformed request (a bad Content-Length, a
    request line over 8 KB) as an ERROR with a traceback, though it answers it
    400 itself: any client could fill the log with tracebacks. Such a request
    is the client's fault, worth one INFO line."""

    def filter(self, record: logging.LogRecord) -> bool:
        fault = record.exc_info[1] if record.exc_info else None
        if isinstance(fault, HttpProcessingError):
            said, why = record.getMessage(), " ".join(str(fault).split())[:200]
            record.msg, record.args = "%s: %s", (said, why)
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.exc_info = record.exc_text = None
        return True


def log_malformed_requests_as_info() -> None:
    server_logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedRequestsAsInfo) for f in server_logger.filters):
        server_logger.addFilter(MalformedRequestsAsInfo())
