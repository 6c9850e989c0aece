"""Every error the service returns is one JSON line in OpenAI's shape, so OpenAI clients read it too::

    {"error": {"message": "k: must be at most 100", "type": "invalid_request_error", "param": "k", "code": 422}}

Malformed JSON is 400 (FastAPI says 422; the request is not JSON at all), schema violations 422, a body,
a text count or a text longer than the limits 413, a missing token 401, a wrong one (or writes turned
off) 403, an unknown index, document or route 404, an add of an id already present 409.
"""
from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 405: "invalid_request_error", 409: "conflict_error", 413: "request_too_large",
          422: "invalid_request_error", 500: "server_error", 503: "server_error"}


class ApiError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.headers = status, message, param, headers


def error_response(status: int, message: str, param: str | None = None, headers: dict | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": _TYPES.get(status, "invalid_request_error"), "param": param,
                      "code": status}}
    return JSONResponse(body, status_code=status, headers=headers)


def _validation_message(error: dict) -> tuple[str, str | None]:
    loc = [str(p) for p in error.get("loc", ())]
    if loc and loc[0] in ("body", "query", "path", "header"):  # where the value was, not its name
        loc = loc[1:]
    param = ".".join(loc) or None
    return (f"{param}: " if param else "") + error.get("msg", "invalid value"), param


def install(app: FastAPI, max_body_bytes: int) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.param, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        if first.get("type") == "json_invalid":
            detail = (first.get("ctx") or {}).get("error", "")
            return error_response(400, f"the body is not valid JSON ({detail})" if detail else "the body is not valid JSON")
        message, param = _validation_message(first)
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
        return error_response(422, message, param)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        messages = {404: f"no such endpoint: {request.method} {request.url.path}",
                    405: f"method {request.method} not allowed on {request.url.path}",
                    413: f"the request body is larger than the server's limit ({max_body_bytes} bytes)"}
        return error_response(exc.status_code, messages.get(exc.status_code, str(exc.detail)),
                              headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette raises the exception again once this response is sent, and uvicorn logs its traceback
        return error_response(500, "internal server error (see the server log)")
