"""Who may call findling's HTTP servers (the API and MCP): API keys and Host names.

Keys are bearer tokens compared in constant time and never logged. A Host header must name an
allowed host (FINDLING_ALLOWED_HOSTS, loopback names by default), so that a web page whose
name an attacker points at 127.0.0.1 (DNS rebinding) cannot read a server on the user's laptop.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable, Sequence

from indexer.errors import UnauthorizedError
from indexer.settings import Settings


def read_keys(settings: Settings) -> list[str]:
    """The keys that may read, or none when reads are open (no FINDLING_READ_API_KEY)."""
    if settings.read_api_key is None:
        return []
    keys = [settings.read_api_key, settings.api_key]  # the write key reads too
    return [key.get_secret_value() for key in keys if key is not None]


def check_bearer(authorization: str, keys: Sequence[str], what: str) -> None:
    """Raise UnauthorizedError unless ``authorization`` is ``Bearer <one of keys>``."""
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise UnauthorizedError(
            f"{what} need an API key", "send the header `Authorization: Bearer <key>`"
        )
    # constant time, and every key compared: how long this takes says nothing about a key
    matches = [hmac.compare_digest(token.encode(), key.encode()) for key in keys]
    if not any(matches):
        raise UnauthorizedError("the API key is not valid", "check the key you send")


def host_name(host: str) -> str:
    """The name in a Host header or setting: lowercased, without port or final dot.

    ``LocalHost:8000`` gives ``localhost``, ``[::1]:80`` and ``::1`` give ``[::1]``.
    """
    host = host.strip().lower()
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    if host.count(":") > 1:  # a bare IPv6 address, as a setting may give it
        return f"[{host}]"
    return host.partition(":")[0].rstrip(".")


class HostNames:
    """The Host header values a server answers for: the given names with any port, or any
    host at all when the names include ``*``."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = frozenset(host_name(name) for name in names)
        self.any = "*" in self.names

    def allow(self, header: str | None) -> bool:
        return self.any or (header is not None and host_name(header) in self.names)


def is_loopback(address: str) -> bool:
    """Whether a bind address is reachable from this machine only."""
    if host_name(address) == "localhost":
        return True
    try:
        return ipaddress.ip_address(host_name(address).strip("[]")).is_loopback
    except ValueError:
        return False
