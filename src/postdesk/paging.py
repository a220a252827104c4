"""One page of a long list, as the selectors return it and every interface shows it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def page_count(total: int, per_page: int) -> int:
    """How many pages `total` rows fill, at least one (an empty list is one empty page)."""
    return max(1, -(-total // per_page))


def page_within(page: int, total: int, per_page: int) -> int:
    """The page to show for the page asked: past the last page, the last; before the first,
    the first. Whatever number a client sends, the offset stays within the rows (a page of
    6,466,379,091,199,793,152 overflowed SQLite's OFFSET)."""
    return max(1, min(int(page), page_count(total, per_page)))


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


def page_of(rows: Any, *, page: int, per_page: int) -> Page:
    """The page of an ordered queryset (two queries: the count and the page), within it."""
    total = rows.count()
    page = page_within(page, total, per_page)
    start = (page - 1) * per_page
    return Page(
        rows=list(rows[start : start + per_page]), total=total, page=page, per_page=per_page
    )
