"""dataplane_dkim becomes what OpenDKIM reads for each message: the signing keys whose file
the worker has written, with its path (key_file). Before, the worker wrote OpenDKIM's tables
from it, so a message sent in the second after "Disable DKIM" could still leave signed.

The SQL is written out here, as the view was at this migration.
"""

from django.db import migrations

OLD = """
        SELECT d.name AS domain, k.selector AS selector, k.id AS key_id
        FROM dns_dkimkey k
        JOIN mail_domain d ON d.id = k.domain_id
        JOIN tenancy_client c ON c.id = d.client_id
        WHERE k.status = 'signing' AND c.suspended_at IS NULL
"""

NEW = """
        SELECT d.name AS domain, k.selector AS selector, k.id AS key_id,
               k.key_file AS key_file
        FROM dns_dkimkey k
        JOIN mail_domain d ON d.id = k.domain_id
        JOIN tenancy_client c ON c.id = d.client_id
        WHERE k.status = 'signing' AND k.key_file <> '' AND c.suspended_at IS NULL
"""


class Migration(migrations.Migration):
    dependencies = [
        ("dataplane", "0004_outbox_tasks_moved"),
        ("dns", "0002_dkimkey_key_file"),
    ]

    operations = [
        migrations.RunSQL(
            sql=["DROP VIEW dataplane_dkim", f"CREATE VIEW dataplane_dkim AS {NEW}"],
            reverse_sql=["DROP VIEW dataplane_dkim", f"CREATE VIEW dataplane_dkim AS {OLD}"],
        )
    ]
