"""DomainTotalsChange, appended by triggers; the index of `storage_asc` keyset pages, and the
one that gives a domain's latest usage measure in one seek.

Every write to mail_address and mail_mailbox appends, in its own transaction, what it changed
in its domain's counts and disk use, so no write path (services, bulk loads, a cascade, an
operator's SQL) can leave them behind; a domain's totals are the sum of its rows. Appended,
never updated in place: an INSERT into a table without a unique key waits for no other
transaction, so these triggers add no lock to any write (one row per domain updated by every
write deadlocked concurrent writers on PostgreSQL). The `compact-totals` job folds each
domain's rows into one.

On PostgreSQL the triggers run once per statement over its transition tables, so a bulk
insert of a million rows appends one row per domain; SQLite has only row triggers (one row
per row written, until the next compaction). A change that changes no sum (a mailbox's growth
refreshed) appends nothing. Existing domains are counted once here.
"""

import django.db.models.deletion
from django.db import migrations, models

CHANGES = "mail_domaintotalschange"
# What each row adds to its domain's totals: column -> SQL expression over the row's columns.
ADDRESS_TERMS = {
    "mailboxes": "CASE WHEN kind = 'mailbox' THEN 1 ELSE 0 END",
    "aliases": "CASE WHEN kind = 'alias' THEN 1 ELSE 0 END",
    "forwards": "CASE WHEN kind = 'forward' THEN 1 ELSE 0 END",
}
MAILBOX_TERMS = {
    "eas_accounts": "CASE WHEN eas_enabled THEN 1 ELSE 0 END",
    "mapi_accounts": "CASE WHEN mapi_enabled THEN 1 ELSE 0 END",
    "used_bytes": "used_bytes",
}
TABLES = {
    "mail_address": (["domain_id", "kind"], ADDRESS_TERMS),
    "mail_mailbox": (["domain_id", "eas_enabled", "mapi_enabled", "used_bytes"], MAILBOX_TERMS),
}
EVENTS = ("INSERT", "DELETE", "UPDATE")


def _append(terms: dict[str, str], signed_rows: str) -> str:
    """The INSERT of one change row per domain: the rows, each signed (+1 inserted or new,
    -1 deleted or old), summed by domain; nothing for a domain whose sums are all zero."""
    sums = [f"SUM(sign * ({expression}))" for expression in terms.values()]
    return f"""INSERT INTO {CHANGES} (domain_id, {", ".join(terms)})
  SELECT domain_id, {", ".join(sums)} FROM ({signed_rows}) AS signed
  WHERE domain_id IS NOT NULL GROUP BY domain_id
  HAVING {" OR ".join(f"{total} <> 0" for total in sums)}"""


def _signed(event: str, select_new: str, select_old: str) -> str:
    rows = {
        "INSERT": [f"SELECT 1 AS sign, {select_new}"],
        "DELETE": [f"SELECT -1 AS sign, {select_old}"],
        "UPDATE": [f"SELECT 1 AS sign, {select_new}", f"SELECT -1 AS sign, {select_old}"],
    }[event]
    return " UNION ALL ".join(rows)


def _sqlite(table: str, columns: list[str], terms: dict[str, str]) -> list[str]:
    """Row triggers: the row written, as a one-row (two for an update) signed table."""
    statements = []
    for event in EVENTS:
        new = ", ".join(f"NEW.{column} AS {column}" for column in columns)
        old = ", ".join(f"OLD.{column} AS {column}" for column in columns)
        statements.append(
            f"""CREATE TRIGGER {table}_totals_{event.lower()} AFTER {event} ON {table} BEGIN
  {_append(terms, _signed(event, new, old))};
END"""
        )
    return statements


def _postgresql(table: str, columns: list[str], terms: dict[str, str]) -> list[str]:
    """Statement triggers over the transition tables: one change row per domain a statement
    wrote to, however many rows."""
    statements = []
    for event in EVENTS:
        name = f"{table}_totals_{event.lower()}"
        tables = {
            "INSERT": "NEW TABLE AS new_rows",
            "DELETE": "OLD TABLE AS old_rows",
            "UPDATE": "NEW TABLE AS new_rows OLD TABLE AS old_rows",
        }[event]
        listed = ", ".join(columns)
        signed = _signed(event, f"{listed} FROM new_rows", f"{listed} FROM old_rows")
        statements += [
            f"""CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  {_append(terms, signed)};
  RETURN NULL;
END $$""",
            f"""CREATE TRIGGER {name} AFTER {event} ON {table} REFERENCING {tables}
FOR EACH STATEMENT EXECUTE FUNCTION {name}()""",
        ]
    return statements


BACKFILL = f"""
INSERT INTO {CHANGES} (domain_id, mailboxes, aliases, forwards, eas_accounts,
                       mapi_accounts, used_bytes)
SELECT d.id,
       (SELECT COUNT(*) FROM mail_address a WHERE a.domain_id = d.id AND a.kind = 'mailbox'),
       (SELECT COUNT(*) FROM mail_address a WHERE a.domain_id = d.id AND a.kind = 'alias'),
       (SELECT COUNT(*) FROM mail_address a WHERE a.domain_id = d.id AND a.kind = 'forward'),
       (SELECT COUNT(*) FROM mail_mailbox m WHERE m.domain_id = d.id AND m.eas_enabled),
       (SELECT COUNT(*) FROM mail_mailbox m WHERE m.domain_id = d.id AND m.mapi_enabled),
       (SELECT COALESCE(SUM(m.used_bytes), 0) FROM mail_mailbox m WHERE m.domain_id = d.id)
  FROM mail_domain d
"""


def create(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    make = _postgresql if vendor == "postgresql" else _sqlite
    for table, (columns, terms) in TABLES.items():
        for statement in make(table, columns, terms):
            schema_editor.execute(statement)
    schema_editor.execute(BACKFILL)


def drop(apps, schema_editor):
    postgresql = schema_editor.connection.vendor == "postgresql"
    for table in TABLES:
        for event in EVENTS:
            name = f"{table}_totals_{event.lower()}"
            if postgresql:
                schema_editor.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
                schema_editor.execute(f"DROP FUNCTION IF EXISTS {name}()")
            else:
                schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("mail", "0008_mailbox_home")]

    operations = [
        migrations.CreateModel(
            name="DomainTotalsChange",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "domain",
                    models.ForeignKey(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="totals_changes",
                        to="mail.domain",
                    ),
                ),
                ("mailboxes", models.BigIntegerField(db_default=0)),
                ("aliases", models.BigIntegerField(db_default=0)),
                ("forwards", models.BigIntegerField(db_default=0)),
                ("eas_accounts", models.BigIntegerField(db_default=0)),
                ("mapi_accounts", models.BigIntegerField(db_default=0)),
                ("used_bytes", models.BigIntegerField(db_default=0)),
            ],
            options={
                "verbose_name": "domain totals change",
                "verbose_name_plural": "domain totals changes",
            },
        ),
        migrations.AddIndex(
            model_name="mailbox",
            index=models.Index(
                fields=["domain", "used_bytes", "local_part"], name="mail_mailbox_storage_asc_idx"
            ),
        ),
        migrations.AddIndex(
            model_name="mailbox",
            index=models.Index(
                fields=["domain", "used_measured_at"], name="mail_mailbox_measured_idx"
            ),
        ),
        migrations.RunPython(create, drop),
    ]
