"""Who is asking (`Principal`) and what they may do: every read asks the registry with the caller's principal.

Roles in a group, from least to most: `viewer` sees the group's layers, `editor` also uploads and edits them,
`publisher` also makes them public, shares them, and manages the group's members and tokens. City staff may do
everything and see everything. A layer the caller may not see is indistinguishable from one that does not exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from layers.catalogue.records import Layer

ROLES = ("viewer", "editor", "publisher")  # in increasing order of what they may do
VIEWER, EDITOR, PUBLISHER = ROLES


def role_rank(role: str | None) -> int:
    """0 for no role, then 1, 2, 3 in the order of ROLES."""
    return ROLES.index(role) + 1 if role in ROLES else 0


@dataclass(frozen=True)
class Principal:
    """Who is asking: anonymous, a subject with roles in some groups, or City staff."""

    subject: str | None = None
    roles: Mapping[str, str] = field(default_factory=dict)  # group id -> role
    is_staff: bool = False

    @property
    def is_anonymous(self) -> bool:
        """True for a caller with no credentials."""
        return self.subject is None

    @property
    def groups(self) -> frozenset[str]:
        """The groups the caller belongs to, whatever the role."""
        return frozenset(self.roles)

    def has_role(self, group_id: str | None, at_least: str) -> bool:
        """True for staff, or when the caller's role in the group is `at_least` or higher."""
        if self.is_staff:
            return True
        return group_id is not None and role_rank(self.roles.get(group_id)) >= role_rank(at_least)

    def can_see(self, layer: Layer) -> bool:
        """Public layers for everyone; a restricted one for its owner group, the groups it is shared with, staff."""
        if layer.is_public or self.is_staff:
            return True
        return any(g in self.roles for g in (layer.group_id, *layer.shared_groups) if g is not None)

    def can_edit(self, layer: Layer) -> bool:
        """Change a layer's data: its owner group's editors and publishers for an overlay; staff for anything."""
        return self.is_staff or (layer.is_community and self.has_role(layer.group_id, EDITOR))

    def can_publish(self, layer: Layer) -> bool:
        """Change who sees a layer, and its metadata: the owner group's publishers for an overlay; staff."""
        return self.is_staff or (layer.is_community and self.has_role(layer.group_id, PUBLISHER))


ANONYMOUS = Principal()
