"""What every benchmark script does first: Django on a throwaway data directory, migrated.

Imported as `benchsetup` (the scripts run as `python bench/NAME.py`, so bench/ is on the
path); it then puts the repository root on the path too, for `bench.dataset`.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup_django(db_url: str | None = None, data_dir: Path | None = None, **env: str) -> Path:
    """Point the settings at `data_dir` (default: a new temporary one) and the chosen
    database, set any extra environment, then migrate. Returns the data directory."""
    # A settings module given in the environment wins (a test settings wrapper, say).
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "postdesk.settings")
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="postdesk-bench-"))
    os.environ["POSTDESK_DATA_DIR"] = str(data_dir)
    # DEBUG keeps every query in memory, which would inflate the timed runs.
    os.environ["DJANGO_DEBUG"] = "0"
    if db_url:
        os.environ["DATABASE_URL"] = db_url
    else:
        # An inherited DATABASE_URL could be a real database: only write there when asked.
        os.environ.pop("DATABASE_URL", None)
    os.environ.update(env)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    return data_dir
