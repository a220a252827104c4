"""A CompiledRead runs the SQL Django built once, with new values, and answers as the queryset
would (postdesk/compiled.py)."""

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import F, Value
from django.utils import timezone

from postdesk.compiled import CompiledRead, ILike, Like, values_in, values_together

pytestmark = pytest.mark.django_db

STAND_IN_ID = -(2**40)
STAND_IN_TIME = datetime(1901, 1, 1, tzinfo=UTC)


@pytest.fixture
def people():
    User = get_user_model()
    return [
        User.objects.create_user("ann@example.com", "x" * 16),
        User.objects.create_user("bob@example.com", "x" * 16, is_active=False),
    ]


def test_values_are_the_querysets_for_each_set_of_values(people):
    User = get_user_model()
    builds = []

    def joined_before(*, user_id, at):
        builds.append(user_id)
        return User.objects.filter(pk=user_id, date_joined__lte=at).values(
            "email", "is_active", "date_joined"
        )

    read = CompiledRead(joined_before, user_id=STAND_IN_ID, at=STAND_IN_TIME)
    later = timezone.now() + timedelta(minutes=1)
    for person in people:
        expected = list(
            User.objects.filter(pk=person.pk, date_joined__lte=later).values(
                "email", "is_active", "date_joined"
            )
        )
        assert read.values(user_id=person.pk, at=later) == expected
    # Converted as Django converts them: a real bool and an aware datetime, on SQLite too.
    (bob,) = read.values(user_id=people[1].pk, at=later)
    assert bob["is_active"] is False
    assert bob["date_joined"] == people[1].date_joined
    # The time is a value of the SQL, not frozen in it.
    assert read.values(user_id=people[0].pk, at=people[0].date_joined - timedelta(days=1)) == []
    assert builds == [STAND_IN_ID], "built once, with the stand-ins"


def test_each_shape_is_compiled_apart(people):
    User = get_user_model()
    read = CompiledRead(
        lambda order, *, user_id: (
            User.objects.filter(pk__gte=user_id).order_by(order).values("email")
        ),
        user_id=STAND_IN_ID,
    )
    first = min(p.pk for p in people)
    assert [r["email"] for r in read.values("email", user_id=first)] == [
        "ann@example.com",
        "bob@example.com",
    ]
    assert [r["email"] for r in read.values("-email", user_id=first)] == [
        "bob@example.com",
        "ann@example.com",
    ]


def test_only_values_are_read_from_kept_sql(people):
    User = get_user_model()
    read = CompiledRead(
        lambda *, user_id: User.objects.filter(pk=user_id).annotate(seen=Value(1)),
        user_id=STAND_IN_ID,
    )
    with pytest.raises(TypeError, match="values"):
        read.values(user_id=people[0].pk)


def test_a_stand_in_missing_from_the_sql_fails_loudly():
    User = get_user_model()
    read = CompiledRead(
        lambda *, user_id: User.objects.filter(pk=1).values("email"), user_id=STAND_IN_ID
    )
    with pytest.raises(ValueError, match="user_id's stand-in"):
        read.values(user_id=5)


def test_an_optional_value_may_be_left_out_by_a_shape(people):
    User = get_user_model()

    def named(by_name, *, user_id, email):
        rows = User.objects.filter(pk__gte=user_id)
        return (rows.filter(email=email) if by_name else rows).order_by("email").values("email")

    read = CompiledRead(
        named, optional=frozenset({"email"}), user_id=STAND_IN_ID, email="\0stand-in"
    )
    first = min(p.pk for p in people)
    assert read.values(True, user_id=first, email="bob@example.com") == [
        {"email": "bob@example.com"}
    ]
    assert len(read.values(False, user_id=first, email="ignored")) == 2
    # Not optional: the shape that leaves it out is refused, as before.
    strict = CompiledRead(named, user_id=STAND_IN_ID, email="\0stand-in")
    with pytest.raises(ValueError, match="email's stand-in"):
        strict.values(False, user_id=first, email="ignored")


