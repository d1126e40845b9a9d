"""The registry: field privacy and visibility per caller."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import psycopg
import pytest

from layers.catalogue.visibility import ANONYMOUS, Principal
from layers.errors import InvalidParameter, LayerNotFound
from layers.ingest.load import load_file
from tests.support.layers import drop_layer, features_query, fresh_registry, manifest, point, write_geojson

CANARY = "CANARY-7f3a-private"
PRIVATE_FIELDS = ("requester_contact", "Internal Notes")


@pytest.fixture(scope="module")
def private_layer(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A layer whose private columns all hold the canary value."""
    tmp = tmp_path_factory.mktemp("private")
    features = [
        (
            {"code": f"SR-{i}", "status": "open", **{f: f"{CANARY}-{i}" for f in PRIVATE_FIELDS}},
            point(-114.07, 51.05 + i / 1000),
        )
        for i in range(20)
    ]
    path = write_geojson(tmp / "requests.geojson", features)
    load_file(database_url, manifest("requests_private", ["code", "status"], id_field="code"), path)
    yield "requests_private"
    drop_layer(database_url, "requests_private")


def test_private_fields_never_enter_the_layer_record(conn: psycopg.Connection, private_layer: str) -> None:
    layer = fresh_registry(conn).resolve(private_layer, ANONYMOUS)
    assert layer.field_names == ("code", "status")
    query, _ = features_query(layer, limit=1)
    dumped = repr(dataclasses.asdict(layer)) + repr(layer) + query.decode()
    for name in PRIVATE_FIELDS:
        assert name not in dumped
    assert CANARY not in dumped


def test_private_fields_are_never_selected(conn: psycopg.Connection, private_layer: str) -> None:
    layer = fresh_registry(conn).resolve(private_layer, ANONYMOUS)
    query, params = features_query(layer, limit=100)
    rows = conn.execute(query, params).fetchall()
    assert len(rows) == 20
    assert CANARY not in repr(rows)
    for name in PRIVATE_FIELDS:
        assert name not in query.decode()
    # The canary is really in the table: the check above would have caught a leak.
    leaked = conn.execute(
        'SELECT count(*) FROM layer_data.requests_private WHERE "Internal Notes" LIKE %s', [f"{CANARY}%"]
    )
    assert leaked.fetchone() == (20,)


def test_private_and_unknown_fields_are_refused_alike(conn: psycopg.Connection, private_layer: str) -> None:
    layer = fresh_registry(conn).resolve(private_layer, ANONYMOUS)
    with pytest.raises(InvalidParameter) as private:
        layer.field("requester_contact")
    with pytest.raises(InvalidParameter) as unknown:
        layer.field("no_such_field")
    assert str(private.value).replace("requester_contact", "X") == str(unknown.value).replace("no_such_field", "X")
    assert layer.field("status").name == "status"


@pytest.fixture(scope="module")
def group_layer(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A layer visible to the 'bowness-community' group only."""
    tmp = tmp_path_factory.mktemp("group")
    path = write_geojson(tmp / "overlay.geojson", [({"name": "pancake breakfast"}, point(-114.18, 51.09))])
    m = manifest("bowness overlay", ["name"], visibility="group:bowness-community")
    load_file(database_url, m, path)
    yield "bowness overlay"
    drop_layer(database_url, "bowness overlay")


@pytest.mark.parametrize(
    "principal",
    [ANONYMOUS, Principal(subject="someone", roles={"other-group": "viewer"})],
    ids=["anonymous", "other group"],
)
def test_an_invisible_layer_resolves_exactly_like_a_missing_one(
    conn: psycopg.Connection, group_layer: str, principal: Principal
) -> None:
    catalogue = fresh_registry(conn)
    with pytest.raises(LayerNotFound) as hidden:
        catalogue.resolve(group_layer, principal)
    with pytest.raises(LayerNotFound) as missing:
        catalogue.resolve("no such layer", principal)
    assert type(hidden.value) is type(missing.value)
    assert hidden.value.message.replace(group_layer, "X") == missing.value.message.replace("no such layer", "X")
    assert group_layer not in [layer.id for layer in catalogue.visible(principal)]


def test_members_and_staff_see_a_group_layer(conn: psycopg.Connection, group_layer: str) -> None:
    catalogue = fresh_registry(conn)
    member = Principal(subject="ann", roles={"bowness-community": "viewer"})
    staff = Principal(subject="gis", is_staff=True)
    assert catalogue.resolve(group_layer, member).group_id == "bowness-community"
    assert catalogue.resolve(group_layer, staff).id == group_layer
    assert group_layer in [layer.id for layer in catalogue.visible(member)]
    assert group_layer not in [layer.id for layer in catalogue.visible(ANONYMOUS)]


def test_the_catalogue_row_is_defined_once() -> None:
    """The record's attributes are the catalogue table's columns by name, plus the derived `fields`, `bbox`,
    `count_kept` and `id_indexed` (read from the table's triggers and indexes with the catalogue)."""
    import dataclasses

    from layers.catalogue.models import LayerRow
    from layers.catalogue.records import Layer
    from layers.catalogue.registry import RECORD_COLUMNS

    derived = {"fields", "bbox", "publisher", "count_kept", "id_indexed", "_by_name"}
    attributes = {f.name for f in dataclasses.fields(Layer)}
    columns = set(LayerRow.__table__.c.keys())
    assert attributes - derived == set(RECORD_COLUMNS) <= columns
    assert columns - attributes == {
        "manifest",
        "extent",
        "created_at",
        "deleted_at",
    }  # stored, never handed to the server
