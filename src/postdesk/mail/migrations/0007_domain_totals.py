"""DomainTotals, kept by triggers; the index of `storage_asc` keyset pages, and the one that
gives a domain's latest usage measure in one seek.

Each domain's counts and disk use are kept by triggers in the transaction of every write to
mail_address and mail_mailbox, so no write path (services, bulk loads, a cascade, an
operator's SQL) can leave them behind. On PostgreSQL the triggers run once per statement over
its transition tables, so a bulk insert of a million rows updates each domain's row once
(row triggers updating one row a million times in one transaction slow down quadratically);
SQLite has only row triggers, and updates in place. Existing domains are counted once here.
"""

import django.db.models.deletion
from django.db import migrations, models

# What each row adds to its domain's totals: column -> SQL expression over the row.
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
TABLES = {"mail_address": ADDRESS_TERMS, "mail_mailbox": MAILBOX_TERMS}


def _prefixed(expression: str, row: str) -> str:
    for column in ("kind", "eas_enabled", "mapi_enabled", "used_bytes"):
        expression = expression.replace(f"WHEN {column}", f"WHEN {row}.{column}")
    return expression if expression != "used_bytes" else f"{row}.used_bytes"


def _sqlite(table: str, terms: dict[str, str]) -> list[str]:
    """Row triggers: an upsert on insert (the domain's first row creates its totals), an
    update on delete and on update (the difference)."""
    columns = ", ".join(terms)
    insert_values = ", ".join(_prefixed(e, "NEW") for e in terms.values())
    added = ", ".join(f"{c} = {c} + excluded.{c}" for c in terms)
    removed = ", ".join(f"{c} = {c} - ({_prefixed(e, 'OLD')})" for c, e in terms.items())
    changed = ", ".join(
        f"{c} = {c} + ({_prefixed(e, 'NEW')}) - ({_prefixed(e, 'OLD')})" for c, e in terms.items()
    )
    return [
        f"""CREATE TRIGGER {table}_totals_insert AFTER INSERT ON {table}
WHEN NEW.domain_id IS NOT NULL BEGIN
  INSERT INTO mail_domaintotals (domain_id, {columns}) VALUES (NEW.domain_id, {insert_values})
  ON CONFLICT (domain_id) DO UPDATE SET {added};
END""",
        f"""CREATE TRIGGER {table}_totals_delete AFTER DELETE ON {table} BEGIN
  UPDATE mail_domaintotals SET {removed} WHERE domain_id = OLD.domain_id;
END""",
        f"""CREATE TRIGGER {table}_totals_update AFTER UPDATE ON {table} BEGIN
  UPDATE mail_domaintotals SET {changed} WHERE domain_id = NEW.domain_id;
END""",
    ]


def _names(columns: str) -> str:
    return "domain_id, " + columns


def _postgresql(table: str, terms: dict[str, str]) -> list[str]:
    """Statement triggers over the transition tables: each statement's rows summed by domain,
    signed (+1 inserted or new, -1 deleted or old), then one upsert per domain."""
    sums = ", ".join(f"SUM(sign * ({e}))" for e in terms.values())
    columns = ", ".join(terms)
    added = ", ".join(f"{c} = t.{c} + excluded.{c}" for c in terms)
    sources = {
        "INSERT": "SELECT 1 AS sign, * FROM new_rows",
        "DELETE": "SELECT -1 AS sign, * FROM old_rows",
        "UPDATE": "SELECT 1 AS sign, * FROM new_rows UNION ALL SELECT -1, * FROM old_rows",
    }
    # A delete or an update only changes existing totals: when a domain is deleted its
    # totals may go first, and must not come back for rows deleted after them.
    changed = ", ".join(f"{c} = t.{c} + changed.{c}" for c in terms)
    statements = []
    for event, rows in sources.items():
        name = f"{table}_totals_{event.lower()}"
        tables = {
            "INSERT": "NEW TABLE AS new_rows",
            "DELETE": "OLD TABLE AS old_rows",
            "UPDATE": "NEW TABLE AS new_rows OLD TABLE AS old_rows",
        }[event]
        by_domain = f"SELECT domain_id, {sums} FROM ({rows}) AS signed GROUP BY domain_id"
        if event == "INSERT":
            write = f"""INSERT INTO mail_domaintotals AS t (domain_id, {columns})
  {by_domain.replace("GROUP BY", "WHERE domain_id IS NOT NULL GROUP BY")}
  ON CONFLICT (domain_id) DO UPDATE SET {added}"""
        else:
            write = f"""UPDATE mail_domaintotals AS t SET {changed}
  FROM ({by_domain}) AS changed ({_names(columns)}) WHERE t.domain_id = changed.domain_id"""
        statements += [
            f"""CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  {write};
  RETURN NULL;
END $$""",
            f"""CREATE TRIGGER {name} AFTER {event} ON {table} REFERENCING {tables}
FOR EACH STATEMENT EXECUTE FUNCTION {name}()""",
        ]
    return statements


BACKFILL = """
INSERT INTO mail_domaintotals (domain_id, mailboxes, aliases, forwards, eas_accounts,
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
    for table, terms in TABLES.items():
        for statement in make(table, terms):
            schema_editor.execute(statement)
    schema_editor.execute(BACKFILL)


def drop(apps, schema_editor):
    postgresql = schema_editor.connection.vendor == "postgresql"
    for table in TABLES:
        for event in ("insert", "delete", "update"):
            name = f"{table}_totals_{event}"
            if postgresql:
                schema_editor.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
                schema_editor.execute(f"DROP FUNCTION IF EXISTS {name}()")
            else:
                schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("mail", "0006_domain_mta_sts_mode")]

    operations = [
        migrations.CreateModel(
            name="DomainTotals",
            fields=[
                (
                    "domain",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="totals",
                        serialize=False,
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
            options={"verbose_name": "domain totals", "verbose_name_plural": "domain totals"},
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
