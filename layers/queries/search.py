"""Search by name or address over the public layers' searchable fields (`/search`).

Two passes, so that what a resident typed wins over what resembles it:
1. every word of the query appears in the row's searched text (`ILIKE '%word%'`, case-insensitive, any script);
2. only when nothing matches that way, and pg_trgm is installed: rows whose text holds a word spelt like the query
   (trigram word similarity `<%` at `SPELLING_THRESHOLD`), for spelling mistakes.
With a point, results are the nearest first (geodesic distance); without, the best first: text that starts with
the query, then a word that does, then anything else; shorter texts first (the closer match), then by layer and id.
The searched text is `search_text.document`, the same expression the trigram index of a load is built on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from psycopg import AsyncConnection, sql

from layers.catalogue.records import Layer
from layers.catalogue.search_text import TRIGRAM_EXTENSION, document, text_fields
from layers.queries.geojson import properties_json
from layers.sqlcompose import Slot, StatementCache, render

_ME = sql.SQL("(SELECT ST_SetSRID(ST_MakePoint({}::float8, {}::float8), 4326)::geography)").format(
    Slot("lon"), Slot("lat")
)
_HAS_TRIGRAM = render(sql.SQL("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = {})").format(Slot("name")))
DIGITS = 6  # about 10 cm: enough to show a result on a map
# pg_trgm's default (0.6) misses one-letter slips in short words: "libary" is 0.5 like "library".
SPELLING_THRESHOLD = 0.5
_THRESHOLD = render(
    sql.SQL("SELECT set_config('pg_trgm.word_similarity_threshold', {}, true)").format(Slot("threshold"))
)


@dataclass(frozen=True)
class SearchQuery:
    """One search, validated: the text, its words, an optional point, the page size."""

    text: str
    words: tuple[str, ...]
    point: tuple[float, float] | None
    limit: int


@dataclass(frozen=True)
class Found:
    """One feature whose searched text matches."""

    layer: str
    id: Any
    geometry: str
    bbox: tuple[float, float, float, float]
    properties: dict[str, Any]
    distance_m: float | None
    rank: tuple[float, int]


def searchable(layer: Layer) -> tuple[str, ...]:
    """The fields `/search` reads in a layer: its searchable fields that hold text."""
    return text_fields(layer.searchable_fields, {f.name: f.data_type for f in layer.fields})


def like_pattern(text: str, *, start: bool = False, word: bool = False) -> str:
    """An ILIKE pattern matching `text` literally: anywhere, at the start, or at the start of a word."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    if start:
        return escaped + "%"
    return ("% " if word else "%") + escaped + "%"


class SearchService:
    """Per-app cache of search statements, and whether the database has pg_trgm (checked per catalogue state)."""

    def __init__(self, cache_size: int = 256) -> None:
        self._statements = StatementCache(cache_size)
        self._trigram: tuple[tuple[Any, ...], bool] | None = None

    async def search(self, conn: AsyncConnection[Any], layers: Sequence[Layer], q: SearchQuery) -> list[Found]:
        """The best `q.limit` matches across `layers` (public ones, chosen by the caller)."""
        chosen = [layer for layer in layers if searchable(layer)]
        if not chosen:
            return []
        params: dict[str, Any] = {
            "lim": q.limit, "text": q.text, "start": like_pattern(q.text, start=True),
            "word": like_pattern(q.text, word=True), "lon": q.point[0] if q.point else None,
            "lat": q.point[1] if q.point else None,
            **{f"w{i}": like_pattern(w) for i, w in enumerate(q.words)},
        }  # fmt: skip
        found = await self._run(conn, chosen, q, len(q.words), params)
        if not found and await self._has_trigram(conn, chosen):
            found = await self._run(conn, chosen, q, None, params)
        return sorted(found, key=lambda f: (f.distance_m or 0.0, *f.rank, f.layer, f.id))[: q.limit]

    async def _run(
        self, conn: AsyncConnection[Any], layers: list[Layer], q: SearchQuery, words: int | None, params: dict[str, Any]
    ) -> list[Found]:
        near = q.point is not None
        key = (tuple((layer.id, layer.version) for layer in layers), words, near)
        statement = self._statements.get(key, lambda: search_sql(layers, words, near))
        if words is not None:
            rows = await (await conn.execute(statement, params)).fetchall()
        else:
            async with conn.transaction():  # the threshold holds for this statement only
                await conn.execute(_THRESHOLD, {"threshold": str(SPELLING_THRESHOLD)})
                rows = await (await conn.execute(statement, params)).fetchall()
        return [_found(row, layers) for row in rows]

    async def _has_trigram(self, conn: AsyncConnection[Any], layers: list[Layer]) -> bool:
        """Whether pg_trgm is installed: asked again whenever a searched layer changed (a load may create it)."""
        key = tuple((layer.id, layer.version) for layer in layers)
        if self._trigram is None or self._trigram[0] != key:
            row = await (await conn.execute(_HAS_TRIGRAM, {"name": TRIGRAM_EXTENSION})).fetchone()
            self._trigram = (key, bool(row and row[0]))
        return self._trigram[1]


