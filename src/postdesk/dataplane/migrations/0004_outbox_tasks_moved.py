"""The outbox tasks moved from `postdesk.dataplane.tasks` to the apps whose changes queue them
(`postdesk.mail.tasks`, `postdesk.dns.tasks`; docs/architecture.md). A queued task is stored
with its import path, so the rows queued before an upgrade are pointed at the new paths: the
worker would otherwise fail them ("does not point to a Task") and the change would never
reach the mail servers."""

from django.db import migrations

MOVED = {
    "postdesk.dataplane.tasks.mailbox_sessions_kick": "postdesk.mail.tasks.mailbox_sessions_kick",
    "postdesk.dataplane.tasks.mailbox_storage_remove": "postdesk.mail.tasks.mailbox_storage_remove",
    "postdesk.dataplane.tasks.mailbox_forwarding_apply": (
        "postdesk.mail.tasks.mailbox_forwarding_apply"
    ),
    "postdesk.dataplane.tasks.dkim_keys_deploy": "postdesk.dns.tasks.dkim_keys_deploy",
}


def _repoint(apps, mapping):
    results = apps.get_model("django_tasks_database", "DBTaskResult")
    for old, new in mapping.items():
        results.objects.filter(task_path=old).update(task_path=new)


def forwards(apps, schema_editor):
    _repoint(apps, MOVED)


def backwards(apps, schema_editor):
    _repoint(apps, {new: old for old, new in MOVED.items()})


class Migration(migrations.Migration):
    dependencies = [
        ("dataplane", "0003_postgresql_lookup_functions"),
        ("django_tasks_database", "0001_initial"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
