"""PostgreSQL only: the daemons' per-address lookups as PL/pgSQL functions over the views,
so each lookup runs a plan cached for the connection instead of being planned anew (see
views_sql.PG_FUNCTIONS). Nothing changes on SQLite.

The SQL is written out here, as the functions were at this migration.
"""

from django.db import migrations

CREATE = ['CREATE OR REPLACE FUNCTION dataplane_mailbox(p_local_part text, p_domain text)\n        RETURNS TABLE (address text, local_part text, domain text, password text,\n                       storage text, quota_mb bigint)\n        LANGUAGE plpgsql STABLE AS $$\n        #variable_conflict use_column\n        BEGIN\n            RETURN QUERY\n            SELECT v.address::text, v.local_part::text, v.domain::text, v.password::text,\n                   v.storage::text, v.quota_mb::bigint\n            FROM dataplane_mailboxes v\n            WHERE v.local_part = p_local_part AND v.domain = p_domain;\n        END\n        $$', 'CREATE OR REPLACE FUNCTION dataplane_alias_destinations(p_local_part text, p_domain text)\n        RETURNS TABLE (destination text)\n        LANGUAGE plpgsql STABLE AS $$\n        #variable_conflict use_column\n        BEGIN\n            RETURN QUERY\n            SELECT v.destination::text\n            FROM dataplane_aliases v\n            WHERE v.local_part = p_local_part AND v.domain = p_domain;\n        END\n        $$']

DROP = ['DROP FUNCTION IF EXISTS dataplane_alias_destinations(text, text)', 'DROP FUNCTION IF EXISTS dataplane_mailbox(text, text)']


def _on_postgresql(statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for statement in statements:
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("dataplane", "0002_mailbox_quota_falls_back_to_plan")]

    operations = [migrations.RunPython(_on_postgresql(CREATE), _on_postgresql(DROP))]
