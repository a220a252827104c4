"""dataplane_probe_logins: the deliverability self-test's single-use SMTP logins, which
Dovecot's second passdb reads.

The SQL is written out here, as the view was at this migration.
"""

from django.db import migrations

VIEW = """
        SELECT a.local_part || '@' || d.name AS address, a.local_part AS local_part,
               d.name AS domain, t.login_hash AS password
        FROM dns_deliverabilitytest t
        JOIN mail_mailbox m ON m.id = t.mailbox_id
        JOIN mail_address a ON a.id = m.address_id
        JOIN mail_domain d ON d.id = a.domain_id
        JOIN tenancy_client c ON c.id = d.client_id
        WHERE c.suspended_at IS NULL AND t.login_hash <> ''
          AND t.login_expires_at > CURRENT_TIMESTAMP
"""


class Migration(migrations.Migration):
    dependencies = [
        ("dataplane", "0005_dkim_read_by_the_signer"),
        ("dns", "0005_deliverabilitytest"),
    ]

    operations = [
        migrations.RunSQL(
            sql=[f"CREATE VIEW dataplane_probe_logins AS {VIEW}"],
            reverse_sql=["DROP VIEW dataplane_probe_logins"],
        )
    ]
