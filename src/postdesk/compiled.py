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
A value Django transforms before it reaches the SQL cannot be a stand-in: a search text
Django makes into a LIKE pattern while it builds (`icontains`) is one, so a compiled search
matches with `ILike` and `Like` below, which take the pattern as it is given (escaped by
the backend's `ops.prep_for_like_query`, as Django escapes its own). A list of values (`id
IN` the list) is a stand-in too, passed whole as one parameter: `values_in` reads it (an
array on PostgreSQL, JSON text on SQLite).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from django.db import connections
from django.db.backends.postgresql.base import CursorDebugWrapper
from django.db.backends.utils import CursorWrapper
from django.db.models import Lookup, QuerySet
from django.db.models.expressions import RawSQL
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

    def rows(self, fetched: list[tuple]) -> list[dict]:
        """The fetched rows as the `.values()` queryset would give them (Django's
        converters applied)."""
        count = self.compiler.col_count
        rows = self.compiler.results_iter(results=[[row[:count] for row in fetched]])
        return [dict(zip(self.names, row, strict=True)) for row in rows]


class CompiledRead:
    """A read built by `build(*shape, **values)` once per database and shape, its values
    given as `stand_ins` to compile with; `values()` runs it."""

    def __init__(
        self,
        build: Callable[..., QuerySet],
        /,
        optional: frozenset[str] = frozenset(),
        prepared: bool = False,
        **stand_ins: Any,
    ) -> None:
        """`optional`: the values some shapes do not read (a search whose text can match no
        name has no name pattern); every other stand-in must be found in every shape.

        `prepared`: on PostgreSQL, the statement is prepared once per connection and runs
        with its generic plan (the connections' plan_cache_mode, settings.py), which spares
        the planner its work at every run: half a millisecond for a page of the address
        list, as much as the page's execution. Only for reads whose values never decide the
        best plan (ids, a time); never a LIKE pattern, whose index is found from the
        pattern's start."""
        self._build = build
        self._stand_ins = stand_ins
        self._optional = optional
        self._prepared = prepared
        self._compiled: dict[tuple[str, Hashable], _Compiled] = {}

    def values(self, *shape: Hashable, using: str = "default", **values: Any) -> list[dict]:
        """The rows of a `.values()` read, as that queryset would give them."""
        compiled = self._compile(using, shape)
        connection = connections[using]
        prepared = self._prepared and connection.vendor == "postgresql"
        with _preparing_cursor(connection) if prepared else connection.cursor() as cursor:
            cursor.execute(compiled.sql, compiled.parameters(values))
            fetched = cursor.fetchall()
        return compiled.rows(fetched)

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
                if name not in self._optional:
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


def values_together(
    *reads: tuple[CompiledRead, tuple, dict[str, Any]], using: str = "default"
) -> list[list[dict]]:
    """The rows of several reads, each `(read, shape, values)` as `read.values(*shape,
    **values)` gives them, in one round trip to PostgreSQL: its pipeline mode sends every
    statement, then reads every answer (a round trip is most of a small read's time). Other
    databases run them one after the other."""
    connection = connections[using]
    # A libpq before 14 has no pipeline mode (psycopg's binary wheel brings a newer one).
    if connection.vendor != "postgresql" or not psycopg.Pipeline.is_supported():
        return [read.values(*shape, using=using, **values) for read, shape, values in reads]
    compiled = [(read, read._compile(using, shape), values) for read, shape, values in reads]
    cursors = [
        _preparing_cursor(connection, _PreparingCursor if read._prepared else psycopg.Cursor)
        for read, _compiled, _values in compiled
    ]
    try:
        with connection.wrap_database_errors, connection.connection.pipeline():
            for cursor, (_read, each, values) in zip(cursors, compiled, strict=True):
                cursor.execute(each.sql, each.parameters(values))
        return [
            each.rows(cursor.fetchall())
            for cursor, (_read, each, _values) in zip(cursors, compiled, strict=True)
        ]
    finally:
        for cursor in cursors:
            cursor.close()


class _PreparingCursor(psycopg.Cursor):
    """A cursor binding its values on the server, each statement prepared (named) on the
    connection at its first run and executed by name after (psycopg keeps the names)."""

    def execute(self, query: Any, params: Any = None, **options: Any) -> _PreparingCursor:
        return super().execute(query, params, **{**options, "prepare": True})


class _PreparedDebugWrapper(CursorDebugWrapper):
    """Django's logging cursor, for a statement run by name: psycopg keeps no text of it for
    Django to log, so the text is composed from the SQL and its values, as Django composes
    it when it binds on the server."""

    def execute(self, sql: str, params: Any = None) -> Any:
        with self.debug_sql(self.db.ops.compose_sql(sql, params)):
            return CursorWrapper.execute(self, sql, params)


def _preparing_cursor(
    connection: Any, cursor_class: type[psycopg.Cursor] = _PreparingCursor
) -> CursorWrapper:
    """A `_PreparingCursor` (or another cursor binding on the server) of Django's PostgreSQL
    connection, wrapped as Django wraps its own (errors translated, the query logged when
    queries are counted)."""
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    raw = cursor_class(connection.connection)
    if connection.queries_logged:
        return _PreparedDebugWrapper(raw, connection)
    return connection.make_cursor(raw)


def _adapters(connection: Any, stand_in: Any) -> list[Callable[[Any], Any] | None]:
    """How a value may appear among the compiled parameters: as itself, (a time) as the
    backend adapts a datetime field's value, or (a list) as JSON text (`values_in`)."""
    if isinstance(stand_in, datetime):
        return [None, connection.ops.adapt_datetimefield_value]
    if isinstance(stand_in, list):
        return [None, json.dumps]
    return [None]


def values_in(values: list, vendor: str) -> RawSQL:
    """A subquery of the list's values, the whole list one parameter: the SQL stays the same
    text whatever the list's length (`IN (%s, %s, ...)` would not). Give it a list that is not
    empty (PostgreSQL cannot tell the type of an empty array)."""
    if vendor == "postgresql":
        return RawSQL("SELECT unnest(%s)", (values,))
    return RawSQL("SELECT value FROM json_each(%s)", (json.dumps(values),))


class ILike(Lookup):
    """The field matches a LIKE pattern in any case, the pattern taken as it is given: the
    SQL of Django's `icontains` (so the same indexes answer it, such as a trigram index on
    `UPPER(field::text)`), without making the pattern from the value while it builds."""

    lookup_name = "ilike"
    # Whose SQL (the column's cast, the operator) the lookup borrows from the backend.
    borrowed = "icontains"

    def as_sql(self, compiler: SQLCompiler, connection: Any) -> tuple[str, list]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        internal_type = self.lhs.output_field.get_internal_type()
        cast = connection.ops.lookup_cast(self.borrowed, internal_type) % lhs
        return f"{cast} {connection.operators[self.borrowed] % rhs}", [*lhs_params, *rhs_params]


class Like(ILike):
    """As `ILike`, in the case given (the SQL of `startswith`; SQLite's LIKE ignores the
    case of ASCII letters whatever the lookup)."""

    lookup_name = "like"
    borrowed = "startswith"
