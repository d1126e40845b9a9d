"""CQL2 filters (OGC API Features Part 3): parsed by the `cql2` library, turned into bound SQL over public fields.

`cql2` reads CQL2 text or JSON into the standard CQL2 JSON tree; this module walks that tree. Every property name
is resolved with `Layer.field`, so a private or unknown name fails the same way before any SQL exists; every value
is checked against the field's kind and bound as a placeholder, cast to that kind, so the database never sees a
malformed value. What is not understood is refused with a 400, never passed through.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, time
from typing import Any

import cql2
import shapely
from psycopg import sql

from layers.catalogue.fieldtypes import SQL_CASTS
from layers.catalogue.records import Layer
from layers.errors import InvalidParameter
from layers.queries import crs as crs_mod
from layers.queries.times import parse_date, parse_interval, parse_timestamp

LANGS = ("cql2-text", "cql2-json")
GEOMETRY_PROPERTY = "geometry"
MAX_FILTER_CHARS = 16_384
MAX_DEPTH = 32
MAX_LIST = 1_000
MAX_VERTICES = 10_000
# The cql2 parser recurses on nesting and crashes the process (not an exception) a few thousand levels deep, so
# nesting is bounded before it ever sees the text: bracket depth and runs of prefix operators.
_UNARY_RUN = re.compile(r"(?:(?:[-+]|\bnot\b)[\s(]*){9,}", re.IGNORECASE)
_STRING = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")
_COMPARISONS = {"=": "=", "<>": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_SPATIAL = {
    "s_intersects": "ST_Intersects", "s_disjoint": "ST_Disjoint", "s_equals": "ST_Equals",
    "s_touches": "ST_Touches", "s_within": "ST_Within", "s_overlaps": "ST_Overlaps", "s_crosses": "ST_Crosses",
    "s_contains": "ST_Contains",
}  # fmt: skip
# Allen's relations between intervals a and b, as (a.start, a.end, b.start, b.end) comparisons.
_TEMPORAL: dict[str, str] = {
    "t_after": "{as} > {be}",
    "t_before": "{ae} < {bs}",
    "t_contains": "{as} < {bs} AND {ae} > {be}",
    "t_disjoint": "({ae} < {bs} OR {as} > {be})",
    "t_during": "{as} > {bs} AND {ae} < {be}",
    "t_equals": "{as} = {bs} AND {ae} = {be}",
    "t_finishedby": "{as} < {bs} AND {ae} = {be}",
    "t_finishes": "{as} > {bs} AND {ae} = {be}",
    "t_intersects": "{as} <= {be} AND {ae} >= {bs}",
    "t_meets": "{ae} = {bs}",
    "t_metby": "{as} = {be}",
    "t_overlappedby": "{as} > {bs} AND {as} < {be} AND {ae} > {be}",
    "t_overlaps": "{as} < {bs} AND {ae} > {bs} AND {ae} < {be}",
    "t_startedby": "{as} = {bs} AND {ae} > {be}",
    "t_starts": "{as} = {bs} AND {ae} < {be}",
}
Bind = Callable[[Any], sql.Composable]


def _literal_text(node: Any) -> str | None:
    """The text of a literal (possibly inside casei): what a like pattern says, when it is written out."""
    while isinstance(node, dict) and node.get("op") == "casei" and isinstance(node.get("args"), list):
        node = node["args"][0] if len(node["args"]) == 1 else None
    return node if isinstance(node, str) else None


def _bad(message: str) -> InvalidParameter:
    return InvalidParameter(f"filter: {message}", parameter="filter")


def check_lang(value: str | None) -> str:
    """The filter language: cql2-text (default) or cql2-json."""
    lang = value or "cql2-text"
    if lang not in LANGS:
        raise InvalidParameter(f"filter-lang must be one of {', '.join(LANGS)}", parameter="filter-lang")
    return lang


def parse(text: str, lang: str | None = None) -> dict[str, Any]:
    """A filter in CQL2 text or JSON, as a CQL2 JSON tree; 400 naming `filter` when it is not valid CQL2."""
    lang = check_lang(lang)
    if len(text) > MAX_FILTER_CHARS:
        raise _bad(f"longer than {MAX_FILTER_CHARS} characters")
    if "\x00" in text:
        raise _bad("holds a NUL character")
    try:
        if lang == "cql2-json":
            tree = json.loads(text)
            _check_json_depth(tree, 0)
            expr = cql2.parse_json(json.dumps(tree))
        else:
            _check_text_nesting(text)
            expr = cql2.parse_text(text)
        result = expr.to_json()
    except InvalidParameter:
        raise
    except (ValueError, TypeError, RecursionError, cql2.ParseError, cql2.ValidationError):
        raise _bad(f"not valid {lang}") from None
    if not isinstance(result, dict | bool):
        raise _bad("not a boolean expression")
    return result if isinstance(result, dict) else {"op": "=", "args": [result, True]}


def _check_text_nesting(text: str) -> None:
    bare = _STRING.sub("''", text)
    depth = 0
    for char in bare:
        depth += 1 if char in "([" else -1 if char in ")]" else 0
        if depth > MAX_DEPTH:
            raise _bad(f"nested more than {MAX_DEPTH} levels deep")
    if _UNARY_RUN.search(bare):
        raise _bad("too many prefix operators in a row")


def _check_json_depth(node: Any, depth: int) -> None:
    if depth > MAX_DEPTH * 2:
        raise _bad(f"nested more than {MAX_DEPTH} levels deep")
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    for child in children:
        _check_json_depth(child, depth + 1)


def to_sql(tree: dict[str, Any], layer: Layer, *, bind: Bind, filter_crs: crs_mod.Crs) -> sql.Composable:
    """The boolean SQL expression of a CQL2 JSON tree over `layer`'s public fields, every value bound."""
    try:
        return _Compiler(layer, bind, filter_crs).boolean(tree, 0)
    except RecursionError:
        raise _bad(f"nested more than {MAX_DEPTH} levels deep") from None


