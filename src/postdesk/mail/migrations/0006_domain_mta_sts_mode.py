"""Domain.mta_sts_mode: what the domain's MTA-STS policy asks of senders; testing for every
existing domain, which never stops a message.

Written as SQL: Django would add a NOT NULL column and a check constraint on SQLite by
rebuilding mail_domain, which the dataplane views read (SQLite refuses to drop a table a view
names). One ALTER TABLE ADD COLUMN, with its default and its named check, does the same on
SQLite and PostgreSQL without a rebuild; the state is Django's own.
"""

from django.db import migrations, models

ADD = (
    "ALTER TABLE mail_domain ADD COLUMN mta_sts_mode varchar(16) DEFAULT 'testing' NOT NULL "
    "CONSTRAINT mail_domain_mta_sts_mode_valid CHECK (mta_sts_mode IN ('testing', 'enforce'))"
)


class Migration(migrations.Migration):
    dependencies = [("mail", "0005_mailbox_local_part_growth")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(ADD, "ALTER TABLE mail_domain DROP COLUMN mta_sts_mode")
            ],
            state_operations=[
                migrations.AddField(
                    model_name="domain",
                    name="mta_sts_mode",
                    field=models.CharField(
                        choices=[("testing", "Testing"), ("enforce", "Enforce")],
                        default="testing",
                        max_length=16,
                        verbose_name="MTA-STS mode",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="domain",
                    constraint=models.CheckConstraint(
                        condition=models.Q(mta_sts_mode__in=["testing", "enforce"]),
                        name="mail_domain_mta_sts_mode_valid",
                    ),
                ),
            ],
        )
    ]
