"""PostgreSQL only: an index of the addresses' names read backwards, for the address list's
search by the end of a name (a text with an "@": "marie@" is every address whose name ends
with "marie", selectors._contains). The trigram index (0003) answers that too, but reads
every name holding the text's common trigrams ("use", "ser" of every `userN`: 1.5 ms at
100,000 mailboxes); names read backwards make it a prefix, which a B-tree finds at once.
SQLite has no reverse(): its search scans the domain's names as before. The table is analyzed
at once: without statistics on the expression the planner guessed a scan of every name.
"""

from django.db import migrations

INDEX = "mail_address_local_part_reverse"


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON mail_address "
            "(reverse(local_part::text) text_pattern_ops)"
        )
        # The planner knows an expression's values only once analyzed: until autovacuum
        # does, it would guess, and read the whole table rather than the index.
        cursor.execute("ANALYZE mail_address")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [
        ("mail", "0012_mailbox_move_lock"),
    ]

    operations = [migrations.RunPython(create, drop)]
