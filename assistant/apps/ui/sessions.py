"""Sign-in sessions that can be revoked.

Chainlit signs the user (with its role in the metadata) into a JWT and trusts it until it expires. Here every
HTTP request (a FastAPI dependency override of `chainlit.auth.get_current_user`) and every socket connect (the
same check, patched into `chainlit.socket`) also requires:

- the user is still in COURSEPILOT_UI_USERS, with the role the token carries (a removed user or a changed role
  ends the session: sign in again);
- the token was not signed out: logout records its SHA-256 in the learner database (`revoked_sessions`, kept
  until the token would have expired), so every worker sharing the database refuses it.

The lifetime itself (`COURSEPILOT_UI_SESSION_MINUTES`) is set on Chainlit's `user_session_timeout`, which
decides both the token's `exp` and the cookie's max-age.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt as pyjwt
from chainlit.auth import get_current_user, reuseable_oauth
from chainlit.auth.jwt import get_jwt_secret
from fastapi import Depends, HTTPException

from assistant.apps.ui.launch import UserEntry
from assistant.planning.learners import LearnerStore

log = logging.getLogger("coursepilot.ui.sessions")

SESSION_ENDED = "Your session has ended. Please sign in again."


def token_key(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def claims_of(token: str) -> dict[str, Any] | None:
    """The token's verified claims, or None if it is not a valid, unexpired token of this server."""
    secret = get_jwt_secret()
    if not secret or not token:
        return None
    try:
        return dict(pyjwt.decode(token, secret, algorithms=["HS256"]))
    except pyjwt.PyJWTError:
        return None


class SessionPolicy:
    """Checks a token against the current users and the revocation list."""

    def __init__(self, users: Callable[[], dict[str, UserEntry]], store: Callable[[], LearnerStore]) -> None:
        self.users = users
        self.store = store
        self._revoked_here: set[str] = set()

    async def problem(self, token: str | None) -> str | None:
        """Why this token must be refused, or None when it is good."""
        claims = claims_of(token or "")
        if claims is None:
            return "invalid or expired token"
        user_id = str(claims.get("identifier") or "")
        entry = self.users().get(user_id)
        if entry is None:
            return f"user {user_id!r} is no longer configured"
        role = str((claims.get("metadata") or {}).get("role") or "learner")
        if role != entry.role:
            return f"the role of {user_id!r} changed from {role!r} to {entry.role!r}"
        key = token_key(token or "")
        if key in self._revoked_here:
            return "signed out"
        try:
            revoked = await asyncio.to_thread(self.store().session_revoked, key)
        except Exception:
            log.exception("could not read the revoked sessions; the token is refused")
            return "revocation list unavailable"
        return "signed out" if revoked else None

    async def revoke(self, token: str | None) -> None:
        """Sign-out: this token is refused from now on, here and by every worker on the same database."""
        claims = claims_of(token or "")
        if claims is None:
            return
        key = token_key(token or "")
        self._revoked_here.add(key)
        expires = datetime.fromtimestamp(float(claims.get("exp") or 0), UTC) if claims.get("exp") else None
        try:
            await asyncio.to_thread(
                self.store().revoke_session,
                key,
                str(claims.get("identifier") or ""),
                expires or datetime.now(UTC) + timedelta(days=30),
            )
        except Exception:
            log.exception("could not record the sign-out in the database (refused by this worker only)")

    def install(self, app: Any, socket_module: Any) -> None:
        """Check every HTTP request (dependency override) and every socket connect (patched lookup)."""
        policy = self
        original = get_current_user

        async def current_user(token: str | None = Depends(reuseable_oauth)) -> Any:
            if token and (reason := await policy.problem(token)):
                log.info("HTTP request refused: %s", reason)
                raise HTTPException(status_code=401, detail=SESSION_ENDED)
            return await original(token=token)  # type: ignore[arg-type]

        async def socket_user(token: str) -> Any:
            if reason := await policy.problem(token):
                log.info("socket connection refused: %s", reason)
                return None
            return await original(token=token)

        app.dependency_overrides[original] = current_user
        socket_module.get_current_user = socket_user


__all__ = ["SESSION_ENDED", "SessionPolicy", "claims_of", "token_key"]
