"""Announce edits to layer tables: a statement trigger sends the changed extent over NOTIFY."""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"

# TG_ARGV[0] is the layer id, TG_ARGV[1] the EPSG:4326 geometry column. Transition tables are visible to EXECUTE.
FUNCTION = """
CREATE OR REPLACE FUNCTION geoserver.announce_layer_change() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    box box2d;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('geoserver_layer_changed', json_build_object('layer', TG_ARGV[0], 'kind', 'reload')::text);
        RETURN NULL;
    ELSIF TG_OP = 'INSERT' THEN
        EXECUTE format('SELECT ST_Extent(%I) FROM new_rows', TG_ARGV[1]) INTO box;
    ELSIF TG_OP = 'DELETE' THEN
        EXECUTE format('SELECT ST_Extent(%I) FROM old_rows', TG_ARGV[1]) INTO box;
    ELSE
        EXECUTE format(
            'SELECT ST_Extent(g) FROM (SELECT %1$I AS g FROM old_rows UNION ALL SELECT %1$I FROM new_rows) AS s',
            TG_ARGV[1]
        ) INTO box;
    END IF;
    IF box IS NOT NULL THEN
        PERFORM pg_notify(
            'geoserver_layer_changed',
            json_build_object(
                'layer', TG_ARGV[0], 'kind', 'edit',
                'bbox', json_build_array(ST_XMin(box), ST_YMin(box), ST_XMax(box), ST_YMax(box))
            )::text
        );
    END IF;
    RETURN NULL;
END
$fn$
"""


def upgrade() -> None:
    op.execute(FUNCTION)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS geoserver.announce_layer_change()")
