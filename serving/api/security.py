"""Who may call what: API keys with scopes (``Authorization: Bearer <key>``, see :mod:`serving.api.keys`) and the
per-caller rate limit.

Without ``API_KEYS_FILE`` the API is open (every route, no key) and :mod:`serving.api.serve` binds it only to a
loopback address; the rate limit then applies per client address.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from serving.api.keys import KeyStore, KeysFileError
from serving.api.observe import note

log = logging.getLogger(__name__)

bearer = HTTPBearer(auto_error=False, description="An API key (python -m serving.api.keys add); not needed when "
                                                  "the server runs without API_KEYS_FILE (loopback only).")


class RateLimiter:
    """A token bucket per caller: ``per_min`` requests at once, refilled at ``per_min`` a minute."""

    MAX_BUCKETS = 10_000  # past this, buckets that have refilled completely are dropped (they hold no state)

    def __init__(self, per_min: int):
        self.capacity = float(per_min)
        self.rate = per_min / 60.0
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, caller: str) -> int | None:
        """Take a token for ``caller``; None when there was one, else the seconds until there is one."""
        if self.rate <= 0:
            return None
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(caller, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[caller] = (tokens - 1, now)
                if len(self._buckets) > self.MAX_BUCKETS:
                    self._forget_full(now)
                return None
            self._buckets[caller] = (tokens, now)
            return max(1, math.ceil((1 - tokens) / self.rate))

    def _forget_full(self, now: float) -> None:
        self._buckets = {c: (t, last) for c, (t, last) in self._buckets.items()
                         if t + (now - last) * self.rate < self.capacity}


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(status_code=401, detail=message, headers={"WWW-Authenticate": "Bearer"})


def authorize(request: Request, credentials: HTTPAuthorizationCredentials | None, scope: str | None) -> None:
    """Check the caller's key for ``scope`` (None: any caller, no key needed) and take one from its rate limit.
    The key's public id goes into the request's log line."""
    keys: KeyStore | None = request.app.state.keys
    caller = f"ip:{request.client.host if request.client else 'unknown'}"
    if keys is not None and scope is not None:
        if credentials is None:
            raise _unauthorized("An API key is required: send 'Authorization: Bearer <key>'.")
        try:
            key = keys.authenticate(credentials.credentials)
        except KeysFileError as exc:
            log.error("%s", exc)
            raise HTTPException(status_code=503, detail="The API keys file cannot be read; the operator has been "
                                                        "told in the server log.") from None
        if key is None:
            raise _unauthorized("Invalid or revoked API key.")
        if not key.allows(scope):
            raise HTTPException(status_code=403, detail=f"API key {key.id} ({key.name}) lacks the '{scope}' scope "
                                                        f"(it has: {', '.join(key.scopes)}).")
        note("key_id", key.id)
        caller = f"key:{key.id}"
    wait = request.app.state.rate_limiter.retry_after(caller)
    if wait is not None:
        raise HTTPException(status_code=429, headers={"Retry-After": str(wait)},
                            detail=f"Rate limit of {request.app.state.rate_limit_per_min} requests per minute "
                                   f"(API_RATE_LIMIT_PER_MIN) reached; retry in {wait} s.")


def require(scope: str | None):
    """A router dependency: the caller's key must have ``scope``; None: no key needed (and none declared in the
    OpenAPI schema), still rate-limited per client address."""
    if scope is None:
        def open_route(request: Request) -> None:
            authorize(request, None, None)

        return Depends(open_route)

    def check(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        authorize(request, credentials, scope)

    return Depends(check)
