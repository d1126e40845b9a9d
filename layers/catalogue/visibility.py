"""Who is asking (`Principal`) and what they may see: every read asks the registry with the caller's principal."""

from __future__ import annotations

from dataclasses import dataclass

from layers.catalogue.records import Layer


@dataclass(frozen=True)
class Principal:
    """Who is asking: anonymous, a member of some groups, or City staff."""

    subject: str | None = None
    groups: frozenset[str] = frozenset()
    is_staff: bool = False

    @property
    def is_anonymous(self) -> bool:
        """True for a caller with no credentials."""
        return self.subject is None

    def can_see(self, layer: Layer) -> bool:
        """Public layers for everyone; a group's layer for its members and City staff."""
        return layer.group_id is None or self.is_staff or layer.group_id in self.groups


ANONYMOUS = Principal()
