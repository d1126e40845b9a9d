"""Groups, their members and tokens (`/groups/...`), and who a token is (`/me`).

City staff manage every group; a group's publishers manage their own group's members and tokens only. A group the
caller does not belong to answers 404, exactly like one that does not exist.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from geoserver.auth import SignedInDep, StaffDep
from geoserver.bodies import json_object
from geoserver.database import Workload
from geoserver.responses import base_url, json_response
from geoserver.settings import Settings
from geoserver.state import StateDep
from layers.access import groups, tokens
from layers.catalogue.journal import audit
from layers.catalogue.visibility import PUBLISHER, Principal, role_rank
from layers.errors import Forbidden, NotFound
from layers.queries.times import iso

router = APIRouter(tags=["groups"])
MAX_TOKEN_DAYS = 730
DEFAULT_TOKEN_DAYS = 90


class NewGroup(BaseModel):
    """A group City staff create."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(description="Lower-case letters, digits and hyphens; part of every visibility string.")
    name: str
    name_fr: str | None = None
    contact: str | None = Field(default=None, description="Shown to City staff only.")


class NewMember(BaseModel):
    """A subject and the role to give it."""

    model_config = ConfigDict(extra="forbid")
    subject: str
    role: str = Field(description="viewer, editor or publisher.")


class NewToken(BaseModel):
    """A token a group issues: for one subject, scoped to this group, shown once."""

    model_config = ConfigDict(extra="forbid")
    subject: str
    role: str | None = Field(default=None, description="Give the subject this role in the group first.")
    expires_in_days: int = Field(default=DEFAULT_TOKEN_DAYS, ge=1, le=MAX_TOKEN_DAYS)
    label: str | None = None


def group_document(group: groups.Group, principal: Principal, settings: Settings, base: str) -> dict[str, Any]:
    """A group as the API shows it; the contact only to City staff."""
    doc: dict[str, Any] = {
        "id": group.id,
        "name": {"en": group.name, "fr": group.name_fr or group.name},
        "role": "staff" if principal.is_staff else principal.roles.get(group.id),
        "quotas": effective_quotas(group, settings),
        "require_if_match": group.require_if_match,
        "links": [{"rel": "self", "href": f"{base}/groups/{quote(group.id, safe='')}", "type": "application/json"}],
    }
    if principal.is_staff:
        doc["contact"] = group.contact
    return doc


def effective_quotas(group: groups.Group, settings: Settings) -> dict[str, int]:
    """The group's quotas, the server's defaults where the group has none."""
    return {
        "max_upload_mb": group.max_upload_mb or settings.upload_max_mb,
        "max_features": group.max_features or settings.group_max_features,
        "max_layers": group.max_layers or settings.group_max_layers,
        "uploads_per_hour": group.uploads_per_hour or settings.group_uploads_per_hour,
    }


def _visible(principal: Principal, group_id: str) -> None:
    """404 unless the caller belongs to the group (or is staff): others cannot tell it exists."""
    if not (principal.is_staff or group_id in principal.roles):
        raise NotFound(f"no group named {group_id[:80]!r}", parameter="groupId")


def _manager(principal: Principal, group_id: str) -> None:
    """The group's publishers and City staff manage members and tokens (404 to outsiders, 403 to members)."""
    _visible(principal, group_id)
    if not principal.has_role(group_id, PUBLISHER):
        raise Forbidden("only the group's publishers and City staff manage its members and tokens")


@router.get("/me", summary="Who the token is")
async def me(principal: SignedInDep) -> Response:
    """The token's subject, whether it is City staff, and its role in each group."""
    body = {"subject": principal.subject, "staff": principal.is_staff, "groups": dict(principal.roles)}
    return json_response(body, public=False)


@router.get("/groups", summary="The groups the caller belongs to (City staff: every group)")
async def list_groups(request: Request, state: StateDep, principal: SignedInDep) -> Response:
    """Every group for staff; the caller's own groups for everyone else."""
    async with state.db.connection(Workload.WRITES) as conn:
        found = await groups.list_groups(conn, None if principal.is_staff else sorted(principal.roles))
    docs = [group_document(g, principal, state.settings, base_url(request)) for g in found]
    return json_response({"groups": docs}, public=False)


@router.post("/groups", summary="Create a group (City staff)", status_code=201)
async def create_group(body: NewGroup, request: Request, state: StateDep, principal: StaffDep) -> Response:
    """A new group; 409 when the id is taken."""
    async with state.db.connection(Workload.WRITES) as conn, conn.transaction():
        group = await groups.create_group(conn, body.id, body.name, name_fr=body.name_fr, contact=body.contact)
        await conn.execute(*audit(str(principal.subject), "group.create", None, {"name": body.name}, group_id=group.id))
    doc = group_document(group, principal, state.settings, base_url(request))
    return json_response(doc, public=False, status=201, headers={"Location": doc["links"][0]["href"]})


@router.get("/groups/{group_id}", summary="One group")
async def get_group(group_id: str, request: Request, state: StateDep, principal: SignedInDep) -> Response:
    """A group its members and City staff may see."""
    _visible(principal, group_id)
    async with state.db.connection(Workload.WRITES) as conn:
        group = await groups.get_group(conn, group_id)
    return json_response(group_document(group, principal, state.settings, base_url(request)), public=False)


