"""The optional API key: ``Authorization: Bearer KEY`` or ``X-API-Key: KEY`` on every route but the
health checks, when ``api_key`` is set (compared in constant time). Declared as FastAPI security
schemes, so the OpenAPI document and ``/docs`` show them."""

from __future__ import annotations

import hmac

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from detect.serve.errors import ApiError

_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the service's API key")
_bearer = HTTPBearer(auto_error=False, description="the service's API key as a bearer token")


def require_api_key(request: Request, header: str | None = Security(_header),
                    bearer: HTTPAuthorizationCredentials | None = Security(_bearer)) -> None:
    """Let the request through when no key is configured or it carries the key; else 401."""
    expected = request.app.state.settings.api_key
    if expected is None:
        return
    given = header or (bearer.credentials if bearer is not None else None)
    if given is None:
        raise ApiError(401, "this service needs an API key", expected="'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
                       got="no key", headers={"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(401, "wrong API key", expected="the key the service was started with", got="another key",
                       headers={"WWW-Authenticate": "Bearer"})
