"""What comes through the reverse proxy in front of the web UI (deploy/nginx-callrec-archive.conf):
the origin forms must come from, the host requests must be for, and the client's address.

Behind a proxy that ends TLS, aiohttp sees ``http`` and the proxy's address: the public origin
comes from ``web.public_url``, and the client's address from ``X-Forwarded-For`` only when the
request comes from one of ``web.trusted_proxies`` (from anyone else that header is a lie anyone
can write, and is ignored).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from aiohttp import web

from archive.config import WebSettings


class Front:
    def __init__(self, settings: WebSettings) -> None:
        self.public = urlsplit(settings.public_url) if settings.public_url else None
        self.proxies = settings.trusted_proxies

    def origin(self, request: web.Request) -> str:
        """The origin a form of ours is posted from."""
        if self.public is not None:
            return f"{self.public.scheme}://{self.public.netloc}"
        return f"{request.scheme}://{request.host}"

    def host_ok(self, request: web.Request) -> bool:
        """The request is for our public host (a forged Host header is refused)."""
        return self.public is None or request.host.lower() == self.public.netloc.lower()

    def address(self, request: web.Request) -> str:
        """The client's address: the peer, or, from a trusted proxy, the last address in
        X-Forwarded-For that is not one of ours (each proxy appends the one it saw)."""
        peer = request.remote or ""
        if not self._trusted(peer):
            return peer
        hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",")]
        for hop in reversed([h for h in hops if h]):
            if not self._trusted(hop):
                return hop if _is_ip(hop) else peer
        return peer

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.proxies)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
