"""The login throttle: attempts are counted before they are checked, one address guessing one
user is stopped, and nobody else's failures can lock a user out (they only slow it down)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from archive.auth import verify_password
from archive.service import Archive
from archive.web import app as archive_web
from archive.web.throttle import LoginThrottle
from tests.helpers import WEB_PASSWORD, WEB_USER, login_token

Client = tuple[TestClient[Any, Any], Archive]


def test_a_pair_is_refused_but_others_are_only_slowed() -> None:
    throttle = LoginThrottle(allowed=5, step_s=0.5, max_delay_s=5.0)
    for _ in range(5):
        assert not throttle.begin("10.0.0.9", "sato").refused
    assert throttle.begin("10.0.0.9", "sato").refused  # the guesser stops here
    clean = throttle.begin("10.0.0.1", "sato")  # sato, from their own desk
    assert not clean.refused and 0 < clean.delay_s <= 5.0
    throttle.succeeded(clean)
    for _ in range(100):
        throttle.begin("10.0.0.9", f"user{_}")  # spraying many names from one address
    assert throttle.begin("10.0.0.9", "tanaka").delay_s == 5.0  # slowed to the cap
    assert not throttle.begin("10.0.0.2", "tanaka").refused


def test_a_success_is_not_counted_as_a_failure() -> None:
    throttle = LoginThrottle(allowed=2)
    for _ in range(10):
        throttle.succeeded(throttle.begin("10.0.0.1", "sato"))
    assert not throttle.begin("10.0.0.1", "sato").refused


@pytest.fixture
def addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client address from a test header (in-process, every request is from 127.0.0.1)."""
    monkeypatch.setattr(archive_web.WebApp, "address",
                        lambda self, request: request.headers.get("X-Test-Address", "127.0.0.1"))


async def attempt(http: TestClient[Any, Any], password: str, address: str,
                  token: str = "") -> int:
    token = token or await login_token(http)
    reply = await http.post("/login", data={"user": WEB_USER, "password": password,
                                            "csrf": token},
                            headers={"X-Test-Address": address}, allow_redirects=False)
    return reply.status


async def test_a_parallel_burst_is_counted_before_it_is_checked(
        web_client: Client, addresses: None) -> None:
    http, archive = web_client
    token = await login_token(http)
    statuses = await asyncio.gather(*(attempt(http, f"wrong{i}", "10.0.0.9", token)
                                      for i in range(15)))
    assert statuses == [401] * 15
    actions = [r.action for r in archive.catalog.audit_rows()]
    assert actions.count("login_failed") == 5 and actions.count("login_throttled") == 10
    assert {r.role for r in archive.catalog.audit_rows()} == {"supervisor"}  # the real role


async def test_failures_elsewhere_never_refuse_the_right_password(
        web_client: Client, addresses: None) -> None:
    http, _ = web_client
    for i in range(8):
        assert await attempt(http, f"wrong{i}", "10.0.0.9") == 401
    assert await attempt(http, WEB_PASSWORD, "10.0.0.1") == 303  # slowed, not refused
    assert await attempt(http, WEB_PASSWORD, "10.0.0.9") == 401  # the guesser's address is


async def test_a_refused_attempt_costs_a_password_check_too(
        web_client: Client, addresses: None, monkeypatch: pytest.MonkeyPatch) -> None:
    http, _ = web_client
    checks: list[str] = []
    real = verify_password

    def counted(password: str, stored: str) -> bool:
        checks.append(password)
        return real(password, stored)

    monkeypatch.setattr("archive.web.app.verify_password", counted)
    for i in range(7):
        await attempt(http, f"wrong{i}", "10.0.0.9")
    assert len(checks) == 7  # refused ones too: their timing does not tell
