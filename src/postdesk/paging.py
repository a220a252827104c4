"""One page of a long list, as the selectors return it and every interface shows it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def page_count(total: int, per_page: int) -> int:
    """How many pages `total` rows fill, at least one (an empty list is one empty page)."""
    return max(1, -(-total // per_page))


@dataclass(frozen=True)
class Page:
    """Rows `(page - 1) * per_page` onwards of `total`, pages counted from 1."""

    rows: list[Any]
    total: int
    page: int
    per_page: int

    @property
    def num_pages(self) -> int:
        return page_count(self.total, self.per_page)

    @property
    def has_next(self) -> bool:
        return self.page < self.num_pages

    @property
    def has_previous(self) -> bool:
        return self.page > 1
