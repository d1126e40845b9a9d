"""Loading files into managed layers: reprojection, repair, atomic swap, refusals, hostile names."""

from __future__ import annotations

import queue
import zipfile
from pathlib import Path
from typing import Any

import geopandas as gpd
import psycopg
import pytest
from shapely.geometry import Point, Polygon

from layers.catalogue.visibility import ANONYMOUS
from layers.errors import IngestError
from layers.ingest import load as ingest
from layers.ingest.load import load_file
from tests.support.layers import features_query, fresh_registry, manifest, point, write_geojson

CALGARY = (-114.07, 51.05)


def _rows(conn: psycopg.Connection, layer_id: str) -> list[tuple]:
    layer = fresh_registry(conn).resolve(layer_id, ANONYMOUS)
    query, params = features_query(layer, limit=1000)
    return conn.execute(query, params).fetchall()


def test_load_creates_managed_table_with_3857_column_and_gist_indexes(
    database_url: str, conn: psycopg.Connection, tmp_path: Path
) -> None:
    path = write_geojson(
        tmp_path / "points.geojson",
        [({"name": f"p{i}", "n": i}, point(CALGARY[0] + i / 100, CALGARY[1])) for i in range(5)],
    )
    result = load_file(database_url, manifest("idx_points", ["name", "n"]), path)
    assert result.feature_count == 5 and result.version == 1
    layer = fresh_registry(conn).resolve("idx_points", ANONYMOUS)
    assert layer.geometry_3857_column == "geom_3857" and layer.geometry_type == "Point"
    srid = conn.execute(
        "SELECT ST_SRID(geom_3857), ST_X(geom_3857) FROM layer_data.idx_points ORDER BY fid LIMIT 1"
    ).fetchone()
    assert srid is not None and srid[0] == 3857 and -12_800_000 < srid[1] < -12_600_000
    generated = conn.execute(
        "SELECT attgenerated FROM pg_attribute WHERE attrelid = 'layer_data.idx_points'::regclass "
        "AND attname = 'geom_3857'"
    ).fetchone()
    assert generated == ("s",)
    indexes = conn.execute(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'layer_data' AND tablename = 'idx_points'"
    ).fetchall()
    gist = [d for (d,) in indexes if "USING gist" in d]
    assert any("(geom)" in d for d in gist) and any("(geom_3857)" in d for d in gist)
    assert layer.bbox is not None and layer.bbox[0] == pytest.approx(CALGARY[0])


def test_reload_replaces_the_layer_and_bumps_the_version(
    database_url: str, conn: psycopg.Connection, tmp_path: Path
) -> None:
    m = manifest("reloaded", ["name"])
    load_file(database_url, m, write_geojson(tmp_path / "a.geojson", [({"name": "old"}, point(*CALGARY))]))
    second = write_geojson(
        tmp_path / "b.geojson", [({"name": "new"}, point(*CALGARY)), ({"name": "new2"}, point(*CALGARY))]
    )
    result = load_file(database_url, m, second)
    assert result.version == 2
    assert sorted(r[2]["name"] for r in _rows(conn, "reloaded")) == ["new", "new2"]
    leftovers = conn.execute(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'layer_data' AND tablename LIKE 'load\\_%'"
    )
    assert leftovers.fetchone() == (0,)


