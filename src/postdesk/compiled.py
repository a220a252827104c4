"""Reads whose SQL Django builds once, then runs again with new values.

Building a query costs Django more than the database often spends running it: a page of the
address list is 1 ms of SQL at 100,000 mailboxes, and 1.2 ms for the ORM to build and compile
it, on every request, into the same text with other numbers in it. A `CompiledRead` builds
its queryset once per process (and per shape: whatever changes the text, such as a filter
or a sort), with stand-in values, and keeps the SQL, where each stand-in went among the
parameters, and the compiler that turns the database's values into Python's. Each run then
puts the real values in the stand-ins' places and executes the kept text: the rules stay
written once, in the ORM, beside the app's other reads (SQLAlchemy caches its compiled
statements the same way).

The stand-ins must be values the read would never hold otherwise (negative ids, a date in
1901): every one must be found among the compiled parameters, or the build fails loudly.
A value Django transforms before it reaches the SQL (a search text made into a LIKE
pattern) cannot be a stand-in: such reads stay ordinary querysets.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connections
from django.db.models import QuerySet
from django.db.models.query import ValuesIterable
from django.db.models.sql.compiler import SQLCompiler


@dataclass(frozen=True)
class _Compiled:
    sql: str
    params: tuple
    # Each value's name, where its stand-in stands among the parameters, and how the value
    # is adapted there (a time is text on SQLite): None, or the backend's adapter.
    slots: tuple[tuple[str, tuple[int, ...], Callable[[Any], Any] | None], ...]
    compiler: SQLCompiler
    names: tuple[str, ...]

    def parameters(self, values: dict[str, Any]) -> list:
        params = list(self.params)
        for name, positions, adapt in self.slots:
            value = values[name] if adapt is None else adapt(values[name])
            for position in positions:
                params[position] = value
        return params


class CompiledRead:
    """A read built by `build(*shape, **values)` once per database and shape, its values
    given as `stand_ins` to compile with; `values()` runs it."""

    def __init__(self, build: Callable[..., QuerySet], **stand_ins: Any) -> None:
        self._build = build
        self._stand_ins = stand_ins
        self._compiled: dict[tuple[str, Hashable], _Compiled] = {}

    def values(self, *shape: Hashable, using: str = "default", **values: Any) -> list[dict]:
        """The rows of a `.values()` read, as that queryset would give them."""
        compiled = self._compile(using, shape)
        connection = connections[using]
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, compiled.parameters(values))
            fetched = cursor.fetchall()
        count = compiled.compiler.col_count
        rows = compiled.compiler.results_iter(results=[[row[:count] for row in fetched]])
        return [dict(zip(compiled.names, row, strict=True)) for row in rows]

    def _compile(self, using: str, shape: tuple) -> _Compiled:
        key = (using, shape)
        found = self._compiled.get(key)
        if found is None:
            found = self._compiled[key] = self._build_compiled(using, shape)
        return found

    def _build_compiled(self, using: str, shape: tuple) -> _Compiled:
        queryset = self._build(*shape, **self._stand_ins).using(using)
        compiler = queryset.query.get_compiler(using)
        sql, params = compiler.as_sql()
        slots = []
        for name, stand_in in self._stand_ins.items():
            for adapt in _adapters(connections[using], stand_in):
                wanted = stand_in if adapt is None else adapt(stand_in)
                positions = tuple(
                    index
                    for index, param in enumerate(params)
                    if type(param) is type(wanted) and param == wanted
                )
                if positions:
                    slots.append((name, positions, adapt))
                    break
            else:
                raise ValueError(f"{name}'s stand-in {stand_in!r} is not in the compiled SQL")
        if queryset._iterable_class is not ValuesIterable:
            # Model instances would need Django's own iteration (related objects, deferred
            # fields): only plain values are read from kept SQL.
            raise TypeError("a CompiledRead reads values(): end the queryset with .values()")
        query = queryset.query
        names = (
            tuple(query.selected)
            if query.selected
            else (*query.extra_select, *query.values_select, *query.annotation_select)
        )
        return _Compiled(
            sql=sql,
            params=tuple(params),
            slots=tuple(slots),
            compiler=compiler,
            names=names,
        )


def _adapters(connection: Any, stand_in: Any) -> list[Callable[[Any], Any] | None]:
    """How a value may appear among the compiled parameters: as itself, or (a time) as the
    backend adapts a datetime field's value."""
    if isinstance(stand_in, datetime):
        return [None, connection.ops.adapt_datetimefield_value]
    return [None]
