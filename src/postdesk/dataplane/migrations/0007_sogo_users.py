"""dataplane_sogo_users: the mailboxes as SOGo's SQL user source reads them (the groupware,
docs/dataplane.md). The SQL is written out here, as the view was at this migration.
"""

from django.db import migrations

SOGO_USERS = """
        SELECT a.local_part || '@' || d.name AS c_uid,
               a.local_part || '@' || d.name AS c_name,
               m.password_hash AS c_password,
               a.local_part || '@' || d.name AS c_cn,
               a.local_part || '@' || d.name AS mail,
               d.name AS domain,
               CASE WHEN m.eas_enabled THEN '1' ELSE '0' END AS activesync
        FROM mail_mailbox m
        JOIN mail_address a ON a.id = m.address_id
        JOIN mail_domain d ON d.id = a.domain_id
        JOIN tenancy_client c ON c.id = d.client_id
        WHERE c.suspended_at IS NULL
    """


class Migration(migrations.Migration):
    dependencies = [
        ("dataplane", "0006_probe_logins"),
    ]

    operations = [
        migrations.RunSQL(
            sql=[f"CREATE VIEW dataplane_sogo_users AS {SOGO_USERS}"],
            reverse_sql=["DROP VIEW dataplane_sogo_users"],
        )
    ]
