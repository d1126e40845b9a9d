"""One error hierarchy for the whole server; `geoserver.errors` maps it to HTTP statuses in one place."""

from __future__ import annotations

import psycopg


class GeoServerError(Exception):
    """Base of every error the server raises on purpose. Its message is safe to show a client."""

    code = "error"

    def __init__(self, message: str, *, parameter: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.parameter = parameter


class NotFound(GeoServerError):
    """The thing does not exist, or the caller may not see it (the two are indistinguishable)."""

    code = "not_found"


class LayerNotFound(NotFound):
    """No layer with this id is visible to the caller."""

    def __init__(self, layer_id: str) -> None:
        super().__init__(f"no layer named {layer_id[:200]!r}", parameter="collectionId")
        self.layer_id = layer_id


class InvalidParameter(GeoServerError):
    """A request parameter is malformed, out of range or unknown."""

    code = "invalid_parameter"


class Unauthorized(GeoServerError):
    """Credentials were sent but are unknown, revoked or expired (never silently downgraded to anonymous)."""

    code = "unauthorized"


class Forbidden(GeoServerError):
    """The caller may see the thing but may not do this to it."""

    code = "forbidden"


class LimitReached(Forbidden):
    """A lasting limit (a group's number of layers) was reached: waiting will not help."""

    code = "limit_reached"


class Conflict(GeoServerError):
    """The request clashes with what exists (an id already taken, a stale version)."""

    code = "conflict"


class TooLarge(GeoServerError):
    """What was sent is larger than the server accepts."""

    code = "too_large"


class Retryable(GeoServerError):
    """Worth trying again after `retry_after_s` seconds; `limit` names the limit that was reached, if one was."""

    def __init__(
        self,
        message: str,
        *,
        retry_after_s: int | None = None,
        parameter: str | None = None,
        limit: str | None = None,
    ) -> None:
        super().__init__(message, parameter=parameter)
        self.retry_after_s = retry_after_s
        self.limit = limit


class QuotaExceeded(Retryable):
    """A limit on how much or how often this client (or group) may ask was reached."""

    code = "quota_exceeded"


class Busy(Retryable):
    """The server's capacity for this kind of work is all in use right now (not the client's fault)."""

    code = "busy"


class TooExpensive(Retryable):
    """A query ran longer than it is allowed to and was stopped."""

    code = "query_too_expensive"


class NotAllowed(GeoServerError):
    """The method does not apply to this resource (a table published in place is read-only)."""

    code = "method_not_allowed"

    def __init__(self, message: str, *, allowed: tuple[str, ...]) -> None:
        super().__init__(message)
        self.allowed = allowed


class PreconditionFailed(GeoServerError):
    """If-Match named another version than the stored one: the client edits a stale copy."""

    code = "precondition_failed"


class PreconditionRequired(GeoServerError):
    """The resource requires If-Match and the request sent none."""

    code = "precondition_required"


class ManifestError(GeoServerError):
    """A layer manifest is malformed or inconsistent."""

    code = "invalid_manifest"


class IngestError(GeoServerError):
    """A file cannot be loaded into a layer; the previous version of the layer is untouched."""

    code = "ingest_failed"


class DatabaseUnavailable(Retryable):
    """The database cannot be reached right now; the client may retry later."""

    code = "database_unavailable"


class ClusterError(GeoServerError):
    """The embedded PostgreSQL cluster could not be initialised, started or stopped."""

    code = "cluster_error"


# SQLSTATEs of a connection that is gone or going: connection exceptions, and the server shutting down or starting.
_CONNECTION_STATES = ("08", "57P01", "57P02", "57P03")


def is_connection_failure(exc: BaseException) -> bool:
    """True for errors that mean the connection or the server is gone, not that one statement failed."""
    if not isinstance(exc, psycopg.OperationalError) or isinstance(exc, psycopg.errors.QueryCanceled):
        return False
    state = exc.sqlstate
    return state is None or state.startswith(_CONNECTION_STATES)
