"""AccessToken parsing: every vendor's field types, expiry sources, leeway, and clear refusals."""

from __future__ import annotations

import pendulum
import pytest

from airflow_vendorauth.auth.token import AccessToken, leeway_for, parse_token_response
from airflow_vendorauth.exceptions import InvalidTokenResponseError
from tests.unit.fakes import make_jwt, seed_token_body

NOW = pendulum.datetime(2026, 11, 25, 12, 0, 0, tz="UTC")


def parse(body: object, **kwargs: object) -> AccessToken:
    return parse_token_response(body, vendor="Kazi", conn_id="c", now=NOW, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("expires_in", [3599, "3599", "3599.0", 3599.0])
def test_expires_in_as_int_string_or_float_string(expires_in: object) -> None:
    token = parse({"access_token": "abcd", "token_type": "Bearer", "expires_in": expires_in})
    assert token.expires_at == NOW.add(seconds=3599)


def test_kazi_seed_body_with_strings_and_jwt_roles() -> None:
    jwt = make_jwt({"exp": int(NOW.timestamp()) + 3599, "roles": ["read:expectations", "read:jobs"]})
    token = parse(seed_token_body("kazi", jwt), expect_jwt=True)
    assert token.token_type == "Bearer"
    assert token.roles == ("read:expectations", "read:jobs")
    assert token.expires_at == NOW.add(seconds=3599)
    assert token.expires_at.timezone_name == "UTC"


def test_expires_on_used_when_no_expires_in() -> None:
    token = parse({"access_token": "abcd", "expires_on": str(int(NOW.timestamp()) + 600)})
    assert token.expires_at == NOW.add(seconds=600)


def test_jwt_exp_used_when_body_states_no_lifetime() -> None:
    jwt = make_jwt({"exp": int(NOW.timestamp()) + 1200})
    assert parse({"access_token": jwt}).expires_at == NOW.add(seconds=1200)


def test_default_lifetime_when_nothing_states_one() -> None:
    assert parse({"access_token": "opaque"}).lifetime_seconds == 3600


@pytest.mark.parametrize("vendor", ["smartrecruiters", "clazar"])
def test_lower_case_bearer_is_normalised(vendor: str) -> None:
    assert parse(seed_token_body(vendor, "opaque-token")).token_type == "Bearer"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ([], "not an object"),
        ({"token_type": "Bearer"}, "no access_token"),
        ({"access_token": ""}, "no access_token"),
        ({"access_token": "t", "expires_in": -5}, "already expired"),
        ({"access_token": "t", "expires_in": 0}, "already expired"),
        ({"access_token": "t", "expires_in": 10**12}, "cannot be trusted"),
        ({"access_token": "t", "expires_in": "soon"}, "not a number"),
        ({"access_token": "t", "expires_in": None}, "not a number"),
        ({"access_token": "t", "expires_in": "nan"}, "not a number"),
        ({"access_token": "t", "token_type": "mac"}, "not a bearer"),
    ],
)
def test_unusable_bodies_are_refused_clearly(body: object, says: str) -> None:
    with pytest.raises(InvalidTokenResponseError, match=says) as caught:
        parse(body)
    assert "KeyError" not in repr(caught.value)


def test_a_jwt_vendor_token_that_does_not_decode_is_refused() -> None:
    with pytest.raises(InvalidTokenResponseError, match="not a decodable JWT"):
        parse({"access_token": "eyJnot.a.jwt", "expires_in": "3599"}, expect_jwt=True)


@pytest.mark.parametrize(
    ("lifetime", "low", "high"),
    [(3599, 300, 300), (1799, 179.9, 179.9), (86400, 300, 300), (120, 30, 30), (10, 5, 5)],
)
def test_leeway_scales_with_lifetime_within_floor_cap_and_half(lifetime: int, low: float, high: float) -> None:
    assert low <= leeway_for(lifetime) <= high


def test_refresh_point_is_before_expiry_by_leeway_plus_jitter() -> None:
    token = parse({"access_token": "t", "expires_in": 1799})
    ahead = (token.expires_at - token.refresh_at).total_seconds()
    assert 179.9 <= ahead <= 179.9 * 1.1 + 0.01
    assert token.is_fresh(NOW)
    assert not token.is_fresh(token.refresh_at)


def test_repr_and_str_never_show_the_token() -> None:
    token = parse({"access_token": "very-secret-token-value"})
    assert "very-secret-token-value" not in repr(token)
    assert "very-secret-token-value" not in str(token)


def test_round_trip_through_json_keeps_the_token() -> None:
    token = parse({"access_token": make_jwt({"roles": ["r"]}), "expires_in": 100})
    again = AccessToken.from_json(token.to_json(), source="file")
    assert (again.access_token, again.expires_at, again.roles, again.source) == (
        token.access_token,
        token.expires_at,
        token.roles,
        "file",
    )
