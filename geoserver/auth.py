"""Who is calling: a bearer token resolved to a `Principal`, anonymous without one."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from geoserver.state import StateDep
from layers.access.tokens import principal_for_token
from layers.catalogue.visibility import ANONYMOUS, Principal
from layers.errors import Forbidden, InvalidParameter, Unauthorized


async def current_principal(request: Request, state: StateDep) -> Principal:
    """Anonymous without an Authorization header; a bad token is refused rather than downgraded silently."""
    if "access_token" in request.query_params:
        # A token in a URL ends up in logs, histories and Referer headers: refuse it outright.
        raise InvalidParameter("send tokens in the Authorization header, never in the URL", parameter="access_token")
    header = request.headers.get("authorization")
    if not header:
        return ANONYMOUS
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("use 'Authorization: Bearer <token>'")
    async with state.db.connection() as conn:
        principal = await principal_for_token(conn, token.strip())
    if principal is None:
        raise Unauthorized("the token is unknown, revoked or expired")
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]


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
