"""A feature's latest version is read through the (layer_id, fid, version) index, whatever the statistics said.

PL/pgSQL plans the lookup once per connection and keeps the plan. A new database plans it while history is empty
and has no statistics, and PostgreSQL then chose a scan of the whole table or of the layer's `(layer_id, at)` index:
kept while history grew, every edit read all of a layer's history (measured on a new cluster: 4,598 scans of the whole
table and 6,811 of the layer's index in one edits benchmark, at half the speed of a run with statistics). The lookup
is now the index's own shape (`ORDER BY version DESC LIMIT 1` on its leading columns), and the function plans with
sequential scans off, so no estimate of an empty table makes another plan look cheaper.
"""

from __future__ import annotations

import runpy
from pathlib import Path

from alembic import op

revision = "0012"
down_revision = "0011"

# Migrations are history and stay as they were written: 0009's function is the one to go back to.
PREVIOUS = runpy.run_path(str(Path(__file__).with_name("0009_versions_numbered_after_the_row_lock.py")))["FUNCTION"]

FUNCTION = """
CREATE OR REPLACE FUNCTION geoserver.latest_version(layer text, feature text) RETURNS integer
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
AS $fn$
BEGIN
    RETURN coalesce((SELECT version FROM geoserver.feature_history WHERE layer_id = layer AND fid = feature
                     ORDER BY version DESC LIMIT 1), 0);
END
$fn$
"""


def upgrade() -> None:
    op.execute(FUNCTION)


def downgrade() -> None:
    # CREATE OR REPLACE sets every property anew but owner and grants: the SET clause goes with it.
    op.execute(PREVIOUS)
