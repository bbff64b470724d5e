"""The stand-ins' request-rate limit: a fixed window of N calls, then the documented 429."""

import pytest

from devtools.standins.ratelimit import RateLimit

from .helpers import create_user, user_body


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_window_serves_the_limit_then_refuses_with_the_seconds_left():
    clock = Clock()
    limit = RateLimit(3, window_seconds=60, clock=clock)
    assert [limit.take("POST", "/v1/customers/c1/users") for _ in range(3)] == [None] * 3
    clock.now += 17.5
    assert limit.take("POST", "/v1/customers/c1/users") == 43  # rounded up
    assert limit.take("GET", "/v1/customers/c1/users") is None  # not a create
    clock.now += 42.5
    assert limit.take("POST", "/v1/customers/c1/users") is None  # a new window
    windows = limit.windows
    assert [(w.served, w.refused) for w in windows] == [(3, 1), (1, 0)]


def test_customer_scope_keeps_one_window_per_customer():
    clock = Clock()
    limit = RateLimit(1, clock=clock, scope="customer")
    assert limit.take("POST", "/v1/customers/c1/users") is None
    assert limit.take("POST", "/v1/customers/C2/users") is None
    assert limit.take("POST", "/v1/customers/c1/users") == 60
    assert {w.key for w in limit.windows} == {"c1", "c2"}


def test_a_limit_needs_at_least_one_call():
    with pytest.raises(ValueError):
        RateLimit(0)


def test_the_stand_in_answers_the_documented_throttle_and_creates_nothing(
    standins, customer, token
):
    standins.partner_center.rate_limit = RateLimit(1)
    served = create_user(standins, customer, token)
    refused = create_user(standins, customer, token, body=user_body("john@contoso.onmicrosoft.com"))
    assert served.status_code == 201
    assert refused.status_code == 429
    wait = int(refused.headers["Retry-After"])
    assert 1 <= wait <= 60
    assert refused.json() == {
        "statusCode": 429,
        "message": f"Rate limit is exceeded. Try again in {wait} seconds.",
    }
    assert standins.partner_center.counters["users_created"] == 1
    standins.reset()
    assert standins.partner_center.rate_limit is None