def test_failure_half_way_leaves_the_previous_version_intact(
    database_url: str, conn: psycopg.Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = manifest("kept", ["name"])
    load_file(database_url, m, write_geojson(tmp_path / "v1.geojson", [({"name": "v1"}, point(*CALGARY))]))

    def fail_at_publish(*args: object, **kwargs: object) -> int:
        # The rows are copied and indexed by now: the failure strikes between staging and swap.
        raise IngestError("injected failure after COPY")

    monkeypatch.setattr(ingest, "publish_rows", fail_at_publish)
    v2 = write_geojson(tmp_path / "v2.geojson", [({"name": f"v2-{i}"}, point(*CALGARY)) for i in range(50)])
    with pytest.raises(IngestError, match="injected"):
        load_file(database_url, m, v2)
    monkeypatch.undo()
    assert [r[2]["name"] for r in _rows(conn, "kept")] == ["v1"]
    assert fresh_registry(conn).resolve("kept", ANONYMOUS).version == 1
    leftovers = conn.execute(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'layer_data' AND tablename LIKE 'load\\_%'"
    )
    assert leftovers.fetchone() == (0,)


def test_failure_in_the_database_leaves_the_previous_version_intact(
    database_url: str, conn: psycopg.Connection, tmp_path: Path
) -> None:
    m = manifest("kept_db", ["name"], geometry_type="Point")
    load_file(database_url, m, write_geojson(tmp_path / "v1.geojson", [({"name": "v1"}, point(*CALGARY))]))
    bad = write_geojson(tmp_path / "v2.geojson", [({"name": f"v2-{i}"}, point(*CALGARY)) for i in range(10)])
    original = ingest._finish_table

    def finish_then_break(c: psycopg.Connection, *args: object) -> None:
        original(c, *args)  # type: ignore[arg-type]
        c.execute("SELECT 1/0")  # a real database error after the table is built

    ingest._finish_table = finish_then_break  # type: ignore[assignment]
    try:
        with pytest.raises(psycopg.errors.DivisionByZero):
            load_file(database_url, m, bad)
    finally:
        ingest._finish_table = original
    assert [r[2]["name"] for r in _rows(conn, "kept_db")] == ["v1"]


def test_a_file_without_crs_is_refused_with_a_clear_message(tmp_path: Path, database_url: str) -> None:
    frame = gpd.GeoDataFrame({"name": ["a"]}, geometry=[Point(700_000, 5_660_000)], crs=None)
    shp_dir = tmp_path / "shp"
    shp_dir.mkdir()
    with pytest.warns(UserWarning, match="'crs' was not provided"):
        frame.to_file(shp_dir / "nocrs.shp", engine="pyogrio")
    archive = tmp_path / "nocrs.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for part in shp_dir.iterdir():
            if part.suffix != ".prj":
                zf.write(part, part.name)
    with pytest.raises(IngestError, match=r"no coordinate reference system: give its EPSG code as `crs`"):
        load_file(database_url, manifest("nocrs", ["name"]), archive)


def test_a_file_without_crs_loads_when_one_is_given(
    database_url: str, conn: psycopg.Connection, tmp_path: Path
) -> None:
    # A point of the City's 3TM survey grid (EPSG:3776), in downtown Calgary.
    csv = tmp_path / "grid.csv"
    csv.write_text("name,x,y\ncity hall,-5700,5658000\n", encoding="utf-8")
    with pytest.raises(IngestError, match="--crs"):
        load_file(database_url, manifest("grid", ["name"]), csv)
    load_file(database_url, manifest("grid", ["name"]), csv, crs="EPSG:3776")
    lon, lat = conn.execute("SELECT ST_X(geom), ST_Y(geom) FROM layer_data.grid").fetchone()  # type: ignore[misc]
    assert -114.2 < lon < -113.9 and 50.9 < lat < 51.2


def test_swapped_coordinates_are_refused(database_url: str, tmp_path: Path) -> None:
    path = write_geojson(tmp_path / "swapped.geojson", [({"name": "x"}, point(51.05, -114.07))])
    with pytest.raises(IngestError, match="swapped"):
        load_file(database_url, manifest("swapped", ["name"]), path)


def test_invalid_polygons_are_repaired(database_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    x, y = CALGARY
    bowtie = Polygon([(x, y), (x + 0.01, y + 0.01), (x + 0.01, y), (x, y + 0.01), (x, y)])
    square = Polygon([(x, y), (x + 0.01, y), (x + 0.01, y + 0.01), (x, y + 0.01)])
    frame = gpd.GeoDataFrame({"name": ["bowtie", "square"]}, geometry=[bowtie, square], crs=4326)
    path = tmp_path / "shapes.geojson"
    frame.to_file(path, engine="pyogrio")
    result = load_file(database_url, manifest("shapes", ["name"]), path)
    assert result.repaired == 1
    valid = conn.execute("SELECT bool_and(ST_IsValid(geom)), min(GeometryType(geom)) FROM layer_data.shapes").fetchone()
    assert valid == (True, "MULTIPOLYGON")


def test_public_fields_missing_from_the_file_are_refused(database_url: str, tmp_path: Path) -> None:
    path = write_geojson(tmp_path / "a.geojson", [({"name": "x"}, point(*CALGARY))])
    with pytest.raises(IngestError, match="public fields not in the file: colour"):
        load_file(database_url, manifest("missing_fields", ["name", "colour"]), path)


def test_duplicate_ids_are_refused(database_url: str, tmp_path: Path) -> None:
    path = write_geojson(tmp_path / "a.geojson", [({"code": "A"}, point(*CALGARY)), ({"code": "A"}, point(*CALGARY))])
    with pytest.raises(IngestError, match="repeats a value"):
        load_file(database_url, manifest("dups", ["code"], id_field="code"), path)


def test_a_vrt_dressed_as_geojson_is_refused(database_url: str, tmp_path: Path) -> None:
    path = tmp_path / "evil.geojson"
    path.write_text(
        '<OGRVRTDataSource><OGRVRTLayer name="x"><SrcDataSource>/etc/passwd</SrcDataSource>'
        "</OGRVRTLayer></OGRVRTDataSource>"
    )
    with pytest.raises(IngestError, match="does not look like a geojson file"):
        load_file(database_url, manifest("evil", []), path)


HOSTILE_LAYER = 'Parks & "Rec" O\'Hare; --Mixed'
HOSTILE_FIELDS = ["Name With Space", 'say "hi"', "MiXeD", "it's; DROP TABLE x --"]


def test_hostile_layer_and_field_names_load_and_resolve(
    database_url: str, conn: psycopg.Connection, tmp_path: Path
) -> None:
    props = {name: f"value of {name}" for name in HOSTILE_FIELDS}
    path = write_geojson(tmp_path / "hostile.geojson", [(props, point(*CALGARY))])
    load_file(database_url, manifest(HOSTILE_LAYER, HOSTILE_FIELDS), path)
    layer = fresh_registry(conn).resolve(HOSTILE_LAYER, ANONYMOUS)
    assert layer.table_name == HOSTILE_LAYER
    assert set(layer.field_names) == set(HOSTILE_FIELDS)
    (row,) = _rows(conn, HOSTILE_LAYER)
    assert row[2] == props
    # The names were quoted, never executed: the catalogue and other tables are all still there.
    assert conn.execute("SELECT count(*) FROM geoserver.layers").fetchone()[0] >= 1  # type: ignore[index]


def test_hostile_names_in_a_published_table_resolve(database_url: str, conn: psycopg.Connection) -> None:
    conn.execute('CREATE SCHEMA IF NOT EXISTS "City Data"')
    conn.execute(
        'CREATE TABLE "City Data"."Odd ""Table"" Name" (gid int PRIMARY KEY, "Full Name" text, secret text, '
        "geom geometry(Point, 4326))"
    )
    conn.execute(
        'INSERT INTO "City Data"."Odd ""Table"" Name" VALUES (1, \'Bow River\', \'CANARY-TABLE\', '
        "ST_SetSRID(ST_MakePoint(-114.07, 51.05), 4326))"
    )
    from layers.ingest.in_place import publish_table

    m = manifest("published odd", ["Full Name"], id_field="gid", source={"table": 'City Data.Odd "Table" Name'})
    publish_table(database_url, m)
    layer = fresh_registry(conn).resolve("published odd", ANONYMOUS)
    assert layer.source_kind == "table" and layer.geometry_3857_column is None
    (row,) = _rows(conn, "published odd")
    assert row[0] == 1 and row[2] == {"Full Name": "Bow River"}
    assert "CANARY-TABLE" not in repr(row)


def test_zipped_shapefile_with_prj_loads_and_is_reprojected(
    database_url: str, conn: psycopg.Connection, tmp_path: Path
) -> None:
    frame = gpd.GeoDataFrame({"name": ["city hall"]}, geometry=[Point(-5700, 5658000)], crs="EPSG:3776")
    shp_dir = tmp_path / "shp"
    shp_dir.mkdir()
    frame.to_file(shp_dir / "hall.shp", engine="pyogrio")
    archive = tmp_path / "hall.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for part in shp_dir.iterdir():
            zf.write(part, f"export/{part.name}")
    load_file(database_url, manifest("hall", ["name"]), archive)
    lon, lat = conn.execute("SELECT ST_X(geom), ST_Y(geom) FROM layer_data.hall").fetchone()  # type: ignore[misc]
    assert -114.2 < lon < -113.9 and 50.9 < lat < 51.2


def test_a_zip_with_an_escaping_path_is_refused(database_url: str, tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../../etc/evil.shp", b"x")
    with pytest.raises(IngestError, match="unsafe path"):
        load_file(database_url, manifest("evil_zip", []), archive)


def test_a_load_killed_half_way_leaves_the_previous_version_intact(
    database_url: str, conn: psycopg.Connection, tmp_path: Path
) -> None:
    import multiprocessing

    from layers.ingest.publish import Job, publish_in_subprocess

    m = manifest("killed", ["name"])
    load_file(database_url, m, write_geojson(tmp_path / "v1.geojson", [({"name": "v1"}, point(*CALGARY))]))
    big = tmp_path / "big.csv"
    with open(big, "w", encoding="utf-8") as out:
        out.write("name,lon,lat\n")
        for i in range(300_000):
            out.write(f"row {i},{-114.2 + (i % 1000) / 5000},{50.9 + (i // 1000) / 1000}\n")
    killed: list[int] = []

    def kill_during_copy(layer: str, stage: str, done: int, total: int) -> None:
        if stage == "copy" and not killed:
            for child in multiprocessing.active_children():
                child.kill()  # SIGKILL: no cleanup code in the child runs
            killed.append(done)

    with pytest.raises(IngestError, match="stopped unexpectedly"):
        publish_in_subprocess(database_url, [Job(m, file=big)], progress=kill_during_copy)
    assert killed and killed[0] < 300_000
    assert [r[2]["name"] for r in _rows(conn, "killed")] == ["v1"]
    assert fresh_registry(conn).resolve("killed", ANONYMOUS).version == 1
    leftovers = conn.execute(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'layer_data' AND tablename LIKE 'load\\_%'"
    )
    assert leftovers.fetchone() == (0,)


def test_an_uploads_unexpected_failure_tells_the_uploader_no_internals(monkeypatch: pytest.MonkeyPatch) -> None:
    from layers.ingest import publish

    def fails(*args: object, **kwargs: object) -> None:
        raise RuntimeError('relation "layer_data.load_1f2e" at /tmp/upload-1f2e/x.gpkg')

    monkeypatch.setattr(publish, "_run", fails)
    stored = manifest("failing upload", ["name"])
    for job, shown in ((publish.Job(None, upload=publish.Upload(Path("x"), None, stored, 10, 10, "ed")), False),
                       (publish.Job(stored), True)):  # fmt: skip
        out: queue.Queue[tuple[str, Any]] = queue.Queue()
        publish._child(out, "postgresql://unused", [job], None)
        kind, (_, message, _, layer, logged) = out.get_nowait()
        assert (kind, layer) == ("error", "failing upload")
        assert ("/tmp/upload-1f2e" in message) is shown and ("layer_data" in message) is shown, message
        assert (logged is None) is shown  # what the uploader is not shown goes to the parent, which logs it


def test_crs_codes_and_crs_read_from_files() -> None:
    from layers.ingest.crs_checks import check_crs_code, check_file_crs

    assert check_crs_code(" EPSG:3776") == "EPSG:3776"
    assert check_crs_code("urn:ogc:def:crs:EPSG::3776") == "urn:ogc:def:crs:EPSG::3776"
    for bad in ("EPSG:\u0663\u0667\u0667\u0666", "EPSG:999999", "+proj=utm +zone=11", "EPSG:3776 +nadgrids=x"):
        with pytest.raises(IngestError):
            check_crs_code(bad)
    grids = "+proj=longlat +ellps=WGS84 +nadgrids=/etc/passwd +type=crs"
    with pytest.raises(IngestError, match="names files or addresses"):
        check_file_crs(gpd.GeoDataFrame({"a": [1]}, geometry=[Point(0, 0)], crs=grids), "x.gpkg")
    check_file_crs(gpd.GeoDataFrame({"a": [1]}, geometry=[Point(0, 0)], crs="EPSG:3776"), "fine.gpkg")
