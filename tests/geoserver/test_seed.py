"""`geoserver seed` fills the running server's tile cache."""

from __future__ import annotations

import subprocess
import sys
import urllib.request

import morecantile

from tests.support.servers import LiveServer


def test_seed_builds_every_tile_and_the_server_then_serves_them_from_cache(live_server: LiveServer) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "geoserver",
            "seed",
            "wards,communities",
            "--min-zoom",
            "9",
            "--max-zoom",
            "11",
            "--url",
            live_server.url,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert " 0 failed" in done.stderr and "tiles built" in done.stderr
    built = int(done.stderr.split(" tiles built")[0].split()[-1].replace(",", ""))
    assert built > 10
    t = morecantile.tms.get("WebMercatorQuad").tile(-114.07, 51.04, 11)
    with urllib.request.urlopen(f"{live_server.url}/tiles/wards,communities/11/{t.x}/{t.y}.pbf") as response:  # noqa: S310
        assert response.headers["X-Tile-Cache"] == "hit"


def test_seed_reports_unknown_layers_clearly(live_server: LiveServer) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "geoserver", "seed", "no-such-layer", "--url", live_server.url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "404" in done.stderr and "Traceback" not in done.stderr
