"""Move django-otp's TOTP devices (secret in plain hex) into tenancy.TotpDevice (secret
encrypted with postdesk.crypto), then delete the plain rows. Reversible: decrypts back."""

from binascii import hexlify, unhexlify

from django.db import migrations

from postdesk import crypto

# The fields both models share, copied as they are.
SHARED = [
    "user_id",
    "name",
    "confirmed",
    "throttling_failure_timestamp",
    "throttling_failure_count",
    "last_used_at",
    "step",
    "t0",
    "digits",
    "tolerance",
    "drift",
    "last_t",
]


def _move(source, target, convert_key, source_key, target_key):
    for old in source.objects.order_by("pk").iterator():
        new = target.objects.create(
            **{field: getattr(old, field) for field in SHARED},
            **{target_key: convert_key(getattr(old, source_key))},
        )
        # created_at is auto_now_add: set it after the insert to keep the original date.
        target.objects.filter(pk=new.pk).update(created_at=old.created_at)
    source.objects.all().delete()


def encrypt_devices(apps, schema_editor):
    _move(
        apps.get_model("otp_totp", "TOTPDevice"),
        apps.get_model("tenancy", "TotpDevice"),
        lambda key: crypto.encrypt(unhexlify(key.encode())),
        "key",
        "encrypted_key",
    )


def decrypt_devices(apps, schema_editor):
    _move(
        apps.get_model("tenancy", "TotpDevice"),
        apps.get_model("otp_totp", "TOTPDevice"),
        lambda token: hexlify(crypto.decrypt(token)).decode(),
        "encrypted_key",
        "key",
    )


class Migration(migrations.Migration):
    dependencies = [
        ("tenancy", "0003_totpdevice"),
        ("otp_totp", "0003_add_timestamps"),
    ]

    operations = [migrations.RunPython(encrypt_devices, decrypt_devices)]
