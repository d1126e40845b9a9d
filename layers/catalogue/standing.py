"""Whether a bearer token still stands for what a server remembers of it, confirmed inside a write's own statement.

A server may remember what a token stood for (a `Principal`) to spare a feature edit the round trip of looking it
up. The write then confirms it in the same statement, against the tokens and memberships as they are at that moment:
the token is neither revoked nor expired, and it still stands for the same subject, staff flag and role in the
layer's group, read as `principal_for_token` (layers.access.tokens) reads them: a token a group issued carries its
subject's role in that group only. A write whose caller is not confirmed writes nothing, so a revocation, an expiry or
a change of role takes effect on the next write on every server, as it does for every other request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from layers.catalogue.models import MEMBERSHIPS_TABLE, TOKENS_TABLE
from layers.catalogue.visibility import Principal
from layers.sqlcompose import Slot


class NotConfirmed(Exception):
    """The caller's token no longer stands for what the server took it for: nothing was written."""


# True while the token stands for the remembered subject, staff flag and role in the group (NULL: none).
STILL_STANDS = sql.SQL(
    "EXISTS (SELECT 1 FROM {tokens} AS t WHERE t.token_sha256 = {digest} AND t.revoked_at IS NULL "
    "AND (t.expires_at IS NULL OR t.expires_at > now()) AND t.subject = {subject} AND t.is_staff = {staff} "
    "AND (SELECT m.role FROM {memberships} AS m WHERE m.subject = t.subject AND m.group_id = {group} "
    "AND (t.group_id IS NULL OR t.group_id = {group})) IS NOT DISTINCT FROM {role})"
).format(
    tokens=TOKENS_TABLE,
    memberships=MEMBERSHIPS_TABLE,
    digest=Slot("standing_digest"),
    subject=Slot("standing_subject"),
    staff=Slot("standing_staff"),
    group=Slot("standing_group"),
    role=Slot("standing_role"),
)


@dataclass(frozen=True)
class Standing:
    """What a caller's token stood for when it was looked up: the claim a write confirms (`STILL_STANDS`)."""

    digest: bytes  # the token's SHA-256 digest, as stored; never the token itself
    subject: str
    is_staff: bool
    roles: Mapping[str, str] = field(default_factory=dict)  # group id -> role

    @classmethod
    def of(cls, digest: bytes, principal: Principal) -> Standing:
        """What a signed-in principal's token stands for."""
        if principal.subject is None:
            raise ValueError("an anonymous caller has no token to stand for anything")
        return cls(digest, principal.subject, principal.is_staff, principal.roles)

    def values(self, group_id: str | None) -> dict[str, Any]:
        """The values `STILL_STANDS` is run with, for a layer of this group (None for a City layer)."""
        role = self.roles.get(group_id) if group_id is not None else None
        return {
            "standing_digest": self.digest,
            "standing_subject": self.subject,
            "standing_staff": self.is_staff,
            "standing_group": group_id,
            "standing_role": role,
        }