class _Compiler:
    def __init__(self, layer: Layer, bind: Bind, filter_crs: crs_mod.Crs) -> None:
        self.layer = layer
        self.bind = bind
        self.crs = filter_crs

    # -- boolean expressions ------------------------------------------------------------------------------
    def boolean(self, node: Any, depth: int) -> sql.Composable:
        if depth > MAX_DEPTH:
            raise _bad(f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, bool):
            return sql.SQL("TRUE" if node else "FALSE")
        op, args = _op(node)
        if op in ("and", "or"):
            if len(args) < 2:
                raise _bad(f"{op} needs at least two operands")
            joined = sql.SQL(f" {op.upper()} ").join(self.boolean(a, depth + 1) for a in args)
            return sql.SQL("({})").format(joined)
        if op == "not":
            return sql.SQL("(NOT {})").format(self.boolean(_one(args, op), depth + 1))
        if op in _COMPARISONS:
            return self.comparison(op, args, depth)
        if op == "like":
            return self.like(args, depth)
        if op == "between":
            return self.between(args, depth)
        if op == "in":
            return self.within_list(args, depth)
        if op == "isnull":
            value, _ = self.scalar(_one(args, op), depth + 1, any_kind=True)
            return sql.SQL("({} IS NULL)").format(value)
        if op in _SPATIAL:
            return self.spatial(op, args, depth)
        if op in _TEMPORAL:
            return self.temporal(op, args, depth)
        raise _bad(f"the operator {op[:40]!r} is not supported")

    def comparison(self, op: str, args: list[Any], depth: int) -> sql.Composable:
        left, right = _two(args, op)
        (a, _), (b, _) = self.pair(left, right, depth)
        return sql.SQL("({} {} {})").format(a, sql.SQL(_COMPARISONS[op]), b)

    def like(self, args: list[Any], depth: int) -> sql.Composable:
        left, right = _two(args, "like")
        (a, ka), (b, _) = self.pair(left, right, depth)
        if ka != "string":
            raise _bad("like compares text only")
        pattern = _literal_text(right)
        if pattern is None:  # CQL2's grammar: a pattern is written out (a column's values could end with an escape)
            raise _bad("a like pattern is a text literal, possibly inside casei")
        if (len(pattern) - len(pattern.rstrip("\\"))) % 2:
            raise _bad("a like pattern cannot end with a lone backslash (the escape character): write two")
        return sql.SQL("({} LIKE {})").format(a, b)

    def between(self, args: list[Any], depth: int) -> sql.Composable:
        if len(args) != 3:
            raise _bad("between needs a value and two bounds")
        (a, ka), (low, _) = self.pair(args[0], args[1], depth)
        _, (high, _) = self.pair(args[0], args[2], depth)
        if ka not in ("integer", "number", "datetime", "date", "string"):
            raise _bad("between compares numbers, times or text")
        return sql.SQL("({} BETWEEN {} AND {})").format(a, low, high)

    def within_list(self, args: list[Any], depth: int) -> sql.Composable:
        left, items = _two(args, "in")
        if not isinstance(items, list) or not items or len(items) > MAX_LIST:
            raise _bad(f"in needs a list of 1 to {MAX_LIST} values")
        value, kind = self.scalar(left, depth + 1)
        if kind not in SQL_CASTS:
            raise _bad("in compares values only")
        typed = [self.literal(item, expected=kind) for item in items]
        kinds = {k for _, k in typed}
        if kinds == {kind}:
            array_kind = kind
        elif _family(kind) == "number":
            array_kind = "number"
        else:  # dates among times: all as times
            array_kind = "datetime"
            typed = [(_as_datetime(v), "datetime") for v, _ in typed]
        cast = sql.SQL(SQL_CASTS[array_kind])
        return sql.SQL("({} = ANY({}::{}[]))").format(value, self.bind([v for v, _ in typed]), cast)

    def spatial(self, op: str, args: list[Any], depth: int) -> sql.Composable:
        left, right = _two(args, op)
        return sql.SQL("{}({}, {})").format(sql.SQL(_SPATIAL[op]), self.geometry(left), self.geometry(right))

    def temporal(self, op: str, args: list[Any], depth: int) -> sql.Composable:
        left, right = _two(args, op)
        a_start, a_end = self.interval(left, depth)
        b_start, b_end = self.interval(right, depth)
        template = sql.SQL("(" + _TEMPORAL[op].replace("{as}", "{a_s}") + ")")
        return template.format(a_s=a_start, ae=a_end, bs=b_start, be=b_end)

    # -- operands -----------------------------------------------------------------------------------------
    def pair(self, left: Any, right: Any, depth: int) -> tuple[tuple[sql.Composable, str], tuple[sql.Composable, str]]:
        """Two comparable operands; a literal takes the kind of the property it meets."""
        if _is_literal(left) and not _is_literal(right):
            b, kb = self.scalar(right, depth + 1)
            return self._literal_sql(left, kb), (b, kb)
        a, ka = self.scalar(left, depth + 1)
        if _is_literal(right):
            return (a, ka), self._literal_sql(right, ka)
        b, kb = self.scalar(right, depth + 1)
        if _family(ka) != _family(kb):
            raise _bad(f"cannot compare {ka} with {kb}")
        return (a, ka), (b, kb)

    def scalar(self, node: Any, depth: int, *, any_kind: bool = False) -> tuple[sql.Composable, str]:
        if depth > MAX_DEPTH:
            raise _bad(f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, dict) and "property" in node:
            return self.property(node["property"], any_kind=any_kind)
        if isinstance(node, dict) and "op" in node:
            op, args = _op(node)
            if op == "casei":
                value, kind = self.scalar(_one(args, op), depth + 1)
                if kind != "string":
                    raise _bad("casei applies to text only")
                return sql.SQL("lower({})").format(value), "string"
            raise _bad(f"the function {op[:40]!r} is not supported")
        return self._literal_sql(node, None)

    def property(self, name: Any, *, any_kind: bool = False) -> tuple[sql.Composable, str]:
        if not isinstance(name, str):
            raise _bad("a property name must be text")
        if name == GEOMETRY_PROPERTY:
            if not any_kind:
                raise _bad("the geometry is compared with spatial operators only")
            return sql.Identifier(self.layer.geometry_column), "geometry"
        item = self.layer.field(name, parameter="filter")
        kind = item.kind
        if kind not in SQL_CASTS and not any_kind:
            raise _bad(f"{name!r} cannot be compared")
        return sql.Identifier(item.name), kind

    def _literal_sql(self, node: Any, expected: str | None) -> tuple[sql.Composable, str]:
        value, kind = self.literal(node, expected=expected)
        return sql.SQL("{}::{}").format(self.bind(value), sql.SQL(SQL_CASTS[kind])), kind

    def literal(self, node: Any, *, expected: str | None) -> tuple[Any, str]:
        """A literal's Python value and kind, converted to `expected` where that is lossless."""
        value: Any
        if isinstance(node, bool):
            value, kind = node, "boolean"
        elif isinstance(node, int | float):
            value, kind = node, "number"
            if expected == "integer" and float(node).is_integer() and abs(node) < 2**63:
                value, kind = int(node), "integer"  # keeps an index on an integer column usable
        elif isinstance(node, str):
            if "\x00" in node:
                raise _bad("a text value holds a NUL character")
            value, kind = node, "string"
        elif isinstance(node, dict) and isinstance(node.get("timestamp"), str):
            value, kind = parse_timestamp(node["timestamp"], parameter="filter"), "datetime"
        elif isinstance(node, dict) and isinstance(node.get("date"), str):
            value, kind = parse_date(node["date"], parameter="filter"), "date"
            if expected == "datetime":
                value, kind = datetime.combine(value, time(0), tzinfo=UTC), "datetime"
        else:
            raise _bad("unsupported value")
        if expected is not None and _family(kind) != _family(expected):
            raise _bad(f"cannot compare {expected} with {kind}")
        return value, kind

    def geometry(self, node: Any) -> sql.Composable:
        if isinstance(node, dict) and "property" in node:
            if node["property"] != GEOMETRY_PROPERTY:
                self.property(node["property"])  # a private name fails like an unknown one
                raise _bad("spatial operators apply to the geometry property")
            return sql.Identifier(self.layer.geometry_column)
        if isinstance(node, dict) and "bbox" in node:
            box = node["bbox"]
            if not isinstance(box, list) or len(box) not in (4, 6) or not all(isinstance(n, int | float) for n in box):
                raise _bad("a bbox needs 4 or 6 numbers")
            xmin, ymin, xmax, ymax = (box[0], box[1], box[2], box[3]) if len(box) == 4 else (*box[:2], *box[3:5])
            if not all(abs(float(n)) < 1e15 for n in (xmin, ymin, xmax, ymax)):
                raise _bad("a bbox needs finite numbers")
            corners = [(xmin, ymin), (xmin, ymax), (xmax, ymin), (xmax, ymax)]
            crs_mod.check_domain(corners, self.crs, parameter="filter")
            envelope = sql.SQL("ST_MakeEnvelope({}, {}, {}, {})").format(
                *(self.bind(float(n)) for n in (xmin, ymin, xmax, ymax))
            )
            return crs_mod.to_storage(envelope, self.crs)
        if isinstance(node, dict) and isinstance(node.get("type"), str):
            try:
                shape = shapely.from_geojson(json.dumps(node))
            except (shapely.errors.GEOSException, ValueError, TypeError):
                raise _bad("not a valid GeoJSON geometry") from None
            coords = shapely.get_coordinates(shape)
            if shape.is_empty or len(coords) > MAX_VERTICES or not shapely.is_valid(shape):
                raise _bad(f"geometries must be valid, non-empty, and have at most {MAX_VERTICES} vertices")
            if not abs(coords).max() < 1e15:
                raise _bad("coordinates must be finite numbers")
            crs_mod.check_domain([(x, y) for x, y in coords[:, :2]], self.crs, parameter="filter")
            return crs_mod.to_storage(sql.SQL("ST_GeomFromWKB({})").format(self.bind(shapely.to_wkb(shape))), self.crs)
        raise _bad("spatial operators need the geometry property, a geometry or a bbox")

    def interval(self, node: Any, depth: int) -> tuple[sql.Composable, sql.Composable]:
        if isinstance(node, dict) and "interval" in node:
            bounds = node["interval"]
            if not isinstance(bounds, list) or len(bounds) != 2:
                raise _bad("an interval has a start and an end")
            return self._bound(bounds[0], start=True, depth=depth), self._bound(bounds[1], start=False, depth=depth)
        if isinstance(node, dict) and isinstance(node.get("date"), str):
            # A date is the whole day, not its first instant.
            day = parse_interval(node["date"], parameter="filter")
            stamp = sql.SQL("{}::timestamptz")
            return stamp.format(self.bind(day.start)), stamp.format(self.bind(day.end))
        value, kind = self.scalar(node, depth + 1)
        if kind not in ("datetime", "date"):
            raise _bad("temporal operators need times, dates or intervals")
        return value, value

    def _bound(self, node: Any, *, start: bool, depth: int) -> sql.Composable:
        if node == "..":
            return sql.SQL("'-infinity'::timestamptz" if start else "'infinity'::timestamptz")
        if isinstance(node, str):
            interval = parse_interval(node, parameter="filter")
            return sql.SQL("{}::timestamptz").format(self.bind(interval.start if start else interval.end))
        value, kind = self.scalar(node, depth + 1)
        if kind not in ("datetime", "date"):
            raise _bad("interval bounds must be times or dates")
        return value


def _op(node: Any) -> tuple[str, list[Any]]:
    if not isinstance(node, dict) or not isinstance(node.get("op"), str):
        raise _bad("expected an operator")
    args = node.get("args", [])
    if not isinstance(args, list):
        raise _bad("operator arguments must be a list")
    return node["op"].lower(), args


def _one(args: list[Any], op: str) -> Any:
    if len(args) != 1:
        raise _bad(f"{op} takes one operand")
    return args[0]


def _two(args: list[Any], op: str) -> tuple[Any, Any]:
    if len(args) != 2:
        raise _bad(f"{op} takes two operands")
    return args[0], args[1]


def _is_literal(node: Any) -> bool:
    return not (isinstance(node, dict) and ("property" in node or "op" in node))


def _as_datetime(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    return datetime.combine(value, time(0), tzinfo=UTC)


def _family(kind: str) -> str:
    return {"integer": "number", "date": "datetime"}.get(kind, kind)
