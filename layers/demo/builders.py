"""The demo City's layers, one builder each: a GeoDataFrame from the city, a random stream and a count."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date, timedelta

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from layers.demo.shapes import (
    _DOWNTOWN_M,
    _PLACE_SUFFIXES,
    _PLACES,
    _addresses,
    _allocate,
    _City,
    _clusters,
    _frame,
    _grid_numbers,
    _line_geoms,
    _lines_m,
    _lonlat_coords,
    _phones,
    _pick,
    _place_names,
    _points_lonlat,
    _quadrant,
    _sample_xy,
    _tessellate,
    _to_lonlat,
    _utc,
)


def _wards(city: _City, rng: np.random.Generator, n: int) -> gpd.GeoDataFrame:
    cells = _tessellate(rng, city.boundary, n)
    c = shapely.get_coordinates(shapely.centroid(cells))
    cells = cells[np.argsort(-np.arctan2(c[:, 0], c[:, 1]) % (2 * np.pi))]  # numbered anticlockwise from north
    ids = np.arange(1, n + 1)
    return _frame(
        {
            "ward_id": ids.astype(np.int32),
            "name": [f"Ward {i}" for i in ids],
            "councillor": [f"Demo Councillor {i}" for i in ids],
            "office_phone_internal": [f"403-555-01{i:02d}" for i in ids],
        },
        _to_lonlat(cells),
    )


def _communities(city: _City, rng: np.random.Generator, n: int) -> gpd.GeoDataFrame:
    cells = _tessellate(rng, city.boundary, n)
    c = shapely.get_coordinates(shapely.centroid(cells))
    combos = rng.choice(_PLACES.size * _PLACE_SUFFIXES.size, size=n, replace=False)  # unique names
    names = [f"{_PLACES[i // _PLACE_SUFFIXES.size]} {_PLACE_SUFFIXES[i % _PLACE_SUFFIXES.size]}" for i in combos]
    downtown_m = np.hypot(*(c - _DOWNTOWN_M).T)
    north_south = np.abs(c[:, 1]) * 14 > np.abs(c[:, 0]) * 18.5  # compare in the ellipse's own proportions
    sector = np.where(north_south, np.where(c[:, 1] > 0, "NORTH", "SOUTH"), np.where(c[:, 0] > 0, "EAST", "WEST"))
    sector = np.where(downtown_m < 4_000, "CENTRE", sector)
    density_km2 = 3_000 * np.exp(-downtown_m / 12_000) * rng.lognormal(0, 0.35, n)
    return _frame(
        {
            "community_code": [f"C{i:03d}" for i in range(1, n + 1)],
            "name": names,
            "sector": sector,
            "population": np.round(shapely.area(cells) / 1e6 * density_km2).astype(np.int32),
        },
        _to_lonlat(cells),
    )


def _family_day(year: int) -> str:
    """Alberta's Family Day (the third Monday of February) as a dated opening_hours rule that closes the day."""
    first = date(year, 2, 1)
    day = first + timedelta(days=(7 - first.weekday()) % 7 + 14)
    return f"{year} Feb {day.day:02d} off"


def _opening_hours(year: int) -> dict[str, list[tuple[str, float]]]:
    """Opening hours per facility category (OpenStreetMap opening_hours syntax), with their shares.

    `PH off` closes on the national holidays the evaluator knows; Alberta's Family Day is written out as dated
    rules for this year and the next, as a City export would. Days whose evening runs past midnight are joined with
    `,` (an additional rule): with `;` the next day's own rule would replace the whole next day, cutting the
    evening at midnight, as the opening_hours specification says."""
    holidays = f"PH off; {_family_day(year)}; {_family_day(year + 1)}"
    return {
        "library": [
            (f"Mo-Th 09:00-21:00; Fr 09:00-18:00; Sa 10:00-17:00; Su 12:00-17:00; {holidays}", 0.7),
            (f"Mo-Fr 10:00-20:00; Sa 10:00-17:00; {holidays}", 0.3),
        ],
        "recreation_centre": [
            (f"Mo-Fr 05:30-22:00; Sa,Su 07:00-21:00; {holidays}", 0.7),
            (f"Mo-Th 06:00-23:00, Fr 06:00-01:00, Sa 07:00-01:00, Su 08:00-20:00; {holidays}", 0.3),
        ],
        "fire_station": [("24/7", 1.0)],
        "park": [("Mo-Su 05:00-23:00", 1.0)],
        "clinic": [("Mo-Fr 08:00-20:00; Sa 09:00-17:00; PH off", 0.8), ("24/7", 0.2)],
        "washroom": [("24/7", 0.4), ("Mo-Su 06:00-22:00; PH off", 0.6)],
        "transit_stop": [("Mo-Fr 05:00-01:30, Sa 06:00-01:30, Su 07:00-00:30", 1.0)],
        "community_hall": [("Mo-Fr 09:00-12:00,18:00-22:00; Sa 10:00-02:00; PH off", 1.0)],
    }


