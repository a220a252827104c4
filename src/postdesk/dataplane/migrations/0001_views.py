"""The data-plane views, as they were at this migration.

The SQL is written out here rather than imported: a later change to the views gets its own
migration, and this one must keep creating what it created.
"""

from django.db import migrations

CREATE = ['CREATE VIEW dataplane_domains AS SELECT d.name AS domain\n        FROM mail_domain d\n        JOIN tenancy_client c ON c.id = d.client_id\n        WHERE c.suspended_at IS NULL', "CREATE VIEW dataplane_mailboxes AS SELECT a.local_part || '@' || d.name AS address,\n               a.local_part AS local_part,\n               d.name AS domain,\n               m.password_hash AS password,\n               REPLACE(CAST(m.storage_id AS TEXT), '-', '') AS storage,\n               m.quota_mb AS quota_mb,\n               m.eas_enabled AS eas_enabled,\n               m.mapi_enabled AS mapi_enabled,\n               m.delete_after_forwarding AS delete_after_forwarding,\n               m.keep_original_sender AS keep_original_sender\n        FROM mail_mailbox m\n        JOIN mail_address a ON a.id = m.address_id\n        JOIN mail_domain d ON d.id = a.domain_id\n        JOIN tenancy_client c ON c.id = d.client_id\n        WHERE c.suspended_at IS NULL", "CREATE VIEW dataplane_aliases AS SELECT aa.local_part AS local_part, d.name AS domain,\n               ma.local_part || '@' || d.name AS destination\n        FROM mail_alias al\n        JOIN mail_address aa ON aa.id = al.address_id\n        JOIN mail_mailbox m ON m.id = al.mailbox_id\n        JOIN mail_address ma ON ma.id = m.address_id\n        JOIN mail_domain d ON d.id = aa.domain_id\n        JOIN tenancy_client c ON c.id = d.client_id\n        WHERE c.suspended_at IS NULL\n        UNION ALL\n        SELECT fa.local_part AS local_part, d.name AS domain, dest.email AS destination\n        FROM mail_forward f\n        JOIN mail_address fa ON fa.id = f.address_id\n        JOIN mail_destination dest ON dest.address_id = fa.id\n        JOIN mail_domain d ON d.id = fa.domain_id\n        JOIN tenancy_client c ON c.id = d.client_id\n        WHERE c.suspended_at IS NULL", 'CREATE VIEW dataplane_mailbox_forwards AS SELECT a.local_part AS local_part, d.name AS domain, dest.email AS destination,\n               dest.position AS position\n        FROM mail_mailbox m\n        JOIN mail_address a ON a.id = m.address_id\n        JOIN mail_destination dest ON dest.address_id = a.id\n        JOIN mail_domain d ON d.id = a.domain_id\n        JOIN tenancy_client c ON c.id = d.client_id\n        WHERE c.suspended_at IS NULL', "CREATE VIEW dataplane_dkim AS SELECT d.name AS domain, k.selector AS selector, k.id AS key_id\n        FROM dns_dkimkey k\n        JOIN mail_domain d ON d.id = k.domain_id\n        JOIN tenancy_client c ON c.id = d.client_id\n        WHERE k.status = 'signing' AND c.suspended_at IS NULL"]

DROP = ['DROP VIEW IF EXISTS dataplane_dkim', 'DROP VIEW IF EXISTS dataplane_mailbox_forwards', 'DROP VIEW IF EXISTS dataplane_aliases', 'DROP VIEW IF EXISTS dataplane_mailboxes', 'DROP VIEW IF EXISTS dataplane_domains']


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("tenancy", "0001_initial"),
        ("mail", "0001_initial"),
        ("dns", "0001_initial"),
    ]

    operations = [migrations.RunSQL(sql=CREATE, reverse_sql=DROP)]
