"""Free loopback ports for labs."""

from __future__ import annotations

import socket

# Ports a lab never takes, even when free: Squid's (3128) and ICAP's (1344) defaults,
# which an installed Squid or c-icap may claim at any time.
RESERVED = (1344, 3128)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (never one of RESERVED)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in RESERVED:
            return port
