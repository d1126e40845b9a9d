"""Who is calling: a bearer token resolved to a `Principal`, anonymous without one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from geoserver.state import AppState, StateDep
from layers.access.tokens import digest, principal_for_digest
from layers.catalogue.standing import Standing
from layers.catalogue.visibility import ANONYMOUS, Principal
from layers.errors import Forbidden, InvalidParameter, Unauthorized

UNKNOWN_TOKEN = "the token is unknown, revoked or expired"


def bearer_token(request: Request) -> str | None:
    """The request's bearer token, None without an Authorization header; a token in the URL or another scheme is
    refused rather than downgraded silently."""
    if "access_token" in request.query_params:
        # A token in a URL ends up in logs, histories and Referer headers: refuse it outright.
        raise InvalidParameter("send tokens in the Authorization header, never in the URL", parameter="access_token")
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("use 'Authorization: Bearer <token>'")
    return token.strip()


async def current_principal(request: Request, state: StateDep) -> Principal:
    """Anonymous without an Authorization header; otherwise the token looked up now (401 when it stands for no one)."""
    token = bearer_token(request)
    if token is None:
        return ANONYMOUS
    return (await looked_up(state, digest(token))).principal


@dataclass(frozen=True)
class Caller:
    """Who edits a feature: the principal, what the token stood for (the claim the write confirms), and whether this
    worker's memory gave it (`remembered`) rather than a lookup for this request."""

    principal: Principal
    standing: Standing | None = None  # None for anonymous
    remembered: bool = False


async def looked_up(state: AppState, token_digest: bytes) -> Caller:
    """The caller a token stands for now, looked up in the database (401 for none); remembered for later edits."""
    async with state.db.connection() as conn:
        principal = await principal_for_digest(conn, token_digest)
    if principal is None or principal.subject is None:
        state.token_memory.forget(token_digest)
        raise Unauthorized(UNKNOWN_TOKEN)
    state.token_memory.put(token_digest, principal)
    return Caller(principal, Standing(token_digest, principal.subject, principal.is_staff, principal.roles))


async def editing_caller(request: Request, state: StateDep) -> Caller:
    """For a feature's PUT and PATCH, whose statement confirms the caller: what this worker remembers of the token,
    else a lookup (`geoserver.tokenmemory`)."""
    token = bearer_token(request)
    if token is None:
        return Caller(ANONYMOUS)
    token_digest = digest(token)
    known = state.token_memory.get(token_digest)
    if known is None or known.subject is None:
        return await looked_up(state, token_digest)
    return Caller(known, Standing(token_digest, known.subject, known.is_staff, known.roles), remembered=True)


PrincipalDep = Annotated[Principal, Depends(current_principal)]
CallerDep = Annotated[Caller, Depends(editing_caller)]


async def signed_in(principal: PrincipalDep) -> Principal:
    """The caller, who must have sent a valid token (401 otherwise)."""
    if principal.is_anonymous:
        raise Unauthorized("sign in: send 'Authorization: Bearer <token>'")
    return principal


async def staff_only(principal: PrincipalDep) -> Principal:
    """The caller, who must be City staff (401 without a token, 403 with another one)."""
    if principal.is_anonymous:
        raise Unauthorized("sign in: send 'Authorization: Bearer <token>'")
    if not principal.is_staff:
        raise Forbidden("only City staff may do this")
    return principal


SignedInDep = Annotated[Principal, Depends(signed_in)]
StaffDep = Annotated[Principal, Depends(staff_only)]
