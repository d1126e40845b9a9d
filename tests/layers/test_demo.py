"""The demo City generator and the City's layer manifests: determinism, geometry, time, privacy."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from shapely.geometry import Point

from layers import demo
from layers.catalogue.manifest import LayerManifest, load_city_manifests
from layers.queries.hours import parse_schedule

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 26, 17, tzinfo=UTC)
EXTENT = (-114.32, 50.84, -113.86, 51.21)
LAYERS = (
    "wards", "communities", "facilities", "roads", "water_mains", "streetlights", "parcels", "events",
    "service_requests",
)  # fmt: skip
PRIVATE = {
    "wards": {"office_phone_internal"},
    "facilities": {"staff_notes"},
    "water_mains": {"condition_score_internal"},
    "parcels": {"assessed_value"},
    "events": {"organizer_email"},
    "service_requests": {"requester_contact"},
}
ALL_PRIVATE = set().union(*PRIVATE.values())
GEOMETRY_TYPES = {
    "wards": "Polygon", "communities": "Polygon", "facilities": "Point", "roads": "LineString",
    "water_mains": "LineString", "streetlights": "Point", "parcels": "Polygon", "events": "Point",
    "service_requests": "Point",
}  # fmt: skip
ZOOMS = {
    "wards": (0, 22), "communities": (0, 22), "parcels": (13, 22), "service_requests": (10, 22),
    "facilities": (8, 22), "streetlights": (14, 22), "roads": (8, 22),
}  # fmt: skip


def _read(path: Path) -> gpd.GeoDataFrame:
    return gpd.read_file(path, engine="pyogrio")


def _read_all(paths: dict[str, Path]) -> dict[str, gpd.GeoDataFrame]:
    return {layer: _read(path) for layer, path in paths.items()}


def _assert_same(a: gpd.GeoDataFrame, b: gpd.GeoDataFrame) -> None:
    pd.testing.assert_frame_equal(a.drop(columns="geometry"), b.drop(columns="geometry"), check_exact=True)
    assert a.crs == b.crs
    assert np.array_equal(shapely.to_wkb(a.geometry.values), shapely.to_wkb(b.geometry.values))


def _differs(a: gpd.GeoDataFrame, b: gpd.GeoDataFrame) -> bool:
    wkb_a, wkb_b = shapely.to_wkb(a.geometry.values), shapely.to_wkb(b.geometry.values)
    return len(wkb_a) != len(wkb_b) or not np.array_equal(wkb_a, wkb_b)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path], list[tuple[str, int, int]]]:
    """One scale-1 demo City, with the progress calls it made."""
    out = tmp_path_factory.mktemp("demo")
    calls: list[tuple[str, int, int]] = []
    paths = demo.generate(out, now=NOW, progress=lambda *args: calls.append(args))
    return out, paths, calls


@pytest.fixture(scope="module")
def frames(run: tuple[Path, dict[str, Path], list[tuple[str, int, int]]]) -> dict[str, gpd.GeoDataFrame]:
    """Every generated layer, read back with geopandas."""
    return _read_all(run[1])


@pytest.fixture(scope="module")
def manifests() -> dict[str, LayerManifest]:
    """The City's manifests, validated, by layer id."""
    return {m.id: m for m in load_city_manifests()}


def test_one_geopackage_per_layer_with_progress(run: tuple[Path, dict[str, Path], list]) -> None:
    out, paths, calls = run
    assert tuple(paths) == LAYERS
    assert calls == [(layer, i, len(LAYERS)) for i, layer in enumerate(LAYERS, start=1)]
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{layer}.gpkg" for layer in LAYERS)  # no leftovers
    for layer, path in paths.items():
        assert path == out / f"{layer}.gpkg"
        assert [name for name, _ in pyogrio.list_layers(path)] == [layer]
        assert pyogrio.read_info(path)["features"] == demo.BASE_COUNTS[layer]


def test_counts_scale_to_the_benchmark_sizes() -> None:
    counts = demo.layer_counts(demo.BENCH_SCALE)
    assert counts["facilities"] == 20_000 and counts["service_requests"] == 1_000_000
    assert counts["roads"] == 150_000 and counts["parcels"] == 200_000
    assert counts["wards"] == 14 and counts["communities"] == 200  # not scaled
    assert demo.layer_counts(1) == demo.BASE_COUNTS


@pytest.mark.parametrize("bad", [{"scale": 0}, {"scale": -1.0}, {"scale": float("nan")}, {"seed": -1}])
def test_refuses_bad_arguments(tmp_path: Path, bad: dict) -> None:
    with pytest.raises(ValueError):
        demo.generate(tmp_path, **bad)
    assert list(tmp_path.iterdir()) == []


