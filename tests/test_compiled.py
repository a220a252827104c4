"""A CompiledRead runs the SQL Django built once, with new values, and answers as the queryset
would (postdesk/compiled.py)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db.models import Value
from django.utils import timezone

from postdesk.compiled import CompiledRead

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
