"""Records every socket connection and DNS lookup the process attempts, via an audit hook."""

from __future__ import annotations

import ipaddress
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


def is_local(address: object) -> bool:
    """True for Unix sockets, loopback IPs and "localhost"."""
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    if isinstance(address, tuple) and address:
        host = address[0]
        if host in (None, "localhost", b"localhost"):
            return True
        try:
            return ipaddress.ip_address(host if isinstance(host, str) else host.decode()).is_loopback
        except ValueError:
            return False
    return False


@dataclass
class NetworkLog:
    attempts: list[str] = field(default_factory=list)
    armed: bool = False

    def hook(self, event: str, args: tuple) -> None:
        if not self.armed:
            return
        if event == "socket.connect":
            sock, address = args
            if sock.family in (socket.AF_INET, socket.AF_INET6) and not is_local(address):
                self.attempts.append(f"connect {address!r}")
        elif event == "socket.getaddrinfo":
            host = args[0]
            if not is_local((host,)):
                self.attempts.append(f"getaddrinfo {host!r}")


@contextmanager
def record_network() -> Iterator[NetworkLog]:
    """Audit hooks cannot be removed, so the hook is disarmed on exit instead."""
    log = NetworkLog()
    sys.addaudithook(log.hook)
    log.armed = True
    try:
        yield log
    finally:
        log.armed = False
