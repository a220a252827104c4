"""Domain.dav_enabled: whether calendar and contact apps (CalDAV/CardDAV) may reach the
domain's mailboxes; on for every existing domain, as before.

Written as SQL, as 0006: Django would add a NOT NULL column with a default on SQLite by
rebuilding mail_domain, which the dataplane views read (SQLite refuses to drop a table a view
names). One ALTER TABLE ADD COLUMN does the same on SQLite and PostgreSQL without a rebuild.
"""

from django.db import migrations, models

ADD = "ALTER TABLE mail_domain ADD COLUMN dav_enabled boolean DEFAULT TRUE NOT NULL"


class Migration(migrations.Migration):
    dependencies = [("mail", "0009_domain_totals")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(ADD, "ALTER TABLE mail_domain DROP COLUMN dav_enabled")
            ],
            state_operations=[
                migrations.AddField(
                    model_name="domain",
                    name="dav_enabled",
                    field=models.BooleanField(
                        default=True,
                        verbose_name="calendar and contact apps (CalDAV/CardDAV)",
                    ),
                ),
            ],
        )
    ]
