"""Where 311 requests live: the requests layer and the wards layer as the registry knows them, and the SQL that
publishes a point at its service's precision.

The names used in SQL all come from the catalogue's `Layer` records (resolved for an anonymous caller: GeoReport is
public, so a layer anonymous callers cannot see is not published here either).
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from layers.catalogue.records import Layer
from layers.catalogue.registry import Registry
from layers.catalogue.visibility import ANONYMOUS
from layers.errors import InvalidParameter, LayerNotFound
from layers.open311.catalogue import ServiceCatalogue

BLOCK_SRID = 3776  # the City's 3TM grid, in metres
BLOCK_M = 100  # `block` precision: the nearest point of a 100 m grid, about a city block


class ServiceError(InvalidParameter):
    """GeoReport's "general service error" (400): the server is not set up to answer, whatever the request."""


@dataclass(frozen=True)
class RequestsLayer:
    """The layer requests are published in, with the columns each role maps to, and the wards layer."""

    layer: Layer
    code: str
    status: str
    requested: str
    closed: str
    wards: Layer
    ward_name: str

    def column(self, role: str) -> sql.Identifier:
        """A role's column (`code`, `status`, `requested`, `closed`), quoted."""
        return sql.Identifier(getattr(self, role))

    @property
    def id(self) -> sql.Identifier:
        """The request id column, quoted."""
        return sql.Identifier(self.layer.id_column)

    @property
    def geom(self) -> sql.Identifier:
        """The published point's column, quoted."""
        return sql.Identifier(self.layer.geometry_column)


def requests_layer(catalogue: ServiceCatalogue, registry: Registry) -> RequestsLayer:
    """The requests and wards layers; a general service error when either is not published with its fields."""
    try:
        layer = registry.resolve(catalogue.requests_layer, ANONYMOUS)
        wards = registry.resolve(catalogue.wards.layer, ANONYMOUS)
    except LayerNotFound:
        raise ServiceError("general service error: the 311 layers are not published on this server") from None
    roles = {
        "code": layer.category_field,
        "status": layer.public_field(catalogue.status_field),
        "requested": layer.time_start_field,
        "closed": layer.time_end_field,
    }
    if (
        any(layer.public_field(name) is None for name in roles.values())
        or wards.public_field(catalogue.wards.name_field) is None
    ):
        raise ServiceError("general service error: the 311 layer does not have the fields GeoReport needs")
    code, status, requested, closed = (str(roles[r]) for r in ("code", "status", "requested", "closed"))
    return RequestsLayer(layer, code, status, requested, closed, wards=wards, ward_name=catalogue.wards.name_field)


def published(point: sql.Composable, block: sql.Composable) -> sql.Composable:
    """The point as published: itself, or (where `block` is true) the nearest node of the block grid."""
    return sql.SQL(
        "CASE WHEN {block} THEN ST_Transform(ST_SnapToGrid(ST_Transform({p}, {srid}), {cell}), 4326) ELSE {p} END"
    ).format(block=block, p=point, srid=sql.Literal(BLOCK_SRID), cell=sql.Literal(BLOCK_M))


def block_codes(catalogue: ServiceCatalogue) -> list[str]:
    """The service codes whose locations are published at block precision."""
    return [s.code for s in catalogue.services if s.location == "block"]
