"""Host: the mail hosts the operator registers (`postdesk host add`)."""

import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("dataplane", "0008_sogo_logins_in_any_case"),
    ]

    operations = [
        migrations.CreateModel(
            name="Host",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=63, unique=True, verbose_name="name")),
                (
                    "address",
                    models.CharField(
                        max_length=39,
                        validators=[django.core.validators.validate_ipv46_address],
                        verbose_name="address",
                    ),
                ),
                ("backend", models.BooleanField(default=False, verbose_name="backend")),
                ("mx", models.BooleanField(default=False, verbose_name="MX")),
                ("proxy", models.BooleanField(default=False, verbose_name="proxy")),
                (
                    "state",
                    models.CharField(
                        choices=[("active", "Active"), ("draining", "Draining")],
                        default="active",
                        max_length=16,
                        verbose_name="state",
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True, verbose_name="created")),
            ],
            options={
                "verbose_name": "mail host",
                "verbose_name_plural": "mail hosts",
                "ordering": ["name"],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(
                            ("backend", True), ("mx", True), ("proxy", True), _connector="OR"
                        ),
                        name="dataplane_host_has_a_role",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("state__in", ["active", "draining"])),
                        name="dataplane_host_state_valid",
                    ),
                ],
            },
        ),
    ]