def test_like_patterns_are_values_so_a_search_compiles(people):
    """`ILike` and `Like` take the pattern as given: a stand-in pattern is found among the
    parameters, and each search's own pattern (its wildcards escaped as Django escapes
    them) finds what `icontains` finds."""
    User = get_user_model()
    User.objects.create_user("under_score@example.com", "x" * 16)
    User.objects.create_user("underxscore@example.com", "x" * 16)
    read = CompiledRead(
        lambda *, pattern: (
            User.objects.filter(ILike(F("email"), pattern)).order_by("email").values("email")
        ),
        pattern="\0stand-in",
    )

    def found(text):
        pattern = f"%{connection.ops.prep_for_like_query(text)}%"
        rows = [r["email"] for r in read.values(pattern=pattern)]
        assert rows == list(
            User.objects.filter(email__icontains=text)
            .order_by("email")
            .values_list("email", flat=True)
        )
        return rows

    assert found("ANN@") == ["ann@example.com"]  # any case
    assert found("der_sc") == ["under_score@example.com"]  # "_" is a character, not a wildcard
    assert found("%") == []
    case_kept = CompiledRead(
        lambda *, pattern: User.objects.filter(Like(F("email"), pattern)).values("email"),
        pattern="\0stand-in",
    )
    assert case_kept.values(pattern="bob@%") == [{"email": "bob@example.com"}]


def test_a_list_of_values_is_one_parameter_whatever_its_length(people):
    User = get_user_model()
    User.objects.create_user("carl@example.com", "x" * 16)
    ids = list(User.objects.order_by("email").values_list("pk", flat=True))
    builds = []

    def among(*, user_ids):
        builds.append(user_ids)
        return (
            User.objects.filter(pk__in=values_in(user_ids, connection.vendor))
            .order_by("email")
            .values("email")
        )

    read = CompiledRead(among, user_ids=[STAND_IN_ID])
    assert [r["email"] for r in read.values(user_ids=ids[:1])] == ["ann@example.com"]
    assert [r["email"] for r in read.values(user_ids=ids)] == [
        "ann@example.com",
        "bob@example.com",
        "carl@example.com",
    ]
    assert builds == [[STAND_IN_ID]]


def test_a_prepared_read_is_planned_once_and_counted_as_a_query(people, django_assert_num_queries):
    """On PostgreSQL a `prepared` read is prepared on the connection once and runs its
    generic plan after; everywhere it answers as the queryset, a query like any other."""
    User = get_user_model()
    read = CompiledRead(
        lambda *, user_id: User.objects.filter(pk=user_id).values("email"),
        prepared=True,
        user_id=STAND_IN_ID,
    )
    for person in people:
        with django_assert_num_queries(1):
            assert read.values(user_id=person.pk) == [{"email": person.email}]
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
            " WHERE statement LIKE %s",
            ['%"tenancy_user"."email"%'],
        )
        (plans,) = cursor.fetchall()
    assert plans == (2, 0), "one statement, both runs on its generic plan"


@pytest.mark.parametrize("pipeline", [True, False], ids=["pipeline", "one-by-one"])
def test_reads_together_answer_as_each_alone(people, monkeypatch, pipeline):
    """`values_together` gives each read's rows as its own `values()` would: in one
    PostgreSQL pipeline, or one after the other (SQLite, or a libpq without pipelines)."""
    if not pipeline:
        monkeypatch.setattr(psycopg.Pipeline, "is_supported", staticmethod(lambda: False))
    User = get_user_model()
    by_id = CompiledRead(
        lambda *, user_id: User.objects.filter(pk=user_id).values("email"),
        prepared=True,
        user_id=STAND_IN_ID,
    )
    from_id = CompiledRead(
        lambda order, *, user_id: (
            User.objects.filter(pk__gte=user_id).order_by(order).values("email", "is_active")
        ),
        user_id=STAND_IN_ID,
    )
    first = min(p.pk for p in people)
    together = values_together(
        (by_id, (), {"user_id": people[1].pk}),
        (from_id, ("-email",), {"user_id": first}),
    )
    assert together == [
        by_id.values(user_id=people[1].pk),
        from_id.values("-email", user_id=first),
    ]
    assert together[1] == [
        {"email": "bob@example.com", "is_active": False},
        {"email": "ann@example.com", "is_active": True},
    ]