_FACILITY_SHARES = {
    "transit_stop": 0.46, "park": 0.18, "washroom": 0.08, "community_hall": 0.08, "clinic": 0.08,
    "recreation_centre": 0.05, "library": 0.05, "fire_station": 0.02,
}  # fmt: skip
_FACILITY_LABELS = {
    "library": "Library", "recreation_centre": "Recreation Centre", "park": "Park", "clinic": "Community Clinic",
    "washroom": "Public Washroom", "community_hall": "Community Hall",
}  # fmt: skip
_STAFF_NOTES = np.array(
    ["keys with the caretaker", "accessible entrance under repair", "check HVAC filter", "no issues reported"]
)


def _facilities(city: _City, rng: np.random.Generator, n: int) -> gpd.GeoDataFrame:
    category = _allocate(rng, n, _FACILITY_SHARES)
    x, y = _sample_xy(rng, city.boundary, n, _clusters(rng, city, 0.15, 12, 0.35))
    hours = np.empty(n, dtype=object)
    for cat, variants in _opening_hours(city.now.year).items():
        mine = np.flatnonzero(category == cat)
        texts = np.array([v for v, _ in variants], dtype=object)
        hours[mine] = texts[rng.choice(len(variants), size=mine.size, p=[s for _, s in variants])]
    places = _place_names(rng, n)
    street, avenue = _grid_numbers(x, y)
    quadrant = _quadrant(x, y)
    names = [
        f"Stop {6000 + i}: {avenue[i]} Ave & {street[i]} St {quadrant[i]}"
        if cat == "transit_stop"
        else f"Demo Fire Station {i + 1}"
        if cat == "fire_station"
        else f"{place} {_FACILITY_LABELS[cat]}"
        for i, (cat, place) in enumerate(zip(category, places, strict=True))
    ]
    return _frame(
        {
            "facility_id": np.arange(1, n + 1, dtype=np.int64),
            "name": names,
            "category": category,
            "address": _addresses(rng, x, y),
            "phone": _phones(rng, n),
            "opening_hours": hours.astype(str),
            "staff_notes": [f"Demo note {i}: {t}" for i, t in enumerate(_STAFF_NOTES[rng.integers(0, 4, n)], 1)],
        },
        _points_lonlat(x, y),
    )


_ROAD_CLASSES = {  # share, segment length (m), wobble (m), speed limits (km/h)
    "local": (0.70, (35, 60), 1.5, (40, 40, 40, 30)),
    "collector": (0.18, (90, 140), 6.0, (50,)),
    "arterial": (0.09, (220, 350), 15.0, (60, 70)),
    "highway": (0.03, (500, 800), 60.0, (80, 100)),
}


def _roads(city: _City, rng: np.random.Generator, n: int) -> gpd.GeoDataFrame:
    road_class = _allocate(rng, n, {k: v[0] for k, v in _ROAD_CLASSES.items()})
    seg = np.empty(n)
    wobble = np.empty(n)
    speed = np.empty(n, dtype=np.int32)
    for cls, (_, (lo, hi), wob, speeds) in _ROAD_CLASSES.items():
        mine = road_class == cls
        seg[mine] = rng.uniform(lo, hi, mine.sum())
        wobble[mine] = wob
        speed[mine] = rng.choice(speeds, mine.sum())
    highway = road_class == "highway"
    angle = np.where(rng.random(n) < 0.5, 0.0, np.pi / 2) + rng.normal(0, 0.01, n)
    angle[highway] = rng.uniform(0, np.pi, highway.sum())  # highways cut across the grid
    coords = _lines_m(rng, city, seg, angle, wobble, 9, ~highway)
    mid = coords[:, 4]
    street, avenue = _grid_numbers(mid[:, 0], mid[:, 1])
    quadrant = _quadrant(mid[:, 0], mid[:, 1])
    places = _PLACES[rng.integers(0, _PLACES.size, n)]
    kinds = np.array(["Drive", "Road", "Way", "Crescent", "Gate"])[rng.integers(0, 5, n)]
    east_west = np.abs(np.cos(angle)) > np.abs(np.sin(angle))
    names = []
    for i, cls in enumerate(road_class):
        if cls == "local":
            names.append(f"{avenue[i]} Ave {quadrant[i]}" if east_west[i] else f"{street[i]} St {quadrant[i]}")
        elif cls == "collector":
            names.append(f"{places[i]} {kinds[i]} {quadrant[i]}")
        elif cls == "arterial":
            names.append(f"{places[i]} Boulevard {quadrant[i]}")
        else:
            names.append(f"{places[i]} Trail")
    return _frame(
        {
            "road_id": np.arange(1, n + 1, dtype=np.int64),
            "name": names,
            "road_class": road_class,
            "speed_limit_kmh": speed,
        },
        _line_geoms(coords),
    )