def _found(row: tuple[Any, ...], layers: Sequence[Layer]) -> Found:
    branch, ident, geometry, xmin, ymin, xmax, ymax, props, distance, tier, similarity, length = row
    return Found(
        layers[branch].id,
        orjson.loads(ident),
        geometry,
        (xmin, ymin, xmax, ymax),
        orjson.loads(props),
        distance,
        (float(tier) - float(similarity), int(length)),
    )


def layer_sql(branch: int, layer: Layer, words: int | None, near: bool) -> sql.Composed:
    """One layer's matches, at most `lim`, best (or nearest) first; `words` None: the spelling pass."""
    text = document(searchable(layer), "t")
    geom = sql.Identifier("t", layer.geometry_column)
    if words is None:
        match: sql.Composable = sql.SQL("{} <% {}").format(Slot("text"), text)
        similarity: sql.Composable = sql.SQL("word_similarity({}, {})").format(Slot("text"), text)
    else:
        match = sql.SQL(" AND ").join(sql.SQL("{} ILIKE {}").format(text, Slot(f"w{i}")) for i in range(words))
        similarity = sql.SQL("0")
    tier = sql.SQL("CASE WHEN {t} ILIKE {s} THEN 0 WHEN {t} ILIKE {w} THEN 1 ELSE 2 END").format(
        t=text, s=Slot("start"), w=Slot("word")
    )
    distance = sql.SQL("ST_Distance({}::geography, {})").format(geom, _ME) if near else sql.SQL("NULL::float8")
    order = sql.SQL("c.m, c.k") if near else sql.SQL("c.r - c.s, c.n, c.k")
    return sql.SQL(
        "(SELECT {branch}, to_jsonb(c.k)::text, ST_AsGeoJSON(c.g, {digits}), ST_XMin(c.g), ST_YMin(c.g), "
        "ST_XMax(c.g), ST_YMax(c.g), c.p, c.m, c.r, c.s, c.n FROM ("
        "SELECT {id} AS k, {geom} AS g, {props} AS p, {distance} AS m, {tier} AS r, ({similarity})::float8 AS s, "
        "length({text}) AS n FROM {table} AS t WHERE {match} OFFSET 0) AS c ORDER BY {order} LIMIT {lim}::int8)"
    ).format(
        branch=sql.Literal(branch), digits=sql.Literal(DIGITS), id=sql.Identifier("t", layer.id_column), geom=geom,
        props=properties_json(layer), distance=distance, tier=tier, similarity=similarity, text=text,
        table=layer.table, match=match, order=order, lim=Slot("lim"),
    )  # fmt: skip


def search_sql(layers: Sequence[Layer], words: int | None, near: bool) -> bytes:
    """The search across layers: one branch per layer, as `layer_sql` builds it."""
    return render(sql.SQL(" UNION ALL ").join(layer_sql(i, layer, words, near) for i, layer in enumerate(layers)))
