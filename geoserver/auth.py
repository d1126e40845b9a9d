"""Who is calling: a bearer token resolved to a `Principal`, anonymous without one."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from geoserver.state import StateDep
from layers.access.tokens import principal_for_token
from layers.catalogue.visibility import ANONYMOUS, Principal
from layers.errors import Unauthorized


async def current_principal(request: Request, state: StateDep) -> Principal:
    """Anonymous without an Authorization header; a bad token is refused rather than downgraded silently."""
    header = request.headers.get("authorization")
    if not header:
        return ANONYMOUS
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("use 'Authorization: Bearer <token>'")
    async with state.pool.connection() as conn:
        principal = await principal_for_token(conn, token.strip())
    if principal is None:
        raise Unauthorized("the token is unknown, revoked or expired")
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]
