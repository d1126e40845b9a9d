"""OGC API Features Part 4 over HTTP, as QGIS and a phone app edit: create, replace, patch, delete, restore, with
ETags; every write in history and the audit log; bad writes refused with the stored feature unchanged.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from fastapi.testclient import TestClient

from layers.ingest.in_place import publish_table
from tests.support.access import issue
from tests.support.layers import drop_layer, manifest, point
from tests.support.uploads import bearer, geojson_bytes, upload

GROUP = "edit-club"
LAYER = "edit club closures"
L = quote(LAYER, safe="")
PATCH = "application/merge-patch+json"


def feature(name: str, lon: float = -114.07, lat: float = 51.04, **props: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": point(lon, lat), "properties": {"name": name, **props}}


@pytest.fixture(scope="module")
def people(client: TestClient, database_url: str) -> dict[str, str]:
    staff = issue(database_url, "gis@edits", staff=True)
    assert client.post("/groups", json={"id": GROUP, "name": "Edit club"}, headers=bearer(staff)).status_code == 201
    editor = issue(database_url, "ed@edits", {GROUP: "editor"})
    start = geojson_bytes(
        [
            ({"name": f"closure {i}", "lanes": i, "secret": "CANARY-EDIT"}, point(-114.07, 51.04 + i / 1000))
            for i in range(1, 4)
        ]
    )
    made = upload(client, editor, "c.geojson", start, id=LAYER, title="Closures", group=GROUP, private_fields="secret")
    assert made.status_code == 201, made.text
    return {
        "staff": staff,
        "editor": editor,
        "viewer": issue(database_url, "v@edits", {GROUP: "viewer"}),
        "outsider": issue(database_url, "o@elsewhere", {"edit-outsiders": "editor"}),
    }


def get(client: TestClient, token: str, fid: Any) -> Any:
    return client.get(f"/collections/{L}/items/{fid}", headers=bearer(token))


def test_create_replace_patch_delete_restore_with_etags(client: TestClient, people: dict[str, str]) -> None:
    ed = bearer(people["editor"])
    created = client.post(f"/collections/{L}/items", json=feature("stage", lanes=2), headers=ed)
    assert created.status_code == 201, created.text
    fid = created.json()["id"]
    assert created.headers["location"].endswith(f"/collections/{L}/items/{fid}")
    assert get(client, people["editor"], fid).headers["etag"] == created.headers["etag"]
    moved = client.put(
        f"/collections/{L}/items/{fid}",
        json=feature("stage", -114.06, 51.05, lanes=3),
        headers={**ed, "If-Match": created.headers["etag"]},
    )
    assert moved.status_code == 200 and moved.json()["geometry"]["coordinates"] == [-114.06, 51.05]
    patched = client.patch(
        f"/collections/{L}/items/{fid}",
        json={"properties": {"lanes": None}},
        headers={**ed, "Content-Type": PATCH, "If-Match": moved.headers["etag"]},
    )
    assert patched.status_code == 200 and patched.json()["properties"] == {"name": "stage", "lanes": None}
    assert patched.headers["etag"] not in (created.headers["etag"], moved.headers["etag"])
    deleted = client.delete(f"/collections/{L}/items/{fid}", headers={**ed, "If-Match": patched.headers["etag"]})
    assert deleted.status_code == 204 and get(client, people["editor"], fid).status_code == 404
    versions = client.get(f"/collections/{L}/items/{fid}/versions", headers=ed).json()["versions"]
    assert client.get(f"/collections/{L}/items/{fid}/versions?f=json", headers=ed).json()["versions"] == versions
    assert [(v["version"], v["op"], v["deleted"]) for v in versions] == [
        (1, "create", False),
        (2, "replace", False),
        (3, "update", False),
        (4, "delete", True),
    ]
    assert all(v["actor"] == "ed@edits" for v in versions)
    restored = client.post(f"/collections/{L}/items/{fid}/versions/2/restore", headers=ed)
    assert restored.status_code == 200 and restored.json()["properties"]["lanes"] == 3
    assert client.get(f"/collections/{L}/items/{fid}/versions/5", headers=ed).json()["version"]["op"] == "restore"


def test_a_new_feature_never_takes_the_id_of_a_deleted_one(client: TestClient, people: dict[str, str]) -> None:
    # The deleted feature stays in history and can be restored: its id is not free for another feature.
    ed = bearer(people["editor"])
    first = client.post(f"/collections/{L}/items", json=feature("pop-up stage"), headers=ed)
    assert first.status_code == 201, first.text
    fid = first.json()["id"]
    assert client.delete(f"/collections/{L}/items/{fid}", headers=ed).status_code == 204
    second = client.post(f"/collections/{L}/items", json=feature("another stage"), headers=ed)
    assert second.status_code == 201, second.text
    assert second.json()["id"] != fid
    restored = client.post(f"/collections/{L}/items/{fid}/versions/1/restore", headers=ed)
    assert restored.status_code == 200 and restored.json()["properties"]["name"] == "pop-up stage"
    assert get(client, people["editor"], second.json()["id"]).json()["properties"]["name"] == "another stage"


def test_an_id_given_again_continues_the_deleted_features_history(client: TestClient, people: dict[str, str]) -> None:
    ed = bearer(people["editor"])
    layer, coded = "edit club signs", quote("edit club signs", safe="")
    start = geojson_bytes([({"code": "S1", "name": "sign"}, point(-114.07, 51.04))])
    made = upload(client, people["editor"], "s.geojson", start, id=layer, title="Signs", group=GROUP, id_field="code")
    assert made.status_code == 201, made.text
    sign = {"type": "Feature", "id": "S9", "geometry": point(-114.06, 51.05), "properties": {"name": "new sign"}}
    assert client.post(f"/collections/{coded}/items", json=sign, headers=ed).status_code == 201
    assert client.delete(f"/collections/{coded}/items/S9", headers=ed).status_code == 204
    again = client.post(f"/collections/{coded}/items", json={**sign, "properties": {"name": "sign, again"}}, headers=ed)
    assert again.status_code == 201, again.text
    versions = client.get(f"/collections/{coded}/items/S9/versions", headers=ed).json()["versions"]
    assert [(v["version"], v["op"]) for v in versions] == [(1, "create"), (2, "delete"), (3, "create")]
    old = client.post(f"/collections/{coded}/items/S9/versions/1/restore", headers=ed)
    assert old.status_code == 200 and old.json()["properties"]["name"] == "new sign"


def test_an_edit_statement_is_composed_once_per_set_of_fields(client: TestClient, people: dict[str, str]) -> None:
    statements = client.app.state.geoserver.statements  # type: ignore[attr-defined]
    ed = {**bearer(people["editor"]), "Content-Type": PATCH}

    def patch(props: dict[str, Any]) -> int:
        answer = client.patch(f"/collections/{L}/items/1", json={"properties": props}, headers=ed)
        assert answer.status_code == 200, answer.text
        return len(statements)

    first = patch({"lanes": 4})
    assert patch({"lanes": 5}) == first  # the same fields again: the kept statement
    assert patch({"name": "closure 1", "lanes": 6}) == first + 1  # other fields: one more


def test_a_stale_if_match_is_412_and_changes_nothing(client: TestClient, people: dict[str, str]) -> None:
    ed = bearer(people["editor"])
    before = get(client, people["editor"], 1)
    client.patch(f"/collections/{L}/items/1", json={"properties": {"lanes": 7}}, headers={**ed, "Content-Type": PATCH})
    stale = client.patch(
        f"/collections/{L}/items/1",
        json={"properties": {"lanes": 9}},
        headers={**ed, "Content-Type": PATCH, "If-Match": before.headers["etag"]},
    )
    assert stale.status_code == 412 and stale.json()["code"] == "precondition_failed"
    assert get(client, people["editor"], 1).json()["properties"]["lanes"] == 7


def test_loaded_features_keep_their_first_version_and_private_fields(
    client: TestClient, people: dict[str, str]
) -> None:
    ed = bearer(people["editor"])
    client.put(f"/collections/{L}/items/2", json=feature("renamed", lanes=5), headers=ed)
    versions = client.get(f"/collections/{L}/items/2/versions", headers=ed).json()["versions"]
    assert [v["op"] for v in versions][:2] == ["load", "replace"]
    first = client.get(f"/collections/{L}/items/2/versions/1", headers=ed)
    assert first.json()["properties"]["name"] == "closure 2" and "secret" not in first.text
    history = client.get(f"/collections/{L}/history", headers=ed)
    assert history.status_code == 200 and "CANARY-EDIT" not in history.text and "secret" not in history.text
    assert client.get(f"/collections/{L}/history", headers=bearer(people["outsider"])).status_code == 404


@pytest.mark.parametrize(
    ("method", "body", "parameter"),
    [
        ("patch", {"geometry": None}, "geometry"),
        ("patch", {"properties": {"fid": None}}, "fid"),
        ("patch", {"properties": {"colour": "red"}}, "colour"),
        ("patch", {"properties": {"secret": "x"}}, "secret"),
        ("patch", {"properties": {"lanes": "many"}}, "lanes"),
        ("patch", {"properties": {"lanes": True}}, "lanes"),
        ("put", {"type": "Feature", "properties": {}}, "body"),
        ("put", {**feature("x"), "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}}, "geometry"),
        ("put", {**feature("x"), "geometry": {"type": "Point", "coordinates": [51.04, -114.07]}}, "geometry"),
        ("put", {**feature("x"), "geometry": {"type": "Point", "coordinates": []}}, "geometry"),
        ("put", {**feature("x"), "id": 999}, "id"),
        ("put", ["not", "a", "feature"], "body"),
    ],
)
def test_bad_writes_are_400_naming_the_problem_and_change_nothing(
    client: TestClient, people: dict[str, str], method: str, body: Any, parameter: str
) -> None:
    before = get(client, people["editor"], 3).json()
    headers = {**bearer(people["editor"]), "Content-Type": PATCH if method == "patch" else "application/geo+json"}
    answer = client.request(method.upper(), f"/collections/{L}/items/3", json=body, headers=headers)
    assert answer.status_code == 400, answer.text
    assert answer.json()["parameter"] == parameter and "CANARY" not in answer.text
    assert get(client, people["editor"], 3).json() == before


def test_private_and_unknown_names_are_refused_in_the_same_words(client: TestClient, people: dict[str, str]) -> None:
    headers = {**bearer(people["editor"]), "Content-Type": PATCH}
    words = []
    for name in ("secret", "no_such_field"):
        answer = client.patch(f"/collections/{L}/items/3", json={"properties": {name: "x"}}, headers=headers)
        words.append(answer.json()["description"].replace(name, "N"))
    assert words[0] == words[1]


def test_who_may_write_and_what_options_say(client: TestClient, people: dict[str, str]) -> None:
    body = feature("x")
    assert client.post(f"/collections/{L}/items", json=body).status_code == 404  # anonymous: not visible
    assert client.post(f"/collections/{L}/items", json=body, headers=bearer(people["viewer"])).status_code == 403
    assert client.post(f"/collections/{L}/items", json=body, headers=bearer(people["outsider"])).status_code == 404
    assert client.post("/collections/wards/items", json=body).status_code == 401
    assert client.post("/collections/wards/items", json=body, headers=bearer(people["editor"])).status_code == 403
    allow = client.options(f"/collections/{L}/items/1", headers=bearer(people["editor"])).headers["allow"]
    assert set(allow.split(", ")) == {"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"}
    allow = client.options(f"/collections/{L}/items/1", headers=bearer(people["viewer"])).headers["allow"]
    assert set(allow.split(", ")) == {"GET", "HEAD", "OPTIONS"}
    assert "POST" in client.options(f"/collections/{L}/items", headers=bearer(people["editor"])).headers["allow"]
    conformance = client.get("/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/optimistic-locking-etags" in conformance


def test_staff_edit_city_layers_but_tables_published_in_place_are_read_only(
    client: TestClient, people: dict[str, str], database_url: str
) -> None:
    staff = bearer(people["staff"])
    wards = client.get("/collections/wards/items/1", headers=staff)
    renamed = client.patch(
        "/collections/wards/items/1",
        json={"properties": {"name": "Ward One (renamed)"}},
        headers={**staff, "Content-Type": PATCH, "If-Match": wards.headers["etag"]},
    )
    assert renamed.status_code == 200, renamed.text
    assert client.post("/collections/wards/items/1/versions/1/restore", headers=staff).status_code == 200
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "DROP TABLE IF EXISTS public.edit_in_place; CREATE TABLE public.edit_in_place AS "
            "SELECT 1 AS id, 'kept' AS name, "
            "ST_SetSRID(ST_MakePoint(-114.07, 51.04), 4326)::geometry(Point, 4326) AS geom"
        )
    publish_table(
        database_url,
        manifest("edits in place", ["id", "name"], id_field="id", source={"table": "public.edit_in_place"}),
    )
    try:
        deadline = time.monotonic() + 15
        while client.get("/collections/edits%20in%20place").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        refused = client.patch(
            "/collections/edits%20in%20place/items/1",
            json={"properties": {"name": "x"}},
            headers={**staff, "Content-Type": PATCH},
        )
        assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD, OPTIONS"
        assert client.options("/collections/edits%20in%20place/items/1", headers=staff).headers["allow"] == (
            "GET, HEAD, OPTIONS"
        )
    finally:
        drop_layer(database_url, "edits in place", "public.edit_in_place")


def test_require_if_match_is_428_without_it(client: TestClient, people: dict[str, str]) -> None:
    assert (
        client.patch(f"/groups/{GROUP}", json={"require_if_match": True}, headers=bearer(people["staff"])).status_code
        == 200
    )
    try:
        headers = {**bearer(people["editor"]), "Content-Type": PATCH}
        missing = client.patch(f"/collections/{L}/items/3", json={"properties": {"lanes": 1}}, headers=headers)
        assert missing.status_code == 428 and missing.json()["code"] == "precondition_required"
        etag = get(client, people["editor"], 3).headers["etag"]
        assert (
            client.patch(
                f"/collections/{L}/items/3", json={"properties": {"lanes": 1}}, headers={**headers, "If-Match": etag}
            ).status_code
            == 200
        )
    finally:
        client.patch(f"/groups/{GROUP}", json={"require_if_match": False}, headers=bearer(people["staff"]))


def test_a_batch_of_ten_thousand_is_stored_whole_or_not_at_all(client: TestClient, people: dict[str, str]) -> None:
    ed = bearer(people["editor"])
    count = client.get(f"/collections/{L}/items?limit=1", headers=ed).json()["numberMatched"]
    batch = [feature(f"cone {i}", -114.1 + i / 100_000, 51.0) for i in range(10_000)]
    broken = [*batch[:-1], {**batch[-1], "properties": {"name": "bad", "lanes": "x"}}]
    refused = client.post(f"/collections/{L}/items", json={"type": "FeatureCollection", "features": broken}, headers=ed)
    assert refused.status_code == 400 and refused.json()["parameter"] == "lanes"
    assert "feature 9999" in refused.json()["description"]
    assert client.get(f"/collections/{L}/items?limit=1", headers=ed).json()["numberMatched"] == count
    too_many = {"type": "FeatureCollection", "features": [*batch, batch[0]]}
    assert client.post(f"/collections/{L}/items", json=too_many, headers=ed).status_code == 413
    stored = client.post(f"/collections/{L}/items", json={"type": "FeatureCollection", "features": batch}, headers=ed)
    assert stored.status_code == 201 and stored.json()["numberCreated"] == 10_000
    assert client.get(f"/collections/{L}/items?limit=1", headers=ed).json()["numberMatched"] == count + 10_000


def test_every_write_is_in_the_audit_log_for_staff_only(client: TestClient, people: dict[str, str]) -> None:
    entries = client.get(f"/audit?layer={L}&limit=1000", headers=bearer(people["staff"])).json()["entries"]
    actions = {e["action"] for e in entries}
    assert {
        "upload",
        "feature.create",
        "feature.replace",
        "feature.update",
        "feature.delete",
        "feature.restore",
    } <= actions
    assert all(e["group"] == GROUP for e in entries)
    by_editor = client.get("/audit?subject=ed@edits", headers=bearer(people["staff"])).json()["entries"]
    assert by_editor and all(e["actor"] == "ed@edits" for e in by_editor)
    assert client.get("/audit", headers=bearer(people["editor"])).status_code == 403
    assert client.get("/audit?since=yesterday", headers=bearer(people["staff"])).status_code == 400


def test_a_geometry_in_the_citys_survey_grid_is_stored_in_wgs84(client: TestClient, people: dict[str, str]) -> None:
    ed = {**bearer(people["editor"]), "Content-Crs": "<http://www.opengis.net/def/crs/EPSG/0/3776>"}
    body = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [4995.0, 5656000.0]},
        "properties": {"name": "3tm"},
    }
    created = client.post(f"/collections/{L}/items", json=body, headers=ed)
    assert created.status_code == 201, created.text
    lon, lat = created.json()["geometry"]["coordinates"]
    assert -114.1 < lon < -113.9 and 51.0 < lat < 51.1
    far = {**body, "geometry": {"type": "Point", "coordinates": [1e12, 1e12]}}
    assert client.post(f"/collections/{L}/items", json=far, headers=ed).status_code == 400
