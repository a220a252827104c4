"""The French catalogue is complete and compiled: every user-facing string in the code has a
French translation, and Django serves it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import polib
import pytest
from django.utils import translation

import postdesk

PACKAGE = Path(postdesk.__file__).parent
CATALOGUE = PACKAGE / "locale" / "fr" / "LC_MESSAGES" / "django.po"


def untranslated(po: polib.POFile) -> list[str]:
    return [
        e.msgid
        for e in po
        if not e.obsolete
        and ((not e.msgstr and not any(e.msgstr_plural.values())) or "fuzzy" in e.flags)
    ]


def test_committed_catalogue_is_complete():
    assert untranslated(polib.pofile(str(CATALOGUE))) == []


# French typography: a non-breaking space before : ; ? ! and », and after «, so that a line never
# starts with the punctuation or leaves a guillemet alone at the end of a line.
_BREAKABLE_BEFORE_PUNCTUATION = re.compile(r"[^\S\u00a0\u202f][:;?!»]")
_BREAKABLE_AFTER_GUILLEMET = re.compile(r"«[^\S\u00a0\u202f]")


def test_french_punctuation_is_held_by_a_non_breaking_space():
    po = polib.pofile(str(CATALOGUE))
    breakable = [
        text
        for entry in po.translated_entries()
        for text in (entry.msgstr, *entry.msgstr_plural.values())
        if _BREAKABLE_BEFORE_PUNCTUATION.search(text) or _BREAKABLE_AFTER_GUILLEMET.search(text)
    ]
    assert breakable == []


def test_every_string_in_the_code_is_in_the_catalogue(tmp_path):
    """Re-extract the strings from a copy of the code: nothing new may appear untranslated."""
    if shutil.which("xgettext") is None:
        pytest.fail("GNU gettext is needed (./run test installs Debian's gettext)")
    copy = tmp_path / "postdesk"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "django", "makemessages", "-l", "fr", "--no-location"],
        cwd=copy,
        check=True,
        capture_output=True,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin"},
    )
    extracted = polib.pofile(str(copy / "locale" / "fr" / "LC_MESSAGES" / "django.po"))
    assert untranslated(extracted) == []


def test_django_serves_the_french_translations():
    """The compiled .mo matches the .po (run `postdesk compilemessages` after editing it)."""
    po = polib.pofile(str(CATALOGUE))
    with translation.override("fr"):
        for entry in po.translated_entries():
            if entry.msgid_plural:
                continue
            assert translation.gettext(entry.msgid) == entry.msgstr, entry.msgid
