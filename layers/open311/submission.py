"""A GeoReport POST checked against the service catalogue: every field sized, typed and known before anything is
stored. The requester's fields are kept apart from the rest from the moment they are read.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from layers.errors import InvalidParameter, NotFound
from layers.open311.catalogue import Attribute, Service, ServiceCatalogue
from layers.queries.times import iso, parse_timestamp

MAX_DESCRIPTION = 4000  # the GeoReport v2 specification's limit
MAX_LINE = 500  # address_string, a `string` attribute
MAX_URL = 2048
MAX_EMAIL = 254  # RFC 5321's longest path
MAX_NAME = 100
MAX_PHONE = 40
MAX_ID = 200  # device_id, account_id, address_id
MAX_ATTRIBUTES = 50
MAX_LIST_VALUES = 20
REQUESTER_FIELDS = {"email": MAX_EMAIL, "first_name": MAX_NAME, "last_name": MAX_NAME, "phone": MAX_PHONE,
                    "device_id": MAX_ID, "account_id": MAX_ID}  # fmt: skip
KNOWN = frozenset(
    {"jurisdiction_id", "service_code", "lat", "long", "address_string", "address_id", "description", "media_url",
     *REQUESTER_FIELDS}
)  # fmt: skip
_ATTRIBUTE = re.compile(r"attribute\[([^\[\]]{1,64})\](\[\])?")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # what XML 1.0 cannot carry (and DEL)
_LINE_BREAK = re.compile(r"[\r\n]")
_PHONE = re.compile(r"[0-9+().\- ]{3,40}(?:\s*(?:x|ext\.?)\s*[0-9]{1,6})?", re.IGNORECASE)


@dataclass(frozen=True)
class Submission:
    """A checked request: what may be stored with it, and the requester's fields, which are never published."""

    service: Service
    lon: float
    lat: float
    address: str | None
    description: str | None
    media_url: str | None
    attributes: dict[str, Any]
    requester: dict[str, str | None] = field(repr=False)  # never in a repr, a log line or an error

    def fingerprint(self, key: str) -> bytes:
        """What makes two submissions the same one: key, service, place (about 10 m) and text."""
        text = " ".join((self.description or "").casefold().split())
        place = [round(self.lon, 4), round(self.lat, 4), " ".join((self.address or "").casefold().split())]
        parts = [key, self.service.code, place, text, self.attributes]
        return hashlib.sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False).encode()).digest()


def check_submission(catalogue: ServiceCatalogue, form: dict[str, list[str]]) -> Submission:
    """Check a POSTed form (every field as the list of its values) against the catalogue."""
    attributes_sent: dict[str, list[str]] = {}
    for name, values in form.items():
        match = _ATTRIBUTE.fullmatch(name)
        if match:
            attributes_sent.setdefault(match[1], []).extend(values)
        elif name not in KNOWN:
            raise InvalidParameter(f"unknown field {name[:60]!r}", parameter=name[:60])
        elif len(values) > 1:
            raise InvalidParameter(f"{name} is given more than once", parameter=name)
    one = {name: values[0] for name, values in form.items() if name in KNOWN}
    if len(attributes_sent) > MAX_ATTRIBUTES:
        raise InvalidParameter(f"at most {MAX_ATTRIBUTES} attributes", parameter="attribute")
    code = _text(one, "service_code", 64)
    if code is None:
        raise InvalidParameter("service_code was not provided", parameter="service_code")
    jurisdiction = _text(one, "jurisdiction_id", 200)
    if jurisdiction is not None and jurisdiction != catalogue.jurisdiction_id:
        raise_jurisdiction(jurisdiction)
    service = catalogue.service(code)
    lon, lat = _location(one)
    return Submission(
        service=service,
        lon=lon,
        lat=lat,
        address=_text(one, "address_string", MAX_LINE),
        description=_text(one, "description", MAX_DESCRIPTION, multiline=True),
        media_url=_media_url(one),
        attributes=_attributes(service, attributes_sent),
        requester=_requester(one),
    )


def raise_jurisdiction(value: str) -> None:
    """GeoReport's answer to a jurisdiction this server does not serve (404)."""
    raise NotFound(f"jurisdiction_id {value[:64]!r} was not found", parameter="jurisdiction_id")


