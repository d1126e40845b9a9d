"""scripts/serve-static's server answers byte ranges as object storage does (RFC 9110): what PMTiles readers need."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts" / "lib"))
from rangeserver import StaticServer  # noqa: E402 - scripts/serve-static's server

BODY = bytes(range(256)) * 4  # 1,024 bytes, each position recognisable


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("static")
    (folder / "city.pmtiles").write_bytes(BODY)
    with StaticServer(folder) as static:
        yield static.url


@pytest.mark.parametrize(
    ("range_header", "start", "end"),
    [("bytes=0-9", 0, 9), ("bytes=1000-", 1000, 1023), ("bytes=1000-5000", 1000, 1023), ("bytes=-5", 1019, 1023),
     ("bytes=-5000", 0, 1023)],
)  # fmt: skip
def test_a_satisfiable_range_is_206_with_exactly_those_bytes(
    server: str, range_header: str, start: int, end: int
) -> None:
    response = httpx.get(f"{server}/city.pmtiles", headers={"Range": range_header})
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes {start}-{end}/{len(BODY)}"
    assert response.content == BODY[start : end + 1]


@pytest.mark.parametrize("range_header", ["bytes=1024-", "bytes=2000-3000", "bytes=-0", "bytes=9-3"])
def test_an_unsatisfiable_range_is_416_and_names_the_size(server: str, range_header: str) -> None:
    response = httpx.get(f"{server}/city.pmtiles", headers={"Range": range_header})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{len(BODY)}"


@pytest.mark.parametrize("range_header", ["bytes=-", "bytes=a-b", "items=0-9", "bytes=0-9,20-29"])
def test_a_range_it_does_not_understand_gets_the_whole_file(server: str, range_header: str) -> None:
    response = httpx.get(f"{server}/city.pmtiles", headers={"Range": range_header})
    assert response.status_code == 200 and response.content == BODY
