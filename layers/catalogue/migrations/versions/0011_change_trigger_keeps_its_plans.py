"""The change trigger measures a changed extent with a statement PL/pgSQL plans once, not with EXECUTE every time.

The trigger is generic (the geometry column is its second argument), so it built and ran its extent query with
EXECUTE: parsed and planned again on every edit (perf during the edits benchmark: PostgreSQL's parser alone was 2% of
all samples, almost nothing after this change). When the column is `geom` (every managed layer, and most tables),
the same query is now written out, and PL/pgSQL keeps its plan (per trigger, so per table); other columns still go
through EXECUTE.
"""

from __future__ import annotations

import runpy
from pathlib import Path

from alembic import op

revision = "0011"
down_revision = "0010"

# Migrations are history and stay as they were written: this is 0008's function with the extent queries changed.
PREVIOUS = runpy.run_path(str(Path(__file__).with_name("0008_edit_notices_name_their_transaction.py")))["FUNCTION"]
CHANGES = {
    "        EXECUTE format('SELECT ST_Extent(%I), count(*) FROM new_rows', TG_ARGV[1]) INTO box, delta;\n": (
        "        IF TG_ARGV[1] = 'geom' THEN\n"
        "            SELECT ST_Extent(geom), count(*) INTO box, delta FROM new_rows;\n"
        "        ELSE\n"
        "            EXECUTE format('SELECT ST_Extent(%I), count(*) FROM new_rows', TG_ARGV[1]) INTO box, delta;\n"
        "        END IF;\n"
    ),
    "        EXECUTE format('SELECT ST_Extent(%I), -count(*) FROM old_rows', TG_ARGV[1]) INTO box, delta;\n": (
        "        IF TG_ARGV[1] = 'geom' THEN\n"
        "            SELECT ST_Extent(geom), -count(*) INTO box, delta FROM old_rows;\n"
        "        ELSE\n"
        "            EXECUTE format('SELECT ST_Extent(%I), -count(*) FROM old_rows', TG_ARGV[1]) INTO box, delta;\n"
        "        END IF;\n"
    ),
    "        EXECUTE format(\n": (
        "        IF TG_ARGV[1] = 'geom' THEN\n"
        "            SELECT ST_Extent(g) INTO box\n"
        "            FROM (SELECT geom AS g FROM old_rows UNION ALL SELECT geom FROM new_rows) AS s;\n"
        "        ELSE\n"
        "        EXECUTE format(\n"
    ),
    "        ) INTO box;\n": "        ) INTO box;\n        END IF;\n",
}
FUNCTION = PREVIOUS
for old, new in CHANGES.items():
    assert FUNCTION.count(old) == 1, f"0008's function is not the one this migration changes: {old!r}"
    FUNCTION = FUNCTION.replace(old, new)


def upgrade() -> None:
    op.execute(FUNCTION)


def downgrade() -> None:
    op.execute(PREVIOUS)  # back to 0008's function
