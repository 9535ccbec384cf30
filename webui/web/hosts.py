"""The host names the app answers as: a guard against DNS rebinding.

A web page on another site can make its own name resolve to 127.0.0.1 (or a LAN address) and then
talk to the app as if it were that site: the browser sends ``Host: evil.example:7860`` and an
``Origin`` of the same site, so comparing the two proves nothing. Only a list of the names the app is
really served as does; every request naming another host is refused before any handler runs.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from webui.config import LOOPBACK_HOSTS, Settings

WILDCARD_BINDS = frozenset({"0.0.0.0", "::", ""})
# A laptop that changes networks gets new addresses while the app runs: a host that is not listed is
# checked against the machine's current addresses, at most this often.
REFRESH_SECONDS = 30.0


def host_name(value: str | None) -> str | None:
    """The lower-case name or address in a ``Host`` header or URL netloc, without port, brackets or a
    trailing dot; None when it is not one."""
    if value is None:
        return None
    value = value.strip().lower()
    if not value or any(c in value for c in "/\\@?# \t"):
        return None
    if value.startswith("["):  # [v6]:port
        end = value.find("]")
        rest = value[end + 1:]
        if end < 0 or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
        name = value[1:end]
        try:
            ipaddress.IPv6Address(name.split("%", 1)[0])
        except ValueError:
            return None
        return name
    if value.count(":") > 1:  # a bare IPv6 address (never sent as a Host header, but in settings)
        try:
            ipaddress.IPv6Address(value.split("%", 1)[0])
        except ValueError:
            return None
        return value
    name, _, port = value.partition(":")
    if port and not port.isdigit():
        return None
    return name.rstrip(".") or None


def machine_addresses() -> set[str]:
    """This machine's own interface addresses (IPv4 and IPv6), read locally (no DNS)."""
    import psutil

    found: set[str] = set()
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family in (socket.AF_INET, socket.AF_INET6):
                found.add(address.address.split("%", 1)[0].lower())
    return found


def machine_names() -> set[str]:
    """This machine's own names as a LAN would know them: its host name, short and with ``.local``
    (mDNS). No DNS query is made, so a name only a DNS server knows needs ``--allowed-host``."""
    name = socket.gethostname().strip().lower().rstrip(".")
    if not name:
        return set()
    short = name.split(".", 1)[0]
    return {name, short, f"{short}.local"}


@dataclass
class HostAllowList:
    """The names a request's ``Host`` may carry; ``machine`` re-reads this machine's addresses."""

    names: frozenset[str]
    machine: Callable[[], set[str]] | None = None
    clock: Callable[[], float] = time.monotonic
    _seen: set[str] = field(default_factory=set, init=False)  # this machine's addresses, last read
    _read_at: float = field(default=float("-inf"), init=False)

    @classmethod
    def for_settings(cls, settings: Settings, *,
                     addresses: Callable[[], set[str]] = machine_addresses,
                     names: Callable[[], set[str]] = machine_names) -> HostAllowList:
        """Loopback names always; the bind address; the hosts of ``--cors-origin``; ``--allowed-host``
        names; and, when the app listens on the network, this machine's own names and addresses."""
        allowed = {host_name(h) for h in LOOPBACK_HOSTS} | {"[::1]"}
        allowed |= {host_name(h) for h in settings.allowed_hosts}
        allowed |= {host_name(urlsplit(origin).netloc) for origin in settings.cors_origins}
        if settings.host not in WILDCARD_BINDS:
            allowed.add(host_name(settings.host))
        machine = None
        if settings.listens_on_network:
            allowed |= names()
            machine = addresses
        return cls(names=frozenset(n for n in allowed if n), machine=machine)

    def allows(self, host: str | None) -> bool:
        """True for a ``Host`` header naming one of the app's own names (any port)."""
        name = host_name(host)
        if name is None:
            return False
        if name in self.names or name in self._seen:
            return True
        if self.machine is None:
            return False
        now = self.clock()
        if now - self._read_at >= REFRESH_SECONDS:
            self._read_at = now
            self._seen = set(self.machine())
        return name in self._seen

    def describe(self) -> list[str]:
        """The names listed, for the start-up log (machine addresses read now)."""
        seen = set(self.machine()) if self.machine else set()
        return sorted(self.names | seen)


def origin_allowed(origin: str, host: str, scheme: str, listed: Iterable[str], hosts: HostAllowList) -> bool:
    """True when a browser's ``Origin`` is a ``--cors-origin`` or this app itself: one of its own
    names (the allow-list, never the request's ``Host`` alone) on the port the request came to."""
    origin = origin.strip().lower().rstrip("/")
    if origin in listed:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc or not host:
        return False  # "null" (sandboxed frames, file pages) and anything odd
    if not hosts.allows(parts.netloc):
        return False
    # Behind a TLS proxy the app sees http while the browser says https; host and port decide.
    return _netloc(parts.scheme, parts.netloc) == _netloc(scheme, host)


def _netloc(scheme: str, host: str) -> str:
    """``host[:port]`` with the scheme's default port left out, lower-cased, for comparing origins."""
    host = host.strip().lower()
    default = {"http": ":80", "https": ":443"}.get(scheme, "")
    return host[: -len(default)] if default and host.endswith(default) else host


def refused_host_message(host: str | None) -> str:
    """What a client naming an unknown host is told (the page that sent it may be an attacker's)."""
    shown = (host or "")[:100] or "(none)"
    return (f"Refused: this app is not served under the host name {shown!r}. If you reach it through that "
            "name (a reverse proxy or a DNS name), start it with --allowed-host NAME.")
