"""Mailbox.home: the backend host that stores the mailbox (docs/dataplane.md, "Hosts and
homes").

Nullable, and left empty for every existing mailbox: with no backend registered, a mailbox
without a home lives on the install's single host, as before. A nullable column without a
default is one ALTER TABLE ADD COLUMN on SQLite too, with no rebuild of mail_mailbox under the
dataplane views. The index answers "how many mailboxes call this host home".
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("dataplane", "0009_host"),
        ("mail", "0006_domain_mta_sts_mode"),
    ]

    operations = [
        migrations.AddField(
            model_name="mailbox",
            name="home",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="dataplane.host",
                verbose_name="home host",
            ),
        ),
    ]
