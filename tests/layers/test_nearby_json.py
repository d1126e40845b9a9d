"""Near-me features joined from the database's texts equal the same features built through dicts."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from layers.queries.hours import Status
from layers.queries.nearby import Hit
from layers.queries.nearby_json import _as_dict, feature

OPEN = Status(True, None, datetime(2027, 1, 1, 17, tzinfo=UTC))


def _hit(props: str, **extra: object) -> Hit:
    values: dict[str, object] = dict(
        layer='odd "layer"', id=7, distance_m=12.345678, bearing_deg=None,
        geometry='{"type":"Point","coordinates":[1,2]}', properties_json=props,
        happening_now=None, hours=None, has_hours=False, id_json="7",
    )  # fmt: skip
    values.update(extra)
    return Hit(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "hit",
    [
        _hit('{"name":"a","n":1}'),
        _hit("{}"),  # no public fields
        _hit('{"name":"b"}', has_hours=True, hours=OPEN, bearing_deg=90.5),
        _hit('{"name":"c"}', has_hours=True, hours=None, happening_now=False, id="x", id_json='"x"'),
        _hit('{"layer":"mine","distance_m":1}'),  # public fields named like what the search adds
    ],
)
def test_the_joined_feature_equals_the_dict_built_one(hit: Hit) -> None:
    joined = feature(hit)
    assert orjson.loads(joined) == orjson.loads(orjson.dumps(_as_dict(hit)))
    assert joined.count(b'"layer":') == 1  # never a key twice