def test_same_seed_gives_identical_layers(frames: dict[str, gpd.GeoDataFrame], tmp_path: Path) -> None:
    again = _read_all(demo.generate(tmp_path, now=NOW))
    for layer in LAYERS:
        _assert_same(frames[layer], again[layer])


def test_another_seed_gives_other_layers(frames: dict[str, gpd.GeoDataFrame], tmp_path: Path) -> None:
    other = _read_all(demo.generate(tmp_path, now=NOW, seed=demo.DEFAULT_SEED + 1))
    assert [layer for layer in LAYERS if not _differs(frames[layer], other[layer])] == []
    assert not demo.city_boundary(demo.DEFAULT_SEED).equals(demo.city_boundary(demo.DEFAULT_SEED + 1))


def test_now_defaults_to_this_hour_in_utc_and_naive_means_utc(tmp_path: Path) -> None:
    def this_hour() -> datetime:
        return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)

    before = this_hour()
    default = _read(demo.generate(tmp_path / "default", scale=0.05)["events"])
    hours = {before, this_hour()}  # two only if the hour turned during the call
    explicit = [_read(demo.generate(tmp_path / f"at{i}", scale=0.05, now=h)["events"]) for i, h in enumerate(hours)]
    assert any(default.equals(e) for e in explicit)
    naive = _read(demo.generate(tmp_path / "naive", scale=0.05, now=NOW.replace(tzinfo=None))["events"])
    _assert_same(naive, _read(demo.generate(tmp_path / "utc", scale=0.05, now=NOW)["events"]))


def test_boundary_is_a_simple_polygon_in_calgary() -> None:
    boundary = demo.city_boundary()
    assert boundary.geom_type == "Polygon" and boundary.is_valid and boundary.is_simple
    minx, miny, maxx, maxy = boundary.bounds
    assert EXTENT[0] <= minx and EXTENT[1] <= miny and maxx <= EXTENT[2] and maxy <= EXTENT[3]
    area_km2 = gpd.GeoSeries([boundary], crs="EPSG:4326").to_crs("EPSG:3776").area.iloc[0] / 1e6
    assert 600 < area_km2 < 1000  # Calgary is about 825 km2


@pytest.mark.parametrize("layer", LAYERS)
def test_geometries_valid_and_inside_the_extent(frames: dict[str, gpd.GeoDataFrame], layer: str) -> None:
    frame = frames[layer].to_crs("EPSG:4326")
    geoms = frame.geometry.values
    assert shapely.is_valid(geoms).all() and not shapely.is_empty(geoms).any()
    assert set(frame.geom_type) == {GEOMETRY_TYPES[layer]}
    minx, miny, maxx, maxy = frame.total_bounds
    assert EXTENT[0] <= minx and EXTENT[1] <= miny and maxx <= EXTENT[2] and maxy <= EXTENT[3]


@pytest.mark.parametrize("layer", ["facilities", "streetlights", "events", "service_requests", "roads", "water_mains"])
def test_features_lie_inside_the_city(frames: dict[str, gpd.GeoDataFrame], layer: str) -> None:
    boundary = demo.city_boundary()
    assert shapely.contains(boundary, frames[layer].geometry.values).all()


@pytest.mark.parametrize(("layer", "count"), [("wards", 14), ("communities", 200)])
def test_areas_tile_the_city_without_gaps_or_overlaps(
    frames: dict[str, gpd.GeoDataFrame], layer: str, count: int
) -> None:
    cells = frames[layer].geometry.values
    boundary = demo.city_boundary()
    union = shapely.union_all(cells)
    assert len(cells) == count
    assert shapely.area(cells).sum() == pytest.approx(union.area, rel=1e-6)  # no overlaps
    assert union.area == pytest.approx(boundary.area, rel=1e-6)
    assert union.symmetric_difference(boundary).area < 1e-6 * boundary.area  # no gaps, nothing outside


def test_ward_and_community_attributes(frames: dict[str, gpd.GeoDataFrame]) -> None:
    wards, communities = frames["wards"], frames["communities"]
    assert sorted(wards["ward_id"]) == list(range(1, 15))
    assert set(wards["name"]) == {f"Ward {i}" for i in range(1, 15)}
    assert wards["councillor"].str.startswith("Demo Councillor ").all()
    assert communities["community_code"].is_unique and communities["community_code"].str.fullmatch(r"C\d{3}").all()
    assert communities["name"].is_unique
    assert set(communities["sector"]) == {"NORTH", "SOUTH", "EAST", "WEST", "CENTRE"}
    assert (communities["population"] >= 0).all() and communities["population"].sum() > 100_000


