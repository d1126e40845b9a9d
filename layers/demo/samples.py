"""Files a community group would upload, as the README's examples use them: invented, like the rest of the demo.

`write_samples(folder)` writes `festival.kml` (two street-festival events with `starts` and `ends`, the first
happening now), `festival-v2.kml` (the same festival, a stage added), `plots.zip` (garden plots as a zipped
Shapefile in EPSG:3776 with a private `holder` field) and `recreation.gpkg` (the fields of the README's example
manifest).
"""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import geopandas as gpd
from shapely.geometry import Point, Polygon


def kml_events(path: Path, events: Sequence[dict[str, Any]]) -> Path:
    """A KML of point placemarks, each event's fields (name, starts, ends, ...) as ExtendedData."""
    marks = []
    for event in events:
        data = "".join(
            f'<Data name="{escape(k)}"><value>{escape(str(v))}</value></Data>'
            for k, v in event.items()
            if k not in ("lon", "lat", "name")
        )
        marks.append(
            f"<Placemark><name>{escape(str(event['name']))}</name><ExtendedData>{data}</ExtendedData>"
            f"<Point><coordinates>{event['lon']},{event['lat']}</coordinates></Point></Placemark>"
        )
    body = "".join(marks)
    path.write_text(
        f'<?xml version="1.0" encoding="UTF-8"?><kml xmlns="http://www.opengis.net/kml/2.2"><Document>{body}'
        "</Document></kml>",
        encoding="utf-8",
    )
    return path


def zipped_shapefile(path: Path, frame: gpd.GeoDataFrame, *, leave_out: Sequence[str] = ()) -> Path:
    """A zip of a Shapefile's parts (optionally without some of them, e.g. ".prj"), made in a folder of its own."""
    with tempfile.TemporaryDirectory(prefix="shapefile-") as parts:
        folder = Path(parts)
        frame.to_file(folder / "plots.shp", driver="ESRI Shapefile", engine="pyogrio")
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for part in sorted(folder.iterdir()):
                if part.suffix not in leave_out:
                    archive.write(part, part.name)
    return path


def garden_plots(n: int = 6) -> gpd.GeoDataFrame:
    """Plots of 10 x 10 m in a row near downtown, in EPSG:3776 (the City's survey grid), with a private field."""
    origin = gpd.GeoSeries.from_xy([-114.07], [51.04], crs="EPSG:4326").to_crs(3776).iloc[0]
    squares = [
        Polygon([(x, origin.y), (x + 10, origin.y), (x + 10, origin.y + 10), (x, origin.y + 10)])
        for x in (origin.x + 15 * i for i in range(n))
    ]
    return gpd.GeoDataFrame(
        {"plot": [f"P{i}" for i in range(1, n + 1)], "crop": ["kale"] * n, "holder": [f"holder-{i}" for i in range(n)]},
        geometry=squares,
        crs="EPSG:3776",
    )


def festival(now: datetime, *, stages: int = 1) -> list[dict[str, Any]]:
    """A street festival in Bowness: a parade happening at `now`, and concerts tomorrow (one per stage)."""
    day = timedelta(days=1)
    events = [{"name": "Parade", "starts": (now - day / 24).isoformat(), "ends": (now + day / 8).isoformat(),
               "lon": -114.2167, "lat": 51.0889}]  # fmt: skip
    for n in range(1, stages + 1):
        starts, ends = (now + day).isoformat(), (now + day * 1.25).isoformat()
        events.append({"name": f"Concert, stage {n}", "starts": starts, "ends": ends, "lon": -114.215 + n / 1000,
                       "lat": 51.0875})  # fmt: skip
    return events


def recreation_facilities() -> gpd.GeoDataFrame:
    """Three invented recreation facilities with the README's example manifest's fields."""
    return gpd.GeoDataFrame(
        {
            "facility_id": ["R1", "R2", "R3"],
            "name": ["Demo Pool", "Demo Arena", "Demo Fieldhouse"],
            "address": ["1 Demo Way NW", "2 Demo Way NW", "3 Demo Way NW"],
            "opening_hours": ["Mo-Fr 06:00-22:00", "Mo-Su 08:00-23:00", "Sa-Su 09:00-17:00"],
            "category_name": ["pool", "arena", "fieldhouse"],
        },
        geometry=[Point(-114.09, 51.06), Point(-114.05, 51.03), Point(-114.12, 51.08)],
        crs="EPSG:4326",
    )


def write_samples(folder: Path, now: datetime | None = None) -> list[Path]:
    """The README's sample files in `folder`; their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    at = (now or datetime.now(UTC)).replace(microsecond=0)
    recreation = folder / "recreation.gpkg"
    recreation.unlink(missing_ok=True)
    recreation_facilities().to_file(recreation, driver="GPKG", engine="pyogrio")
    plots = zipped_shapefile(folder / "plots.zip", garden_plots())
    return [
        kml_events(folder / "festival.kml", festival(at)),
        kml_events(folder / "festival-v2.kml", festival(at, stages=2)),
        plots,
        recreation,
    ]
