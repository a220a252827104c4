"""Every request has an id, in its X-Request-ID answer header and on each log line it causes;
with POSTDESK_LOG_FORMAT=json each line is one JSON object carrying it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_each_answer_carries_an_id_and_keeps_a_sane_proxy_id(client_a):
    first, second = Client().get("/login/"), Client().get("/login/")
    assert len(first["X-Request-ID"]) == 32 and first["X-Request-ID"] != second["X-Request-ID"]
    given = Client().get("/login/", HTTP_X_REQUEST_ID="proxy-1234abcd")
    assert given["X-Request-ID"] == "proxy-1234abcd"
    forged = Client().get("/login/", HTTP_X_REQUEST_ID="bad id\nforged log line")
    assert forged["X-Request-ID"] != "bad id\nforged log line"


@pytest.mark.own_database
def test_json_log_lines_carry_the_request_id(tmp_path):
    # A child process, so the logging configuration is the one settings.py builds.
    code = (
        "import django, json; django.setup();"
        "from django.test import Client;"
        "answer = Client(HTTP_HOST='127.0.0.1').get('/api/v1/domains');"
        "print(answer['X-Request-ID'])"
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "POSTDESK_")) and k != "DATABASE_URL"
    }
    env.update(
        DJANGO_SETTINGS_MODULE="postdesk.settings",
        POSTDESK_DATA_DIR=str(tmp_path),
        POSTDESK_LOG_FORMAT="json",
    )
    subprocess.run([sys.executable, "-m", "postdesk", "migrate", "-v0"], env=env, check=True)
    ran = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    request_id = ran.stdout.strip()
    lines = [json.loads(line) for line in ran.stderr.splitlines() if line.startswith("{")]
    not_found = [line for line in lines if line["logger"] == "django.request"]  # the 401
    assert not_found, ran.stderr
    assert not_found[0]["request_id"] == request_id
    assert {"time", "level", "message"} <= set(not_found[0])