@router.patch("/groups/{group_id}", summary="Change a group's names, contact or quotas (City staff)")
async def patch_group(group_id: str, request: Request, state: StateDep, principal: StaffDep) -> Response:
    """JSON merge-patch of name, name_fr, contact, max_upload_mb, max_features, max_layers, uploads_per_hour,
    require_if_match (null clears a quota)."""
    changes = await json_object(request)
    async with state.db.connection(Workload.WRITES) as conn, conn.transaction():
        group = await groups.update_group(conn, group_id, changes)
        await conn.execute(*audit(str(principal.subject), "group.update", None, changes, group_id=group_id))
    return json_response(group_document(group, principal, state.settings, base_url(request)), public=False)


@router.get("/groups/{group_id}/members", summary="A group's members and their roles")
async def list_members(group_id: str, state: StateDep, principal: SignedInDep) -> Response:
    """For the group's publishers and City staff."""
    _manager(principal, group_id)
    async with state.db.connection(Workload.WRITES) as conn:
        members = await groups.list_members(conn, group_id)
    return json_response({"members": [{"subject": m.subject, "role": m.role} for m in members]}, public=False)


@router.post("/groups/{group_id}/members", summary="Add a member, or change a member's role")
async def set_member(group_id: str, body: NewMember, state: StateDep, principal: SignedInDep) -> Response:
    """For the group's publishers (up to their own role) and City staff."""
    _manager(principal, group_id)
    _not_above(principal, group_id, body.role)
    async with state.db.connection(Workload.WRITES) as conn, conn.transaction():
        await groups.get_group(conn, group_id)
        member = await groups.set_member(conn, group_id, body.subject, body.role)
        detail = {"subject": member.subject, "role": member.role}
        await conn.execute(*audit(str(principal.subject), "member.set", None, detail, group_id=group_id))
    return json_response({"subject": member.subject, "role": member.role}, public=False)


@router.delete("/groups/{group_id}/members/{subject}", summary="Take a member out of a group", status_code=204)
async def remove_member(group_id: str, subject: str, state: StateDep, principal: SignedInDep) -> Response:
    """Its tokens lose the group's rights at once, on every server."""
    _manager(principal, group_id)
    async with state.db.connection(Workload.WRITES) as conn, conn.transaction():
        if not await groups.remove_member(conn, group_id, subject):
            raise NotFound(f"{subject[:80]!r} is not a member of this group", parameter="subject")
        await conn.execute(
            *audit(str(principal.subject), "member.remove", None, {"subject": subject}, group_id=group_id)
        )
    return Response(status_code=204)


@router.get("/groups/{group_id}/tokens", summary="A group's tokens (prefixes only)")
async def list_tokens(group_id: str, state: StateDep, principal: SignedInDep) -> Response:
    """Every token this group issued: prefix, subject, label, dates; never a token itself."""
    _manager(principal, group_id)
    async with state.db.connection(Workload.WRITES) as conn:
        found = await tokens.list_tokens(conn, group_id)
    return json_response({"tokens": [token_document(t) for t in found]}, public=False)


@router.post("/groups/{group_id}/tokens", summary="Issue a token for a member (shown once)", status_code=201)
async def issue_token(group_id: str, body: NewToken, state: StateDep, principal: SignedInDep) -> Response:
    """A token scoped to this group: it carries the subject's role here and nothing else."""
    _manager(principal, group_id)
    if body.role is not None:
        _not_above(principal, group_id, body.role)
    expires = datetime.now(UTC) + timedelta(days=body.expires_in_days)
    async with state.db.connection(Workload.WRITES) as conn, conn.transaction():
        await groups.get_group(conn, group_id)
        if body.role is not None:
            await groups.set_member(conn, group_id, body.subject, body.role)
        token, prefix = await tokens.issue_token(
            conn, body.subject, group_id=group_id, label=body.label, expires_at=expires,
            created_by=principal.subject,
        )  # fmt: skip
        detail = {"prefix": prefix, "subject": body.subject, "role": body.role}
        await conn.execute(*audit(str(principal.subject), "token.issue", None, detail, group_id=group_id))
    doc = {"token": token, "prefix": prefix, "subject": body.subject, "group": group_id,
           "expires_at": iso(expires)}  # fmt: skip
    return json_response(doc, public=False, status=201)


@router.delete("/groups/{group_id}/tokens/{prefix}", summary="Revoke one of the group's tokens", status_code=204)
async def revoke_token(group_id: str, prefix: str, state: StateDep, principal: SignedInDep) -> Response:
    """The token stops working at once, on every server."""
    _manager(principal, group_id)
    async with state.db.connection(Workload.WRITES) as conn, conn.transaction():
        revoked = await tokens.revoke_token(conn, prefix, group_id)
        if revoked is None:
            raise NotFound(f"no token of this group starts with {prefix[:20]!r}", parameter="prefix")
        detail = {"prefix": prefix, "subject": revoked.subject}
        await conn.execute(*audit(str(principal.subject), "token.revoke", None, detail, group_id=group_id))
    return Response(status_code=204)


def token_document(token: tokens.TokenInfo) -> dict[str, Any]:
    """A token as lists show it."""
    return {
        "prefix": token.prefix, "subject": token.subject, "group": token.group_id, "staff": token.is_staff,
        "label": token.label, "created_by": token.created_by, "created_at": iso(token.created_at),
        "expires_at": _maybe(token.expires_at), "revoked_at": _maybe(token.revoked_at),
    }  # fmt: skip


def _maybe(moment: datetime | None) -> str | None:
    return iso(moment) if moment is not None else None


def _not_above(principal: Principal, group_id: str, role: str) -> None:
    """Nobody hands out a role above their own (City staff excepted)."""
    groups.check_role(role)
    if not principal.is_staff and role_rank(role) > role_rank(principal.roles.get(group_id)):
        raise Forbidden("you cannot give a role above your own")
