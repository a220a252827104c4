"""The query budgets of tests/query_budgets.json, in one place."""

import json
from pathlib import Path

_BUDGETS = json.loads((Path(__file__).parent / "query_budgets.json").read_text())


def query_budget(name: str) -> int:
    return _BUDGETS[name]
