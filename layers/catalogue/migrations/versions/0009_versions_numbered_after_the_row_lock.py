"""A write numbers a feature's next version after it holds the feature's row lock, not before.

One statement writes a feature: it locks the row, then reads the feature's latest version in history to number the
new one. Under READ COMMITTED a statement reads as of its start, so a write that waited for a concurrent write of
the same feature read the version from before that write, numbered its own the same, and the history's unique key
refused it (a 500 for the second of two PATCHes without If-Match). A VOLATILE function reads with a fresh snapshot:
called once the row is locked, it sees the write that held the lock.
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"

FUNCTION = """
CREATE OR REPLACE FUNCTION geoserver.latest_version(layer text, feature text) RETURNS integer
LANGUAGE plpgsql VOLATILE AS $fn$
BEGIN
    RETURN (SELECT coalesce(max(version), 0) FROM geoserver.feature_history WHERE layer_id = layer AND fid = feature);
END
$fn$
"""


def upgrade() -> None:
    op.execute(FUNCTION)


def downgrade() -> None:
    op.execute("DROP FUNCTION geoserver.latest_version(text, text)")
