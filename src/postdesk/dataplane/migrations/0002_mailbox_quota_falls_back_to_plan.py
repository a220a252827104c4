"""dataplane_mailboxes.quota_mb becomes the limit Dovecot enforces: the mailbox's own, or
with 0 the plan's overall limit (the client's plan in force), or none.

The SQL is written out here, as the views were at this migration.
"""

from django.db import migrations

OLD = "SELECT a.local_part || '@' || d.name AS address,\n               a.local_part AS local_part,\n               d.name AS domain,\n               m.password_hash AS password,\n               REPLACE(CAST(m.storage_id AS TEXT), '-', '') AS storage,\n               m.quota_mb AS quota_mb,\n               m.eas_enabled AS eas_enabled,\n               m.mapi_enabled AS mapi_enabled,\n               m.delete_after_forwarding AS delete_after_forwarding,\n               m.keep_original_sender AS keep_original_sender\n        FROM mail_mailbox m\n        JOIN mail_address a ON a.id = m.address_id\n        JOIN mail_domain d ON d.id = a.domain_id\n        JOIN tenancy_client c ON c.id = d.client_id\n        WHERE c.suspended_at IS NULL"

NEW = "SELECT a.local_part || '@' || d.name AS address,\n               a.local_part AS local_part,\n               d.name AS domain,\n               m.password_hash AS password,\n               REPLACE(CAST(m.storage_id AS TEXT), '-', '') AS storage,\n               -- The limit Dovecot enforces: the mailbox's own, or with 0 the plan's overall\n               -- limit (the plan in force now), or none.\n               CASE WHEN m.quota_mb > 0 THEN m.quota_mb ELSE COALESCE((\n                   SELECT p.storage_limit_mb\n                   FROM billing_clientplan cp\n                   JOIN billing_plan p ON p.id = cp.plan_id\n                   WHERE cp.client_id = c.id AND cp.starts_at <= CURRENT_TIMESTAMP\n                   ORDER BY cp.starts_at DESC\n                   LIMIT 1\n               ), 0) END AS quota_mb,\n               m.eas_enabled AS eas_enabled,\n               m.mapi_enabled AS mapi_enabled,\n               m.delete_after_forwarding AS delete_after_forwarding,\n               m.keep_original_sender AS keep_original_sender\n        FROM mail_mailbox m\n        JOIN mail_address a ON a.id = m.address_id\n        JOIN mail_domain d ON d.id = a.domain_id\n        JOIN tenancy_client c ON c.id = d.client_id\n        WHERE c.suspended_at IS NULL"


class Migration(migrations.Migration):
    dependencies = [
        ("dataplane", "0001_views"),
        ("billing", "0002_remove_usagesample_billing_usage_mailbox_idx_and_more"),
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
