"""Settings come from the environment; a missing secret key is generated once and kept."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

pytestmark = pytest.mark.own_database


def settings_value(data_dir, expression: str, **env: str) -> str:
    child_env = {
        k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DJANGO_SECRET_KEY"}
    }
    child_env.update(POSTDESK_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="postdesk.settings")
    child_env.update(env)
    code = f"import django; django.setup(); from django.conf import settings; print({expression})"
    result = subprocess.run(
        [sys.executable, "-c", code], env=child_env, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def test_secret_key_is_generated_once_and_kept_private(tmp_path):
    first = settings_value(tmp_path, "settings.SECRET_KEY")
    second = settings_value(tmp_path, "settings.SECRET_KEY")
    assert first == second
    assert len(first) >= 50
    key_file = tmp_path / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert settings_value(tmp_path, "settings.SECRET_KEY", DJANGO_SECRET_KEY="given") == "given"


def test_database_defaults_to_sqlite_in_the_data_dir(tmp_path):
    name = settings_value(tmp_path, "settings.DATABASES['default']['NAME']")
    assert name == str(tmp_path / "postdesk.sqlite3")
    engine = settings_value(
        tmp_path,
        "settings.DATABASES['default']['ENGINE']",
        DATABASE_URL="postgres://u:p@127.0.0.1:5432/pd",
    )
    assert engine == "django.db.backends.postgresql"


def test_a_request_thread_keeps_its_database_connection_for_a_minute(tmp_path):
    """Not a new PostgreSQL backend (and authentication) per request; checked before reuse."""
    db = "settings.DATABASES['default']"
    pg = {"DATABASE_URL": "postgres://u:p@127.0.0.1:5432/pd"}
    assert settings_value(tmp_path, f"{db}['CONN_MAX_AGE']", **pg) == "60"
    assert settings_value(tmp_path, f"{db}['CONN_HEALTH_CHECKS']", **pg) == "True"
    assert settings_value(tmp_path, f"{db}['CONN_MAX_AGE']", POSTDESK_DB_CONN_MAX_AGE="0") == "0"


def test_product_settings_come_from_the_environment(tmp_path):
    assert settings_value(tmp_path, "settings.POSTDESK_ALIAS_REUSE_DELAY.total_seconds()") == (
        "900.0"
    )
    delay = settings_value(
        tmp_path,
        "settings.POSTDESK_ALIAS_REUSE_DELAY.total_seconds()",
        POSTDESK_ALIAS_REUSE_DELAY_MINUTES="30",
    )
    assert delay == "1800.0"
    assert settings_value(tmp_path, "settings.DEBUG", DJANGO_DEBUG="1") == "True"
    assert settings_value(tmp_path, "settings.DEBUG") == "False"


def test_clients_are_pinned_to_hosts_from_the_environment(tmp_path):
    expression = "sorted(settings.POSTDESK_CLIENT_HOSTS.items())"
    assert settings_value(tmp_path, expression) == "[]"
    pins = settings_value(tmp_path, expression, POSTDESK_CLIENT_HOSTS=" 12=Mail2, mail3 ;40=mail4;")
    assert pins == "[(12, ('mail2', 'mail3')), (40, ('mail4',))]"
    with pytest.raises(subprocess.CalledProcessError) as refused:
        settings_value(tmp_path, expression, POSTDESK_CLIENT_HOSTS="acme=mail2")
    assert "POSTDESK_CLIENT_HOSTS: expected CLIENT_ID=HOST" in refused.value.stderr


PRODUCTION = {  # README, "Production settings"
    "DJANGO_SECRET_KEY": "x" * 60 + "-a-long-random-secret-for-tests-only",
    "DJANGO_ALLOWED_HOSTS": "panel.example.net",
    "POSTDESK_BEHIND_PROXY": "1",
    "POSTDESK_SSL_REDIRECT": "1",
    "POSTDESK_HSTS_INCLUDE_SUBDOMAINS": "1",
    "POSTDESK_HSTS_PRELOAD": "1",
}


def _deploy_check(data_dir, **env: str) -> subprocess.CompletedProcess:
    child_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "POSTDESK_")) and k != "DATABASE_URL"
    }
    child_env.update(POSTDESK_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="postdesk.settings")
    child_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "postdesk", "check", "--deploy", "--fail-level", "WARNING"],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_documented_production_settings_pass_the_deploy_check(tmp_path):
    passed = _deploy_check(tmp_path, **PRODUCTION)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    # The check can fail: without the operator's HTTPS choices it names them.
    short = _deploy_check(tmp_path, DJANGO_SECRET_KEY=PRODUCTION["DJANGO_SECRET_KEY"])
    assert short.returncode != 0
    assert "SECURE_SSL_REDIRECT" in short.stdout + short.stderr


def test_the_mail_daemons_database_is_a_replica_the_panel_never_uses(tmp_path):
    """POSTDESK_DATAPLANE_DATABASE_URL (docs/scale.md): the daemons read it; the panel keeps
    one database, the primary, so a customer sees their change at once."""
    pg = {
        "DATABASE_URL": "postgres://u:p@10.0.0.1:5432/pd",
        "POSTDESK_DATAPLANE_DATABASE_URL": "postgres://u:p@10.0.0.2:5433/pd",
    }
    assert settings_value(tmp_path, "list(settings.DATABASES)", **pg) == "['default']"
    assert settings_value(tmp_path, "settings.DATABASES['default']['HOST']", **pg) == "10.0.0.1"
    replica = "settings.POSTDESK_DATAPLANE_DATABASE"
    assert settings_value(tmp_path, f"({replica}['HOST'], {replica}['PORT'])", **pg) == (
        "('10.0.0.2', 5433)"
    )
    assert settings_value(tmp_path, replica) == "None"


def test_a_replica_of_sqlite_fails_at_start_up(tmp_path):
    with pytest.raises(subprocess.CalledProcessError) as refused:
        settings_value(
            tmp_path, "1", POSTDESK_DATAPLANE_DATABASE_URL="postgres://u:p@10.0.0.2:5433/pd"
        )
    assert "both it and DATABASE_URL must be postgres:// URLs" in refused.value.stderr


def test_sync_replicas_make_the_panels_commits_wait_for_the_replicas_to_apply_them(tmp_path):
    """POSTDESK_DB_SYNC_REPLICAS (docs/scale.md, "Replication lag"): PostgreSQL's own
    synchronous_commit, on every connection of the panel; refused on SQLite, which has none."""
    options = "settings.DATABASES['default']['OPTIONS']['options']"
    pg = {"DATABASE_URL": "postgres://u:p@10.0.0.1:5432/pd"}
    # Beside the lock timeout and the generic plans of the prepared reads (postdesk.compiled).
    always = "-c lock_timeout=10s -c plan_cache_mode=force_generic_plan"
    assert settings_value(tmp_path, options, POSTDESK_DB_SYNC_REPLICAS="1", **pg) == (
        f"{always} -c synchronous_commit=remote_apply"
    )
    assert settings_value(tmp_path, options, **pg) == always
    with pytest.raises(subprocess.CalledProcessError) as refused:
        settings_value(tmp_path, "1", POSTDESK_DB_SYNC_REPLICAS="1")
    assert "SQLite has none" in refused.value.stderr


def test_postgresql_prepares_only_the_reads_that_ask(tmp_path):
    """psycopg prepares a statement only when asked (`CompiledRead(prepared=True)`): its
    automatic threshold is out of reach, and Django's default (None) would refuse even
    those; prepared statements run their generic plan."""
    pg = {"DATABASE_URL": "postgres://u:p@10.0.0.1:5432/pd"}
    threshold = "settings.DATABASES['default']['OPTIONS']['prepare_threshold']"
    assert settings_value(tmp_path, threshold, **pg) == str(2**31)
    options = "settings.DATABASES['default']['OPTIONS']['options']"
    assert "-c plan_cache_mode=force_generic_plan" in settings_value(tmp_path, options, **pg)
