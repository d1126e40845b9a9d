"""An edit's change notice names its transaction, so the writer can wait for its own notice.

A write answers once its instance has acted on it (dropped the tiles it touched, told the shared caches). Before,
the writer sent a marker notice of its own after the write and waited for it: one more statement, taking the
database's notify lock, which every committing edit holds until its commit is on disk. Now the writer waits for
the edit's own notice, which carries `pg_current_xact_id()` (the write statement returns the same id).
"""

from __future__ import annotations

import runpy
from pathlib import Path

from alembic import op

revision = "0008"
down_revision = "0007"

# Migrations are history and stay as they were written: this is 0006's function with the edit notice extended.
PREVIOUS = runpy.run_path(str(Path(__file__).with_name("0006_edits_do_not_queue_on_the_catalogue.py")))["FUNCTION"]
EDIT_NOTICE = "'layer', TG_ARGV[0], 'kind', 'edit', 'count_delta', delta,\n"
FUNCTION = PREVIOUS.replace(EDIT_NOTICE, EDIT_NOTICE.replace("delta,", "delta, 'xact', pg_current_xact_id()::text,"))
assert PREVIOUS.count(EDIT_NOTICE) == 1, "0006's function is not the one this migration changes"


def upgrade() -> None:
    op.execute(FUNCTION)


def downgrade() -> None:
    op.execute(PREVIOUS)  # back to 0006's function
