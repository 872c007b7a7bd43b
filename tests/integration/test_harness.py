"""The integration harness itself: what keeps the real-server tests from flaking."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.integration.server import make_server


def test_a_port_taken_before_start_is_picked_again(tmp_path: Path) -> None:
    """Between `free_port` and the server's bind any unbound UDP client socket may get that
    port as its wildcard ephemeral port (seen once in CI): the harness picks new ports."""
    server = make_server(tmp_path)
    taken = server.port
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("0.0.0.0", taken))  # what an unbound sending socket gets
        server.start()
    try:
        assert server.alive()
        assert server.port != taken
        assert f':{server.port}"' in server.config_path.read_text()
        assert "Address already in use" in server.log_text()  # the first attempt did fail
    finally:
        server.stop()