def _text(values: dict[str, str], name: str, most: int, *, multiline: bool = False) -> str | None:
    """A text field: absent or blank is None (GeoReport's optional arguments); too long or with control characters
    (line breaks too, unless `multiline`) is a 400 that names the field but never repeats its value."""
    raw = values.get(name)
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    if len(text) > most:
        raise InvalidParameter(f"{name} is longer than {most} characters", parameter=name)
    if CONTROL.search(text) or (not multiline and _LINE_BREAK.search(text)):
        raise InvalidParameter(f"{name} holds characters that are not allowed", parameter=name)
    return text


def _location(values: dict[str, str]) -> tuple[float, float]:
    """lat and long, both, finite and in range. An address alone cannot be placed on the map here."""
    lat_text, lon_text = values.get("lat", "").strip(), values.get("long", "").strip()
    if not lat_text and not lon_text:
        if _text(values, "address_string", MAX_LINE) or _text(values, "address_id", MAX_ID):
            raise InvalidParameter(
                "lat and long are required: this server places every request on the map and cannot look up "
                "address_string or address_id; send them with lat and long",
                parameter="lat",
            )
        raise InvalidParameter("a location was not provided: send lat and long", parameter="lat")
    if not lat_text or not lon_text:
        raise InvalidParameter("lat and long must be sent together", parameter="lat" if not lat_text else "long")
    lat, lon = _number(lat_text, "lat", 90), _number(lon_text, "long", 180)
    return lon, lat


def _number(text: str, name: str, bound: float) -> float:
    try:
        value = float(text) if len(text) <= 40 else math.nan
    except ValueError:
        value = math.nan
    if not -bound <= value <= bound:  # NaN fails too
        raise InvalidParameter(f"{name} must be a number between {-bound:g} and {bound:g}", parameter=name)
    return value


def _media_url(values: dict[str, str]) -> str | None:
    url = _text(values, "media_url", MAX_URL)
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or " " in url:
        raise InvalidParameter("media_url must be an http or https URL", parameter="media_url")
    return url


def _requester(values: dict[str, str]) -> dict[str, str | None]:
    requester = {name: _text(values, name, most) for name, most in REQUESTER_FIELDS.items()}
    email = requester["email"]
    if email is not None and (email.count("@") != 1 or " " in email or email.startswith("@") or email.endswith("@")):
        raise InvalidParameter("email is not an e-mail address", parameter="email")
    phone = requester["phone"]
    if phone is not None and not _PHONE.fullmatch(phone):
        raise InvalidParameter("phone is not a phone number", parameter="phone")
    return requester


def _attributes(service: Service, sent: dict[str, list[str]]) -> dict[str, Any]:
    """The answers to the service's questions, each of its datatype; unknown or missing required ones are a 400."""
    answers: dict[str, Any] = {}
    for code, values in sent.items():
        attribute = service.attribute(code)
        name = f"attribute[{code}]"
        if attribute is None or not attribute.variable:
            raise InvalidParameter(f"{service.code} has no attribute {code!r} to answer", parameter=name)
        values = [v.strip() for v in values if v.strip()]
        if values:
            answers[code] = _answer(attribute, values, name)
    for attribute in service.attributes:
        if attribute.required and attribute.code not in answers:
            raise InvalidParameter(
                f"required attribute {attribute.code} was not provided", parameter=f"attribute[{attribute.code}]"
            )
    return answers


def _answer(attribute: Attribute, values: list[str], name: str) -> Any:
    if attribute.datatype == "multivaluelist":
        if len(values) > MAX_LIST_VALUES or len(set(values)) != len(values):
            raise InvalidParameter(f"{name}: at most {MAX_LIST_VALUES} different values", parameter=name)
        if not set(values) <= attribute.keys:
            raise InvalidParameter(f"{name}: one of the values is not a choice of the list", parameter=name)
        return values
    if len(values) > 1:
        raise InvalidParameter(f"{name} takes one value", parameter=name)
    value = values[0]
    if attribute.datatype == "singlevaluelist":
        if value not in attribute.keys:
            raise InvalidParameter(f"{name} must be one of {', '.join(sorted(attribute.keys))}", parameter=name)
        return value
    if attribute.datatype == "number":
        number = _number(value, name, 1e12)
        return int(number) if number.is_integer() else number
    if attribute.datatype == "datetime":
        return iso(parse_timestamp(value[:64], parameter=name))
    text = _text({name: value}, name, MAX_DESCRIPTION if attribute.datatype == "text" else MAX_LINE,
                 multiline=attribute.datatype == "text")  # fmt: skip
    return text
