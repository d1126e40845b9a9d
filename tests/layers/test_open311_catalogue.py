"""The 311 service catalogue manifest: the bundled one is valid and matches the demo layer; bad ones are refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from layers.errors import ManifestError, NotFound
from layers.open311.catalogue import SERVICES_MANIFEST, load_catalogue


def test_the_bundled_catalogue_covers_the_demo_codes_and_labels_them_demo() -> None:
    catalogue = load_catalogue()
    assert set(catalogue.codes) == {
        "POTHOLE", "GRAFFITI", "STREETLIGHT_OUT", "WASTE_MISSED", "SNOW_ICE", "NOISE", "TREE", "WATER_LEAK"
    }  # fmt: skip
    assert catalogue.all_demo and all("demo" in s.keywords and "(demo)" in s.department for s in catalogue.services)
    # Services whose reports could point at a home publish neither the place exactly nor the resident's words.
    for service in catalogue.services:
        if service.location == "block":
            assert not service.publish_description and not service.publish_media
    with pytest.raises(NotFound):
        catalogue.service("NOPE")


def _with(tmp_path: Path, change: Any) -> Path:
    data = yaml.safe_load(SERVICES_MANIFEST.read_text(encoding="utf-8"))
    change(data)
    path = tmp_path / "services.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda d: d["services"].append(dict(d["services"][0])), "same code"),
        (lambda d: d["services"][0]["attributes"][0].update(values=[]), "list datatypes need values"),
        (lambda d: d["services"][1]["attributes"][0].update(values=[{"key": "a", "name": {"en": "A", "fr": "A"}}]),
         "take none"),
        (lambda d: d["services"][5]["attributes"][1].update(required=True), "cannot be required"),
        (lambda d: d["services"][0].update(location="street"), "location"),
        (lambda d: d["services"][0].update(code="has space"), "code"),
        (lambda d: d["services"][0]["name"].pop("fr"), "fr"),
        (lambda d: d.update(surprise=True), "surprise"),
    ],
)  # fmt: skip
def test_bad_manifests_are_refused_with_where_and_why(tmp_path: Path, change: Any, words: str) -> None:
    with pytest.raises(ManifestError) as refused:
        load_catalogue(_with(tmp_path, change))
    assert words in refused.value.message
