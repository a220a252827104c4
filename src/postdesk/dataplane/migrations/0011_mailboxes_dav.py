"""dataplane_mailboxes.dav_enabled: the domain's switch for calendar and contact apps
(CalDAV/CardDAV), read by the gate in front of the groupware's /SOGo/dav/.

The SQL is written out here, as the view was at this migration. The PostgreSQL lookup
function dataplane_mailbox (0010) declares its own columns and reads the view by name, so it
is untouched.
"""

from django.db import migrations

OLD = "SELECT a.local_part || '@' || d.name AS address,\n               a.local_part AS local_part,\n               d.name AS domain,\n               m.password_hash AS password,\n               REPLACE(CAST(m.storage_id AS TEXT), '-', '') AS storage,\n               -- The limit Dovecot enforces: the mailbox's own, or with 0 the plan's overall\n               -- limit (the plan in force now), or none.\n               CASE WHEN m.quota_mb > 0 THEN m.quota_mb ELSE COALESCE((\n                   SELECT p.storage_limit_mb\n                   FROM billing_clientplan cp\n                   JOIN billing_plan p ON p.id = cp.plan_id\n                   WHERE cp.client_id = c.id AND cp.starts_at <= CURRENT_TIMESTAMP\n                   ORDER BY cp.starts_at DESC\n                   LIMIT 1\n               ), 0) END AS quota_mb,\n               m.eas_enabled AS eas_enabled,\n               m.mapi_enabled AS mapi_enabled,\n               m.delete_after_forwarding AS delete_after_forwarding,\n               m.keep_original_sender AS keep_original_sender,\n               -- The backend that stores the mailbox, where a proxy and an MX forward it;\n               -- NULL when it has none: the install's single host (dataplane.models).\n               h.name AS home_host,\n               h.address AS home_address\n        FROM mail_mailbox m\n        JOIN mail_address a ON a.id = m.address_id\n        JOIN mail_domain d ON d.id = a.domain_id\n        JOIN tenancy_client c ON c.id = d.client_id\n        LEFT JOIN dataplane_host h ON h.id = m.home_id\n        WHERE c.suspended_at IS NULL"

NEW = "SELECT a.local_part || '@' || d.name AS address,\n               a.local_part AS local_part,\n               d.name AS domain,\n               m.password_hash AS password,\n               REPLACE(CAST(m.storage_id AS TEXT), '-', '') AS storage,\n               -- The limit Dovecot enforces: the mailbox's own, or with 0 the plan's overall\n               -- limit (the plan in force now), or none.\n               CASE WHEN m.quota_mb > 0 THEN m.quota_mb ELSE COALESCE((\n                   SELECT p.storage_limit_mb\n                   FROM billing_clientplan cp\n                   JOIN billing_plan p ON p.id = cp.plan_id\n                   WHERE cp.client_id = c.id AND cp.starts_at <= CURRENT_TIMESTAMP\n                   ORDER BY cp.starts_at DESC\n                   LIMIT 1\n               ), 0) END AS quota_mb,\n               m.eas_enabled AS eas_enabled,\n               m.mapi_enabled AS mapi_enabled,\n               m.delete_after_forwarding AS delete_after_forwarding,\n               m.keep_original_sender AS keep_original_sender,\n               -- The backend that stores the mailbox, where a proxy and an MX forward it;\n               -- NULL when it has none: the install's single host (dataplane.models).\n               h.name AS home_host,\n               h.address AS home_address,\n               -- Calendar and contact apps (the gate's /SOGo/dav/): the domain's switch.\n               d.dav_enabled AS dav_enabled\n        FROM mail_mailbox m\n        JOIN mail_address a ON a.id = m.address_id\n        JOIN mail_domain d ON d.id = a.domain_id\n        JOIN tenancy_client c ON c.id = d.client_id\n        LEFT JOIN dataplane_host h ON h.id = m.home_id\n        WHERE c.suspended_at IS NULL"


class Migration(migrations.Migration):
    dependencies = [
        ("dataplane", "0010_mailbox_home"),
        ("mail", "0010_domain_dav_enabled"),
    ]

    operations = [
        migrations.RunSQL(
            sql=["DROP VIEW dataplane_mailboxes", f"CREATE VIEW dataplane_mailboxes AS {NEW}"],
            reverse_sql=[
                "DROP VIEW dataplane_mailboxes",
                f"CREATE VIEW dataplane_mailboxes AS {OLD}",
            ],
        )
    ]
