"""Manifests without French: loaded, shown in English, and the catalogue says which language each text is in."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient

from layers.catalogue.manifest import LayerManifest
from layers.catalogue.visibility import ANONYMOUS
from layers.ingest.load import load_file
from tests.support.layers import drop_layer, point, write_geojson

LAYER = "english only"


def test_a_layer_without_french_is_served_in_english_and_says_so(
    client: TestClient, database_url: str, tmp_path: Path
) -> None:
    m = LayerManifest.model_validate(
        {
            "id": LAYER,
            "title": {"en": "Benches"},
            "description": {"en": "Park benches."},
            "category": "test",
            "department": "Parks",
            "license": {"name": "Test licence"},
            "source": {"file": "unused.geojson"},
            "public_fields": ["seats"],
            "field_descriptions": {"seats": {"en": "How many people fit."}},
        }
    )
    assert m.missing_translations == ("title", "description") and m.title.get("fr") == "Benches"
    load_file(database_url, m, write_geojson(tmp_path / "b.geojson", [({"seats": 3}, point(-114.07, 51.05))]))
    state = client.app.state.geoserver  # type: ignore[attr-defined]
    deadline = time.monotonic() + 15
    while LAYER not in {x.id for x in state.registry.visible(ANONYMOUS)} and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        french = client.get(f"/collections/{LAYER}?lang=fr").json()
        assert french["title"] == "Benches" and french["description"] == "Park benches."
        assert french["language"] == {"code": "en"} and french["languages"] == [{"code": "en"}]
        # A layer with both languages answers in French and lists both.
        wards = client.get("/collections/wards?lang=fr").json()
        assert wards["language"] == {"code": "fr"} and wards["languages"] == [{"code": "en"}, {"code": "fr"}]
        assert wards["title"] != client.get("/collections/wards?lang=en").json()["title"]
        queryables = client.get(f"/collections/{LAYER}/queryables?lang=fr").json()
        assert queryables["properties"]["seats"]["description"] == "How many people fit."
        dataset = next(d for d in client.get("/catalog").json()["dcat:dataset"] if d["dct:identifier"] == LAYER)
        assert dataset["dct:title"] == [{"@value": "Benches", "@language": "en"}]
    finally:
        drop_layer(database_url, LAYER)
