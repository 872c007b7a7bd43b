"""``sipbox line|trunk|prefix|route`` against a real server (issue 5).

The line commands need the live line service (registration state, `line test`), which the
in-process API of tests/test_cli.py does not run, so this uses the real server and a carrier
peer (tests/integration/peertools.py) that accepts any REGISTER.
"""

from __future__ import annotations

from pathlib import Path

from tests.integration.calltools import other_host
from tests.integration.peertools import Peer
from tests.integration.server import make_server
from tests.test_cli import LiveApi, run, run_json


def test_line_trunk_prefix_route_commands(tmp_path: Path) -> None:
    server = make_server(tmp_path, extra_config="\n[guard]\nenabled = false\n")
    carrier = Peer(other_host(server.host))
    server.start()
    try:
        live = LiveApi(url=server.api_url, token=server.admin_token(), config=server.config_path)
        proxy = f"{carrier.host}:{carrier.port}"
        made = run_json(live, "line", "add", "ct", "--domain", "ims.invalid", "--proxy", proxy,
                        "--account", "+8675512345678", "--password", "pw",
                        "--auth-id-with-domain", "--set", "expires=600")  # fmt: skip
        assert isinstance(made, dict) and made["has_password"] and "password" not in made
        assert made["auth_id_with_domain"] is True and made["expires"] == 600
        static = run(live, "line", "add", "static", "--domain", "carrier.example", "--account",
                     "5550000", "--password", "pw", "--no-register")  # fmt: skip
        assert static.exit_code == 0 and "created line static" in static.stdout, static.output
        assert run(live, "line", "add", "bad", "--domain", "x", "--account", "1",
                   "--password", "pw", "--set", "transport=sctp").exit_code == 1  # fmt: skip

        listed = run_json(live, "line", "list")
        assert isinstance(listed, dict) and listed["total"] == 2
        table = run(live, "line", "list")
        assert table.exit_code == 0 and "+8675512345678@ims.invalid" in table.stdout
        assert "unregistered" in table.stdout  # the static account
        report = run(live, "line", "test", "ct", "--spacing", "0")
        assert report.exit_code == 0, report.output
        assert 'accepts username "+8675512345678@ims.invalid"' in report.stdout
        assert carrier.count("REGISTER") >= 2  # the line itself, then the test's try

        changed = run_json(live, "line", "set", "ct", "--set", "expires=300", "--disabled")
        assert isinstance(changed, dict) and changed["expires"] == 300
        assert changed["enabled"] is False

        trunk = run_json(live, "trunk", "add", "pbx2", "--address", "192.0.2.10:5060",
                         "--address", "192.0.2.11", "--keepalive", "0")  # fmt: skip
        assert isinstance(trunk, dict) and trunk["addresses"] == ["192.0.2.10:5060", "192.0.2.11"]
        trunks = run(live, "trunk", "list")
        assert trunks.exit_code == 0 and "pbx2" in trunks.stdout

        implicit = run_json(live, "prefix", "list")
        assert isinstance(implicit, dict) and implicit["prefixes"][0]["implicit"] is True
        prefix = run_json(live, "prefix", "add", "9", "--strip", "1", "--line", "ct",
                          "--trunk", "pbx2", "--class", "national")  # fmt: skip
        assert isinstance(prefix, dict) and prefix["targets"] == ["line:ct", "trunk:pbx2"]
        prefixes = run(live, "prefix", "list")
        assert prefixes.exit_code == 0 and "line:ct, trunk:pbx2" in prefixes.stdout
        assert run(live, "prefix", "add", "8", "--class", "galactic").exit_code == 1

        route = run_json(live, "route", "add", "+8675512345678", "--user", "1001",
                         "--source", "ct")  # fmt: skip
        assert isinstance(route, dict) and route["destination"] == "1001"
        default = run(live, "route", "add", "default", "--user", "1002")
        assert default.exit_code == 0, default.output
        routes = run(live, "route", "list")
        assert routes.exit_code == 0 and "default" in routes.stdout and "1002" in routes.stdout
        assert run(live, "route", "add", "123").exit_code == 2

        assert run(live, "route", "rm", str(route["id"])).exit_code == 0
        assert run(live, "prefix", "rm", "9").exit_code == 0
        assert run(live, "trunk", "rm", "pbx2").exit_code == 0
        removed = run(live, "line", "rm", "static")
        assert removed.exit_code == 0 and "deleted line static" in removed.stdout
        missing = run(live, "line", "show", "static")
        assert missing.exit_code == 1 and "no line named" in missing.stderr
        final = run_json(live, "line", "list")
        assert isinstance(final, dict) and [x["name"] for x in final["lines"]] == ["ct"]
    finally:
        server.stop()
        carrier.close()