def test_roads_have_nine_vertices_and_known_classes(frames: dict[str, gpd.GeoDataFrame]) -> None:
    roads = frames["roads"]
    assert (shapely.get_num_coordinates(roads.geometry.values) == 9).all()
    assert set(roads["road_class"]) == {"local", "collector", "arterial", "highway"}
    assert roads["road_id"].is_unique and (roads["speed_limit_kmh"] >= 30).all()
    by_class = roads.groupby("road_class")["speed_limit_kmh"].max()
    assert by_class["local"] < by_class["arterial"] < by_class["highway"]


def test_parcels_are_in_3tm_and_do_not_overlap(run: tuple[Path, dict[str, Path], list]) -> None:
    path = run[1]["parcels"]
    assert pyogrio.read_info(path)["crs"] == "EPSG:3776"
    parcels = _read(path)
    assert parcels.crs.to_epsg() == 3776
    geoms = parcels.geometry.values
    areas = shapely.area(geoms)
    assert areas.sum() == pytest.approx(shapely.union_all(geoms).area, rel=1e-6)
    assert np.allclose(parcels["area_m2"], areas, atol=0.06) and (areas > 100).all()
    assert parcels["parcel_id"].is_unique


def test_events_are_past_current_and_upcoming(
    frames: dict[str, gpd.GeoDataFrame], run: tuple[Path, dict[str, Path], list]
) -> None:
    events = frames["events"]
    info = pyogrio.read_info(run[1]["events"])
    types = dict(zip(info["fields"], info["ogr_types"], strict=True))
    assert types["starts_at"] == types["ends_at"] == "OFTDateTime"  # real datetimes, not text
    for column in ("starts_at", "ends_at"):
        assert isinstance(events[column].dtype, pd.DatetimeTZDtype) and str(events[column].dt.tz) == "UTC"
    starts, ends = events["starts_at"], events["ends_at"]
    assert (starts < ends).all()
    assert (ends <= NOW).sum() >= 20
    assert ((starts <= NOW) & (NOW < ends)).sum() >= 20
    assert (starts > NOW).sum() >= 20
    assert set(events["category"]) == {"festival", "market", "sport", "concert", "community", "road_closure"}
    assert events["event_id"].is_unique


def test_service_requests_are_consistent_in_time(frames: dict[str, gpd.GeoDataFrame]) -> None:
    requests = frames["service_requests"]
    assert requests["request_id"].is_unique and requests["request_id"].str.fullmatch(r"SR-\d{8}").all()
    assert set(requests["service_code"]) == {
        "POTHOLE", "GRAFFITI", "STREETLIGHT_OUT", "WASTE_MISSED", "SNOW_ICE", "NOISE", "TREE", "WATER_LEAK",
    }  # fmt: skip
    assert set(requests["status"]) == {"open", "in_progress", "closed"}
    closed = requests["status"] == "closed"
    assert requests["closed_at"].isna().equals(~closed)  # null exactly when not closed
    assert (requests["requested_at"] <= NOW).all()
    done = requests[closed]
    assert (done["closed_at"] >= done["requested_at"]).all() and (done["closed_at"] <= NOW).all()
    assert requests["requested_at"].is_monotonic_increasing  # numbered in the order they came in


def test_service_requests_cluster_downtown(frames: dict[str, gpd.GeoDataFrame]) -> None:
    downtown = gpd.GeoSeries([Point(-114.065, 51.045)], crs="EPSG:4326").to_crs("EPSG:3776").iloc[0]
    city = gpd.GeoSeries([demo.city_boundary()], crs="EPSG:4326").to_crs("EPSG:3776").iloc[0]
    near = downtown.buffer(5_000)
    area_share = city.intersection(near).area / city.area
    points = frames["service_requests"].to_crs("EPSG:3776").geometry.values
    request_share = shapely.contains(near, points).mean()
    assert request_share > 1.5 * area_share


def test_facility_categories_and_opening_hours(frames: dict[str, gpd.GeoDataFrame]) -> None:
    facilities = frames["facilities"]
    counts = facilities["category"].value_counts()
    assert set(counts.index) == {
        "library", "recreation_centre", "fire_station", "park", "clinic", "washroom", "transit_stop", "community_hall",
    }  # fmt: skip
    assert counts.idxmax() == "transit_stop" and counts.idxmin() == "fire_station"
    assert facilities["facility_id"].is_unique
    texts = dict(zip(facilities["category"], facilities["opening_hours"], strict=False))
    for text in facilities["opening_hours"]:
        assert parse_schedule(text) is not None  # valid OpenStreetMap opening_hours syntax
    assert "PH off" in texts["library"] and f"{NOW.year + 1} Feb" in texts["library"]  # Family Day, dated
    assert texts["park"] == "Mo-Su 05:00-23:00"
    assert "24/7" in set(facilities["opening_hours"])  # some open all the time
    assert any("-01:30" in t for t in facilities["opening_hours"])  # some run past midnight


