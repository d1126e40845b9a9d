"""The 311 service catalogue: a YAML manifest in the repository (`services.yaml`), checked with pydantic.

It names the services residents may report (codes, names in English and French, groups, keywords, attributes, the
City department that answers), what of a report may be published (the text, the media link, the location's
precision), the layer the requests are published in and the layer whose polygons are the City's wards.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from layers.catalogue.manifest import Translated
from layers.errors import ManifestError, NotFound

SERVICES_MANIFEST = Path(__file__).with_name("services.yaml")
CODE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")  # safe in a URL path segment and an XML element's text
Datatype = Literal["string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"]
LISTS = ("singlevaluelist", "multivaluelist")


def _distinct_codes(what: str) -> AfterValidator:
    """Refuses a list in which two items have the same `code`."""

    def check(items: tuple[Any, ...]) -> tuple[Any, ...]:
        if len({item.code for item in items}) != len(items):
            raise ValueError(f"two {what} have the same code")
        return items

    return AfterValidator(check)


class Bilingual(Translated):
    """Residents read a service's words in English or French: unlike a layer's, the 311 catalogue gives both."""

    fr: str = Field(min_length=1)


class Value(BaseModel):
    """One choice of a list attribute."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    key: str = Field(pattern=CODE.pattern)
    name: Bilingual


class Attribute(BaseModel):
    """A question a service asks (GeoReport's service definition attribute)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    code: str = Field(pattern=CODE.pattern)
    datatype: Datatype
    required: bool = False
    variable: bool = True  # false: shown to the resident as information, never answered
    description: Bilingual
    datatype_description: Bilingual | None = None
    values: tuple[Value, ...] = ()

    @model_validator(mode="after")
    def _values_for_lists(self) -> Attribute:
        if (self.datatype in LISTS) != bool(self.values):
            raise ValueError(f"attribute {self.code}: list datatypes need values, other datatypes take none")
        if len({v.key for v in self.values}) != len(self.values):
            raise ValueError(f"attribute {self.code}: two values have the same key")
        if self.required and not self.variable:
            raise ValueError(f"attribute {self.code}: an informational attribute (variable: false) cannot be required")
        return self

    @cached_property
    def keys(self) -> frozenset[str]:
        """The keys a list attribute accepts."""
        return frozenset(v.key for v in self.values)


class Service(BaseModel):
    """One kind of request residents may make."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    code: str = Field(pattern=CODE.pattern)
    name: Bilingual
    description: Bilingual
    group: str
    keywords: tuple[str, ...] = ()
    department: str
    demo: bool = False
    type: Literal["realtime", "batch"] = "realtime"  # batch: a token now, the request id through tokens/{token}
    location: Literal["exact", "block"] = "exact"
    publish_description: bool = False
    publish_media: bool = False
    service_notice: Bilingual | None = None
    attributes: Annotated[tuple[Attribute, ...], _distinct_codes("attributes")] = ()

    def attribute(self, code: str) -> Attribute | None:
        """The attribute with this code, None when the service has none."""
        return next((a for a in self.attributes if a.code == code), None)


class Wards(BaseModel):
    """The layer whose polygons are the City's wards: its union is the City's boundary."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    layer: str
    name_field: str


class ServiceCatalogue(BaseModel):
    """The whole manifest: jurisdiction, discovery texts, where requests are published, the services."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    jurisdiction_id: str
    changeset: str
    contact: Bilingual
    key_service: Bilingual
    requests_layer: str
    status_field: str = "status"
    wards: Wards
    services: Annotated[tuple[Service, ...], _distinct_codes("services"), Field(min_length=1)]

    @property
    def codes(self) -> list[str]:
        """Every service code, in manifest order."""
        return [s.code for s in self.services]

    @property
    def all_demo(self) -> bool:
        """True when every service is a demo one: discovery then calls the endpoint a test endpoint."""
        return all(s.demo for s in self.services)

    def service(self, code: str) -> Service:
        """The service with this code; NotFound (GeoReport's 404) when there is none."""
        found = next((s for s in self.services if s.code == code), None)
        if found is None:
            raise NotFound(f"service_code {code[:64]!r} was not found", parameter="service_code")
        return found


def load_catalogue(path: Path = SERVICES_MANIFEST) -> ServiceCatalogue:
    """Read and check a service catalogue manifest."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return ServiceCatalogue.model_validate(data)
    except (OSError, yaml.YAMLError) as exc:
        raise ManifestError(f"{path.name}: cannot be read ({exc.__class__.__name__})") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ManifestError(f"{path.name}: {where}: {first['msg']}") from None
