"""HTML pages of the OGC API documents, from Jinja templates with autoescaping on."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from fastapi import Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from geoserver import i18n
from geoserver.responses import caching

TEMPLATES = Path(__file__).resolve().parent / "templates"


@functools.cache
def environment() -> Environment:
    """The template environment, built on first use."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["tojson_pretty"] = _pretty
    return env


def _pretty(value: Any) -> str:
    import json

    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def render(template: str, context: dict[str, Any], *, lang: str, public: bool, status: int = 200) -> Response:
    """A page in `lang` with the caching headers of its data."""

    def t(key: str) -> str:
        return i18n.text(lang, key)

    page = environment().get_template(template).render(**context, lang=lang, t=t)
    return Response(page, status_code=status, media_type="text/html; charset=utf-8", headers=caching(public, lang))
