"""dataplane_sogo_users on PostgreSQL: `c_uid` compares without regard to case, so SOGo takes
a login typed in another case than the address as Dovecot does (`auth_username_format =
%Lu`). SOGo looks a login up with `WHERE c_uid = 'LOGIN'`, exactly as typed; a column with a
nondeterministic ICU collation makes that comparison case-insensitive. The rows still hold
the address in lower case, which SOGo then uses as the user's identity (its folders and
preferences). SOGo runs only on PostgreSQL (groupware.py): nothing changes on SQLite. The
SQL is written out here, as the view was at this migration.
"""

from django.db import migrations

COLLATION = "postdesk_case_insensitive"

SOGO_USERS = f"""
        SELECT (a.local_part || '@' || d.name) COLLATE {COLLATION} AS c_uid,
               a.local_part || '@' || d.name AS c_name,
               m.password_hash AS c_password,
               a.local_part || '@' || d.name AS c_cn,
               a.local_part || '@' || d.name AS mail,
               d.name AS domain,
               CASE WHEN m.eas_enabled THEN '1' ELSE '0' END AS activesync
        FROM mail_mailbox m
        JOIN mail_address a ON a.id = m.address_id
        JOIN mail_domain d ON d.id = a.domain_id
        JOIN tenancy_client c ON c.id = d.client_id
        WHERE c.suspended_at IS NULL
    """

CREATE_COLLATION = (
    f"CREATE COLLATION IF NOT EXISTS {COLLATION} "
    "(provider = icu, locale = 'und-u-ks-level2', deterministic = false)"
)

# A view column's collation cannot change in place (CREATE OR REPLACE refuses it).
FORWARD = [
    CREATE_COLLATION,
    "DROP VIEW dataplane_sogo_users",
    f"CREATE VIEW dataplane_sogo_users AS {SOGO_USERS}",
]


def case_insensitive(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for sql in FORWARD:
            schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [
        ("dataplane", "0007_sogo_users"),
    ]

    operations = [migrations.RunPython(case_insensitive, migrations.RunPython.noop)]
