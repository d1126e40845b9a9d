"""Who is calling: a bearer token resolved to a `Principal`, anonymous without one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, Request

from geoserver.state import AppState, StateDep
from layers.access.tokens import digest, principal_for_digest
from layers.catalogue.standing import NotConfirmed, Standing
from layers.catalogue.visibility import ANONYMOUS, Principal
from layers.errors import Conflict, Forbidden, InvalidParameter, Unauthorized

UNKNOWN_TOKEN = "the token is unknown, revoked or expired"
T = TypeVar("T")


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
    return await _principal(state, digest(token))


async def _principal(state: AppState, token_digest: bytes) -> Principal:
    """The principal a token stands for now (401 for none, and forgotten by the memory of edits)."""
    async with state.db.connection() as conn:
        principal = await principal_for_digest(conn, token_digest)
    if principal is None:
        state.token_memory.pop(token_digest, None)
        raise Unauthorized(UNKNOWN_TOKEN)
    return principal


@dataclass(frozen=True)
class Caller:
    """Who edits a feature: the principal, what the token stood for (the claim the write confirms), and whether this
    worker's memory gave it (`remembered`) rather than a lookup for this request."""

    principal: Principal
    standing: Standing | None = None  # None for anonymous
    remembered: bool = False


async def looked_up(state: AppState, token_digest: bytes) -> Caller:
    """The caller a token stands for now, looked up in the database (401 for none); remembered for later edits."""
    principal = await _principal(state, token_digest)
    state.token_memory[token_digest] = principal
    return Caller(principal, Standing.of(token_digest, principal))


async def editing_caller(request: Request, state: StateDep) -> Caller:
    """For a feature's PUT and PATCH, whose statement confirms the caller (`confirmed`): what this worker remembers
    of the token, else a lookup (`geoserver.tokenmemory`)."""
    token = bearer_token(request)
    if token is None:
        return Caller(ANONYMOUS)
    token_digest = digest(token)
    known = state.token_memory.get(token_digest)
    if known is None:
        return await looked_up(state, token_digest)
    return Caller(known, Standing.of(token_digest, known), remembered=True)


async def confirmed(state: AppState, caller: Caller, write: Callable[[Caller], Awaitable[T]]) -> T:
    """`write` as this caller; it confirms the caller's standing in its own statement (NotConfirmed: nothing written).

    Whatever a remembered caller's write raises, the token is looked up afresh: unless the lookup gives the same
    principal (the answer stands, it is the one a lookup would have given), the request is handled again as the
    caller it gives, which may be a 401, a 403 or a 404 before anything else. A caller whose rights change between
    its lookup and its write is looked up once more; a third change in that instant is a 409."""
    for _ in range(3):
        try:
            return await write(caller)
        except Exception as exc:
            if caller.standing is None or not (caller.remembered or isinstance(exc, NotConfirmed)):
                raise
            fresh = await looked_up(state, caller.standing.digest)
            if not isinstance(exc, NotConfirmed) and fresh.principal == caller.principal:
                raise
            caller = fresh
    raise Conflict("the token's rights changed while this request ran: nothing was written; send it again")


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