def test_demo_values_cannot_be_real_contacts(frames: dict[str, gpd.GeoDataFrame]) -> None:
    for layer, column in [("events", "organizer_email"), ("service_requests", "requester_contact")]:
        assert frames[layer][column].str.fullmatch(r"[a-z]+\d+@example\.invalid").all()
    for layer, column in [("facilities", "phone"), ("wards", "office_phone_internal")]:
        assert frames[layer][column].str.fullmatch(r"403-555-01\d\d").all()


def test_every_city_manifest_is_a_demo_layer(manifests: dict[str, LayerManifest]) -> None:
    assert set(manifests) == set(LAYERS)
    for layer, m in manifests.items():
        assert m.demo and m.visibility == "public"
        assert m.source.file == f"demo/{layer}.gpkg" and m.source.table is None
        assert "(demo data)" in m.title.en and "(données de démonstration)" in (m.title.fr or "")
        assert "synthetic demo data" in m.description.en.lower() and "not real city data" in m.description.en.lower()
        assert "données de démonstration synthétiques" in (m.description.fr or "").lower()
        assert m.department.endswith("(demo)")
        assert m.license.name == "Open Government Licence - City of Calgary" and m.license.url
        assert "demo" in m.keywords and m.field_descriptions
        assert m.category in {"boundaries", "facilities", "infrastructure", "events", "service_requests", "property"}
        if layer in ZOOMS:
            assert (m.min_zoom, m.max_zoom) == ZOOMS[layer]


@pytest.mark.parametrize("layer", LAYERS)
def test_manifest_fields_match_the_generated_file(
    manifests: dict[str, LayerManifest], frames: dict[str, gpd.GeoDataFrame], layer: str
) -> None:
    m, frame = manifests[layer], frames[layer]
    columns = set(frame.columns) - {"geometry"}
    public = set(m.public_fields)
    assert public <= columns
    assert not public & ALL_PRIVATE
    assert public == columns - PRIVATE.get(layer, set())  # every other field is public
    assert PRIVATE.get(layer, set()) <= columns  # the private fields exist, so the privacy tests mean something
    assert m.id_field in public and frame[m.id_field].is_unique
    assert m.geometry_type == GEOMETRY_TYPES[layer]
    roles = {
        "facilities": ("category", "opening_hours", None),
        "events": ("category", None, ("starts_at", "ends_at")),
        "service_requests": ("service_code", None, ("requested_at", "closed_at")),
        "roads": ("road_class", None, None),
    }
    times = (m.time_fields.start, m.time_fields.end) if m.time_fields else None
    assert (m.category_field, m.opening_hours_field, times) == roles.get(layer, (None, None, None))
    if times is not None:
        assert all(isinstance(frame[name].dtype, pd.DatetimeTZDtype) for name in times)


def test_the_command_line_writes_every_layer(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo-city"), "--out", str(out), "--scale", "0.05",
         "--now", "2026-11-26T17:00:00Z"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{layer}.gpkg" for layer in LAYERS)
    assert "service_requests.gpkg: 250 features" in result.stdout
    expected = _read(demo.generate(tmp_path / "api", scale=0.05, now=NOW)["events"])
    _assert_same(_read(out / "events.gpkg"), expected)
    assert subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo-city"), "--out", str(out), "--scale", "nope"],
        capture_output=True, check=False,
    ).returncode == 2  # fmt: skip


def test_the_readmes_sample_files_read_as_the_readme_uses_them(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from layers.demo.samples import write_samples
    from layers.ingest.readers import read_file

    now = datetime(2026, 7, 1, 18, tzinfo=UTC)
    festival, festival_v2, plots, recreation = write_samples(tmp_path, now)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["festival-v2.kml", "festival.kml", "plots.zip",
                                                          "recreation.gpkg"]  # fmt: skip
    events = read_file(festival)
    assert {"name", "starts", "ends"} <= set(events.columns) and len(events) == 2
    parade = events[events["name"] == "Parade"].iloc[0]
    assert datetime.fromisoformat(parade["starts"]) <= now < datetime.fromisoformat(parade["ends"])  # happening
    assert len(read_file(festival_v2)) == 3
    garden = read_file(plots)
    assert garden.crs.to_epsg() == 3776 and {"plot", "holder"} <= set(garden.columns)
    facilities = read_file(recreation)
    wanted = {"facility_id", "name", "address", "opening_hours", "category_name"}
    assert wanted <= set(facilities.columns) and len(facilities) == 3
