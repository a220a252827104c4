"""Mailbox.domain: the address's domain, copied, for an index that orders a domain's
mailboxes by storage; filled here from each mailbox's address.

Nullable in the schema: making it NOT NULL would make SQLite rebuild mail_mailbox, which the
dataplane views read (SQLite refuses to drop a table a view names). mail.services always sets
it; tests/mail/test_models.py checks that no mailbox is left without it.
"""

import django.db.models.deletion
from django.db import migrations, models


def copy_domains(apps, schema_editor):
    Mailbox = apps.get_model("mail", "Mailbox")
    Address = apps.get_model("mail", "Address")
    Mailbox.objects.update(
        domain_id=models.Subquery(
            Address.objects.filter(pk=models.OuterRef("address_id")).values("domain_id")[:1]
        )
    )


class Migration(migrations.Migration):
    dependencies = [("mail", "0003_postgresql_trigram_search")]

    operations = [
        migrations.AddField(
            model_name="mailbox",
            name="domain",
            field=models.ForeignKey(
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="mail.domain",
            ),
        ),
        migrations.RunPython(copy_domains, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="mailbox",
            index=models.Index(fields=["domain", "-used_bytes"], name="mail_mailbox_storage_idx"),
        ),
    ]
