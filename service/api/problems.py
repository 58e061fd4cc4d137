"""RFC 9457 problem details for every error the API returns.

``type`` is a stable URI per error code (clients match on it or on ``code``), ``title`` is
the HTTP reason, ``detail`` the human sentence; nothing else about the server leaks.
"""

from __future__ import annotations

from typing import Any, Final

from litestar import Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException

from projections import DomainError

PROBLEM_JSON: Final = "application/problem+json"
KIND_STATUS: Final = {"not_found": 404, "conflict": 409, "invalid": 422, "forbidden": 403}
TITLES: Final = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    410: "Gone",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class ApiError(Exception):
    """An error the API raises itself (auth, uploads, paths, availability)."""

    def __init__(
        self, status: int, code: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}


def problem(
    status: int, code: str, detail: str, instance: str, headers: dict[str, str] | None = None
) -> Response[dict[str, Any]]:
    return Response(
        {
            "type": f"https://rewind.dev/problems/{code.replace('_', '-')}",
            "title": TITLES.get(status, "Error"),
            "status": status,
            "detail": detail,
            "code": code,
            "instance": instance,
        },
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def on_api_error(request: Request[Any, Any, Any], exc: ApiError) -> Response[dict[str, Any]]:
    return problem(exc.status, exc.code, exc.detail, request.url.path, exc.headers)


def on_domain_error(request: Request[Any, Any, Any], exc: DomainError) -> Response[dict[str, Any]]:
    return problem(KIND_STATUS[exc.kind], exc.code, exc.message, request.url.path)


def on_validation(
    request: Request[Any, Any, Any], exc: ValidationException
) -> Response[dict[str, Any]]:
    """Litestar's own decoding: unparsable JSON is a 400, well-formed JSON of the wrong shape
    a 422, each with the field that is wrong."""
    detail = exc.detail or "invalid request"
    extra = exc.extra if isinstance(exc.extra, list) else []
    if extra:
        first = extra[0]
        if isinstance(first, dict):
            where = first.get("key") or first.get("source") or ""
            detail = f"{first.get('message', detail)}" + (f" (at {where})" if where else "")
    malformed = "JSON is malformed" in (exc.detail or "") or "decode" in (exc.detail or "").lower()
    return problem(400 if malformed else 422, "invalid_request", detail, request.url.path)


async def refuse_deep_json(request: Request[Any, Any, Any]) -> None:
    """Before every handler that takes a JSON body: decode it here, where a body nested deeper
    than the decoder can recurse (a thousand brackets, 2 KB) becomes a 400, not a
    RecursionError (a 500 and a traceback, on the unauthenticated login too).

    The decoded body is kept on the request, so the handler's own decoding costs nothing
    more; a malformed body is left to it (a 400 naming what is wrong).
    """
    if "data" not in request.route_handler.parsed_fn_signature.parameters:
        return
    try:
        await request.json()
    except RecursionError:
        raise ApiError(400, "too_deeply_nested", "the JSON body is nested too deeply") from None
    except SerializationException:
        return


def on_http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    status = exc.status_code
    code = {
        400: "bad_request",
        404: "not_found",
        405: "method_not_allowed",
        413: "too_large",
    }.get(status, "http_error")
    return problem(status, code, str(exc.detail), request.url.path, exc.headers)


def on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    request.logger.exception("unexpected error on %s", request.url.path)
    return problem(500, "internal", "the server failed to answer; see its log", request.url.path)
