"""Pre-building tiles: ask a running server for every tile of a zoom range, which fills its tile cache."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import quote

from layers.errors import InvalidParameter
from tiles.grids import DEFAULT_TMS, TileXYZ, tiles_over


@dataclass
class SeedReport:
    """How seeding went."""

    built: int = 0
    empty: int = 0
    failed: int = 0


def _fetch(url: str) -> int:
    request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310 - the operator's own server
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def plan(server: str, layers: list[str], min_zoom: int, max_zoom: int) -> tuple[str, list[TileXYZ]]:
    """The tile URL template and the tiles over the layers' extent, read from the server's TileJSON."""
    names = ",".join(quote(name, safe="") for name in layers)
    try:
        with urllib.request.urlopen(f"{server}/tiles/{names}.json", timeout=30) as response:  # noqa: S310
            doc = json.load(response)
    except urllib.error.HTTPError as exc:
        raise InvalidParameter(f"the server answered {exc.code} for these layers", parameter="layers") from exc
    except OSError as exc:
        raise InvalidParameter(
            f"no server answers at {server}: start it with `geoserver serve`", parameter="url"
        ) from exc
    if min_zoom > max_zoom:
        raise InvalidParameter("--min-zoom is greater than --max-zoom", parameter="min_zoom")
    zooms = list(range(max(min_zoom, doc["minzoom"]), min(max_zoom, doc["maxzoom"]) + 1))
    return doc["tiles"][0], tiles_over(DEFAULT_TMS, tuple(doc["bounds"]), zooms)


def seed(
    template: str, tiles: list[TileXYZ], *, workers: int = 4, progress: Callable[[int], None] | None = None
) -> SeedReport:
    """Request every tile (a few at a time, so the server keeps serving others); count the outcomes."""
    report = SeedReport()
    urls: Iterator[str] = (template.format(z=t.z, x=t.x, y=t.y) for t in tiles)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for status in pool.map(_fetch, urls):
            if status == 200:
                report.built += 1
            elif status == 204:
                report.empty += 1
            else:
                report.failed += 1
            if progress is not None:
                progress(1)
    return report
