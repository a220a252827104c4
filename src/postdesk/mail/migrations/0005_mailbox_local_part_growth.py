"""Mailbox.local_part and Mailbox.growth_7d_bytes, for indexes that give a domain's mailboxes
in the list's storage and growth orders, ties by name.

- local_part: the address's name, copied (a mailbox is never renamed);
- growth_7d_bytes: the bytes gained over the 7 days up to the mailbox's latest usage sample,
  from then on kept by billing's usage_record (docs/billing.md, "Growth over 7 days"). The
  address list computed it from the samples at each read before: filled here the same way,
  as of each mailbox's latest sample.

Both nullable, without a default, like Mailbox.domain (0004): either would make SQLite
rebuild mail_mailbox, which the dataplane views read. mail.services always sets them;
tests/mail/test_models.py checks that none is left unset.

The storage index gains the name, so ties (a new domain's mailboxes all use 0 bytes) are
read in order too.
"""

from datetime import timedelta

from django.db import migrations, models
from django.db.models.functions import Coalesce

GROWTH_WINDOW = timedelta(days=7)


def fill(apps, schema_editor):
    Mailbox = apps.get_model("mail", "Mailbox")
    Address = apps.get_model("mail", "Address")
    UsageSample = apps.get_model("billing", "UsageSample")
    Mailbox.objects.update(
        local_part=models.Subquery(
            Address.objects.filter(pk=models.OuterRef("address_id")).values("local_part")[:1]
        )
    )
    # billing.services.usage_growth_refresh as it is at this migration.
    latest = UsageSample.objects.filter(mailbox_id=models.OuterRef("pk")).order_by("-at")
    latest_at = (
        UsageSample.objects.filter(mailbox_id=models.OuterRef(models.OuterRef("pk")))
        .order_by("-at")
        .values("at")[:1]
    )
    before = UsageSample.objects.filter(
        mailbox_id=models.OuterRef("pk"),
        at__lte=models.Subquery(latest_at) - models.Value(GROWTH_WINDOW),
    ).order_by("-at")

    def bytes_of(samples):
        return Coalesce(
            models.Subquery(samples.values("bytes")[:1]),
            models.Value(0),
            output_field=models.BigIntegerField(),
        )

    Mailbox.objects.update(growth_7d_bytes=bytes_of(latest) - bytes_of(before))


class Migration(migrations.Migration):
    dependencies = [
        ("mail", "0004_mailbox_domain"),
        ("billing", "0002_remove_usagesample_billing_usage_mailbox_idx_and_more"),
    ]

    operations = [
        migrations.AddField(
            model_name="mailbox",
            name="growth_7d_bytes",
            field=models.BigIntegerField(
                editable=False, null=True, verbose_name="growth over 7 days"
            ),
        ),
        migrations.AddField(
            model_name="mailbox",
            name="local_part",
            field=models.CharField(editable=False, max_length=64, null=True),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
        migrations.RemoveIndex(model_name="mailbox", name="mail_mailbox_storage_idx"),
        migrations.AddIndex(
            model_name="mailbox",
            index=models.Index(
                fields=["domain", "-used_bytes", "local_part"], name="mail_mailbox_storage_idx"
            ),
        ),
        migrations.AddIndex(
            model_name="mailbox",
            index=models.Index(
                fields=["domain", "-growth_7d_bytes", "local_part"],
                name="mail_mailbox_growth_idx",
            ),
        ),
    ]