_MATERIALS = {  # share, install years
    "PVC": (0.35, (1978, 2025)), "ductile iron": (0.25, (1968, 2005)), "cast iron": (0.15, (1950, 1975)),
    "concrete": (0.10, (1955, 1990)), "HDPE": (0.10, (1995, 2025)), "steel": (0.05, (1958, 1985)),
}  # fmt: skip


def _water_mains(city: _City, rng: np.random.Generator, n: int) -> gpd.GeoDataFrame:
    angle = np.where(rng.random(n) < 0.5, 0.0, np.pi / 2) + rng.normal(0, 0.01, n)
    coords = _lines_m(rng, city, rng.uniform(60, 150, n), angle, np.full(n, 2.0), 6, np.ones(n, dtype=bool))
    material = _pick(rng, n, {k: v[0] for k, v in _MATERIALS.items()})
    year = np.empty(n, dtype=np.int32)
    for name, (_, (lo, hi)) in _MATERIALS.items():
        mine = material == name
        year[mine] = rng.integers(lo, max(lo, min(hi, city.now.year)) + 1, mine.sum())  # nothing laid in future
    condition = np.clip(100 - (city.now.year - year) * 1.1 + rng.normal(0, 8, n), 0, 100)
    return _frame(
        {
            "main_id": np.arange(1, n + 1, dtype=np.int64),
            "diameter_mm": rng.choice(
                np.array([150, 200, 250, 300, 400, 600, 900, 1200], dtype=np.int32),
                n,
                p=[0.25, 0.3, 0.12, 0.12, 0.08, 0.06, 0.04, 0.03],
            ),
            "material": material,
            "install_year": year,
            "condition_score_internal": np.round(condition, 1),
        },
        _line_geoms(coords),
    )


_LAMPS = {  # share, wattages
    "LED": (0.6, (40, 60, 90, 120, 150)), "HPS": (0.3, (70, 100, 150, 250, 400)), "MH": (0.07, (100, 175, 250)),
    "LPS": (0.03, (55, 90, 135)),
}  # fmt: skip


def _streetlights(city: _City, rng: np.random.Generator, n: int) -> gpd.GeoDataFrame:
    x, y = _sample_xy(rng, city.boundary, n, _clusters(rng, city, 0.2, 20, 0.4))
    lamp = _pick(rng, n, {k: v[0] for k, v in _LAMPS.items()})
    watts = np.empty(n, dtype=np.int32)
    for name, (_, choices) in _LAMPS.items():
        mine = lamp == name
        watts[mine] = rng.choice(choices, mine.sum())
    return _frame(
        {"light_id": np.arange(1, n + 1, dtype=np.int64), "lamp_type": lamp, "wattage": watts}, _points_lonlat(x, y)
    )


_LAND_USES = {  # share of blocks, assessed $ per m2
    "residential": (0.72, 900), "commercial": (0.10, 1500), "industrial": (0.06, 500),
    "institutional": (0.04, 700), "open_space": (0.04, 50), "vacant": (0.04, 200),
}  # fmt: skip


