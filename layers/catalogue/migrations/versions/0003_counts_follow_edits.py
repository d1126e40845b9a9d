"""Edits keep the catalogue's feature count (and last update) exact, so numberMatched can rely on it."""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"

# Same arguments as before: TG_ARGV[0] the layer id, TG_ARGV[1] the EPSG:4326 geometry column.
FUNCTION = """
CREATE OR REPLACE FUNCTION geoserver.announce_layer_change() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    box box2d;
    delta bigint := 0;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        UPDATE geoserver.layers SET feature_count = 0, updated_at = now() WHERE id = TG_ARGV[0];
        PERFORM pg_notify('geoserver_layer_changed', json_build_object('layer', TG_ARGV[0], 'kind', 'reload')::text);
        RETURN NULL;
    ELSIF TG_OP = 'INSERT' THEN
        EXECUTE format('SELECT ST_Extent(%I), count(*) FROM new_rows', TG_ARGV[1]) INTO box, delta;
    ELSIF TG_OP = 'DELETE' THEN
        EXECUTE format('SELECT ST_Extent(%I), -count(*) FROM old_rows', TG_ARGV[1]) INTO box, delta;
    ELSE
        EXECUTE format(
            'SELECT ST_Extent(g) FROM (SELECT %1$I AS g FROM old_rows UNION ALL SELECT %1$I FROM new_rows) AS s',
            TG_ARGV[1]
        ) INTO box;
    END IF;
    IF box IS NULL THEN
        RETURN NULL;  -- nothing changed
    END IF;
    UPDATE geoserver.layers SET feature_count = feature_count + delta, updated_at = now() WHERE id = TG_ARGV[0];
    PERFORM pg_notify(
        'geoserver_layer_changed',
        json_build_object(
            'layer', TG_ARGV[0], 'kind', 'edit', 'count_delta', delta,
            'bbox', json_build_array(ST_XMin(box), ST_YMin(box), ST_XMax(box), ST_YMax(box))
        )::text
    );
    RETURN NULL;
END
$fn$
"""


def upgrade() -> None:
    op.execute(FUNCTION)


def downgrade() -> None:
    # Back to 0002's function, which announces without counting.
    import runpy
    from pathlib import Path

    previous = runpy.run_path(str(Path(__file__).with_name("0002_change_triggers.py")))
    op.execute(previous["FUNCTION"])
