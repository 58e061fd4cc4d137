"""RFC 9457 problem details for every error the API returns.

``type`` is a stable URI per error code (clients match on it or on ``code``), ``title`` is
the HTTP reason, ``detail`` the human sentence; nothing else about the server leaks.
"""

from __future__ import annotations

from typing import Any, Final

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

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


def on_too_deep(request: Request[Any, Any, Any], exc: RecursionError) -> Response[dict[str, Any]]:
    """A JSON body nested deeper than the decoder can recurse (a thousand brackets, 2 KB)
    is the client's mistake: a 400, not a 500 with a traceback (on the unauthenticated login
    too). Caught where the handler decodes its body, so a valid body is decoded once. A
    RecursionError with no JSON body to blame stays what it is: a bug, a 500."""
    if request.headers.get("content-type", "").startswith("application/json"):
        return problem(
            400, "too_deeply_nested", "the JSON body is nested too deeply", request.url.path
        )
    return on_unexpected(request, exc)


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