def _parcels(city: _City, rng: np.random.Generator, n: int) -> gpd.GeoDataFrame:
    # Blocks of 2 rows x 8 lots back to back across a 6 m lane, on a 220 m x 100 m block grid; each lot is a
    # trapezoid whose side lines are jittered but shared with its neighbour, so lots never overlap.
    n_blocks = -(-n // 16)
    minx, miny, maxx, maxy = city.boundary.bounds
    unit = 1.0  # shrunk (lots get smaller) only when a very large scale needs more blocks than fit
    while True:
        grid = np.meshgrid(np.arange(minx, maxx, 220.0 * unit), np.arange(miny, maxy, 100.0 * unit))
        sx, sy = (a.ravel() for a in grid)
        fits = shapely.contains(city.boundary, shapely.box(sx, sy, sx + 200 * unit, sy + 86 * unit))
        if fits.sum() >= n_blocks:
            break
        unit /= 1.1
    sx, sy = sx[fits], sy[fits]
    d = np.hypot(sx + 100 - _DOWNTOWN_M[0], sy + 43 - _DOWNTOWN_M[1])
    weight = 0.25 + np.exp(-(((d - 9_000) / 5_000) ** 2))  # mostly a suburban ring
    keys = np.log(weight) + rng.gumbel(size=sx.size)  # Gumbel top-k: weighted sampling without replacement
    pick = np.sort(np.argpartition(-keys, n_blocks - 1)[:n_blocks])
    sx, sy = sx[pick], sy[pick]
    width = unit * rng.choice([15.0, 20.0, 25.0], n_blocks, p=[0.3, 0.45, 0.25])[:, None, None]
    depth = unit * rng.choice([30.0, 35.0, 40.0], n_blocks)[:, None, None]
    base = sx[:, None, None] + width * np.arange(9)
    jitter = rng.uniform(-0.15, 0.15, (2, n_blocks, 2, 9)) * width
    jitter[..., [0, 8]] = 0.0  # the block's ends stay straight
    front, back = base + jitter[0], base + jitter[1]  # (block, row, line)
    rows = np.array([0.0, 1.0])[:, None] * (depth + 6.0 * unit)
    y0 = np.broadcast_to(sy[:, None, None] + rows, (n_blocks, 2, 8))
    y1 = y0 + depth
    ring_x = np.stack([front[..., :-1], front[..., 1:], back[..., 1:], back[..., :-1], front[..., :-1]], -1)
    ring_y = np.stack([y0, y0, y1, y1, y0], -1)
    rings = np.stack([ring_x, ring_y], -1).reshape(-1, 5, 2)[:n]
    lonlat = _lonlat_coords(rings.reshape(-1, 2))
    to_3tm = Transformer.from_crs("EPSG:4326", "EPSG:3776", always_xy=True)
    e, nn = to_3tm.transform(lonlat[:, 0], lonlat[:, 1])
    geoms = shapely.polygons(np.column_stack([e, nn]).reshape(-1, 5, 2))
    uses = np.array(list(_LAND_USES))
    use = np.repeat(rng.choice(uses.size, n_blocks, p=[v[0] for v in _LAND_USES.values()]), 16)[:n]
    use = np.where(rng.random(n) < 0.05, rng.integers(0, uses.size, n), use)  # the odd corner store
    area = shapely.area(geoms)
    rate = np.array([v[1] for v in _LAND_USES.values()])[use]
    return _frame(
        {
            "parcel_id": np.arange(1, n + 1, dtype=np.int64),
            "land_use": uses[use],
            "assessed_value": (np.round(area * rate * rng.lognormal(0, 0.3, n), -3)).astype(np.int64),
            "area_m2": np.round(area, 1),
        },
        geoms,
        crs="EPSG:3776",
    )


_EVENTS = {  # share, duration hours, title words
    "festival": (0.10, (6, 72), ("Summer Festival", "Lantern Festival", "Food Truck Festival", "Folk Festival")),
    "market": (0.15, (4, 8), ("Farmers' Market", "Night Market", "Craft Market", "Flea Market")),
    "sport": (0.20, (2, 5), ("Fun Run", "Youth Soccer Cup", "Hockey Tournament", "Pickleball Open")),
    "concert": (0.15, (2, 4), ("Jazz Night", "Symphony in the Park", "Choir Concert", "Rock Showcase")),
    "community": (0.25, (1, 4), ("Cleanup Day", "Open House", "Block Party", "Tree Planting")),
    "road_closure": (0.15, (4, 336), ("Water Main Repair", "Paving Works", "Bridge Inspection", "Parade Route")),
}
_QUARTER_S = 900


def _events(city: _City, rng: np.random.Generator, n: int) -> gpd.GeoDataFrame:
    category = _allocate(rng, n, {k: v[0] for k, v in _EVENTS.items()})
    phase = _allocate(rng, n, {"past": 0.35, "now": 0.20, "upcoming": 0.45})
    quarters = np.empty(n, dtype=np.int64)  # durations in quarter hours, so times fall on :00 :15 :30 :45
    titles = np.empty(n, dtype=object)
    places = _PLACES[rng.integers(0, _PLACES.size, n)]
    for cat, (_, (lo, hi), words) in _EVENTS.items():
        mine = category == cat
        quarters[mine] = rng.integers(lo * 4, hi * 4 + 1, mine.sum())
        titles[mine] = np.char.add(np.char.add(places[mine], " "), np.array(words)[rng.integers(0, 4, mine.sum())])
    now_s = math.floor(city.now.timestamp())
    start = np.empty(n, dtype=np.int64)
    past, current, upcoming = phase == "past", phase == "now", phase == "upcoming"
    # past: ended 15 min to 60 days ago; now: started at most (duration - 15 min) ago; upcoming: within 90 days.
    start[past] = now_s - (rng.integers(1, 60 * 96, past.sum()) + quarters[past]) * _QUARTER_S
    start[current] = now_s - np.floor(rng.random(current.sum()) * quarters[current]).astype(np.int64) * _QUARTER_S
    start[upcoming] = now_s + rng.integers(1, 90 * 96, upcoming.sum()) * _QUARTER_S
    x, y = _sample_xy(rng, city.boundary, n, _clusters(rng, city, 0.35, 10, 0.35))
    street, avenue = _grid_numbers(x, y)
    quadrant = _quadrant(x, y)
    venue_words = np.array(["Park", "Community Hall", "Arena", "Plaza", "Bandshell", "Fieldhouse"])
    venues = np.char.add(np.char.add(places, " "), venue_words[rng.integers(0, venue_words.size, n)]).astype(object)
    closure = category == "road_closure"
    venues[closure] = [
        f"{a} Ave & {s} St {q}" for a, s, q in zip(avenue[closure], street[closure], quadrant[closure], strict=True)
    ]
    return _frame(
        {
            "event_id": np.arange(1, n + 1, dtype=np.int64),
            "title": titles.astype(str),
            "category": category,
            "venue": venues.astype(str),
            "starts_at": _utc(start),
            "ends_at": _utc(start + quarters * _QUARTER_S),
            "organizer_email": [f"organizer{k:04d}@example.invalid" for k in rng.integers(0, 10_000, n)],
        },
        _points_lonlat(x, y),
    )


_SERVICE_CODES = {  # share, median hours to close
    "POTHOLE": (0.20, 120), "GRAFFITI": (0.10, 72), "STREETLIGHT_OUT": (0.10, 96), "WASTE_MISSED": (0.18, 24),
    "SNOW_ICE": (0.15, 36), "NOISE": (0.10, 12), "TREE": (0.09, 240), "WATER_LEAK": (0.08, 8),
}  # fmt: skip


def _service_requests(city: _City, rng: np.random.Generator, n: int) -> gpd.GeoDataFrame:
    x, y = _sample_xy(rng, city.boundary, n, _clusters(rng, city, 0.30, 12, 0.35))
    codes = np.array(list(_SERVICE_CODES))
    code_idx = rng.choice(codes.size, n, p=[v[0] for v in _SERVICE_CODES.values()])
    now_s = math.floor(city.now.timestamp())
    requested = now_s - rng.integers(60, 365 * 86_400, n)
    median_s = np.array([v[1] for v in _SERVICE_CODES.values()])[code_idx] * 3_600.0
    closed_at = requested + np.round(median_s * rng.lognormal(0, 1.0, n)).astype(np.int64)
    closed = (closed_at <= now_s) & (rng.random(n) > 0.03)  # a few requests stay open for good
    status = np.where(closed, 2, np.where(rng.random(n) < 0.45, 1, 0))
    order = np.argsort(requested, kind="stable")  # request numbers follow the order they came in
    contacts = [f"resident{k:05d}@example.invalid" for k in range(100_000)]
    # Categoricals: a million rows of repeated strings would otherwise be a million Python objects each.
    return _frame(
        {
            "request_id": [f"SR-{i:08d}" for i in range(1, n + 1)],
            "service_code": pd.Categorical.from_codes(code_idx[order], categories=codes),
            "status": pd.Categorical.from_codes(status[order], categories=["open", "in_progress", "closed"]),
            "requested_at": _utc(requested[order]),
            "closed_at": _utc(closed_at[order]).where(closed[order]),
            "requester_contact": pd.Categorical.from_codes(rng.integers(0, len(contacts), n), categories=contacts),
        },
        _points_lonlat(x[order], y[order]),
    )


_BUILDERS: dict[str, Callable[[_City, np.random.Generator, int], gpd.GeoDataFrame]] = {
    "wards": _wards, "communities": _communities, "facilities": _facilities, "roads": _roads,
    "water_mains": _water_mains, "streetlights": _streetlights, "parcels": _parcels, "events": _events,
    "service_requests": _service_requests,
}  # fmt: skip
