"""PostgreSQL only: trigram indexes for the address list's search ("part of an address, an
alias or a destination", a text inside a name, which no B-tree index can answer).

The search compares UPPER(column) LIKE UPPER('%text%') (Django's icontains on PostgreSQL), so
the indexes are on those expressions. pg_trgm is a trusted extension (PostgreSQL 13+): the
database owner may create it. Where it cannot be created, the indexes are left out and the
search scans the domain's rows as before, still correct. SQLite has no such index: nothing to do.

`fastupdate = off`: new names go into the index at once rather than into a pending list that
every search would read linearly until the next vacuum (addresses are written rarely, searched
as the customer types).
"""

from django.db import DatabaseError, migrations, transaction

INDEXES = (
    ("mail_address_local_part_trgm", "mail_address", "local_part"),
    ("mail_destination_email_trgm", "mail_destination", "email"),
)


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        try:
            with transaction.atomic(using=schema_editor.connection.alias):
                cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        except DatabaseError:  # no privilege, or no contrib package: the search still works
            return
        for name, table, column in INDEXES:
            cursor.execute(
                f"CREATE INDEX IF NOT EXISTS {name} ON {table} "
                f"USING gin (UPPER({column}::text) gin_trgm_ops) WITH (fastupdate = off)"
            )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        for name, _table, _column in INDEXES:
            cursor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [
        ("mail", "0002_mailbox_mail_mailbox_usage_idx"),
    ]

    operations = [migrations.RunPython(create, drop)]
