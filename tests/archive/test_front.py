"""Behind the reverse proxy: the public origin and host, and the client address, believed from
configured proxies only."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from archive.config import WebSettings
from archive.web.front import Front


def request(host: str, peer: str, forwarded: str = "") -> web.Request:
    headers = {"Host": host, **({"X-Forwarded-For": forwarded} if forwarded else {})}
    req = make_mocked_request("GET", "/calls", headers=headers)
    req._transport_peername = (peer, 40000)
    return req


def test_the_public_origin_and_host_come_from_the_config() -> None:
    front = Front(WebSettings(public_url="https://archive.example.jp"))
    req = request("archive.example.jp", "127.0.0.1")
    assert front.origin(req) == "https://archive.example.jp"
    assert front.host_ok(req)
    assert not front.host_ok(request("evil.example", "127.0.0.1"))
    plain = Front(WebSettings())  # no proxy: the request's own
    assert plain.origin(request("127.0.0.1:8480", "127.0.0.1")) == "http://127.0.0.1:8480"


def test_forwarded_addresses_are_believed_from_trusted_proxies_only() -> None:
    front = Front(WebSettings(trusted_proxies=["127.0.0.5/32", "10.9.0.0/16"]))
    assert front.address(request("h", "127.0.0.5", "192.0.2.7")) == "192.0.2.7"
    # the client's own header, then our two proxies: the last address not ours is the client
    chain = "6.6.6.6, 192.0.2.7, 10.9.1.1"
    assert front.address(request("h", "127.0.0.5", chain)) == "192.0.2.7"
    assert front.address(request("h", "127.0.0.1", "6.6.6.6")) == "127.0.0.1"
    assert front.address(request("h", "127.0.0.5", "not-an-ip")) == "127.0.0.5"
