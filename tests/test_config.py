"""Settings: defaults, TOML, environment overrides, and error messages that name the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from sipbox import __version__
from sipbox.cli import ApiClient, app
from sipbox.config import ConfigError, ListenSpec, Settings, load_settings, parse_duration

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sipbox.toml"
    path.write_text(text, encoding="utf-8")
    return path


def error_for(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), environ)
    return info.value


# ---------------------------------------------------------------------------------- defaults


def test_defaults_without_file() -> None:
    settings = load_settings(None)
    assert settings.server.state_dir == Path("var")
    assert settings.server.log_level == "info"
    assert settings.server.log_format == "text"
    assert settings.server.sip_trace is False
    assert [str(spec) for spec in settings.sip.listen] == [
        "udp:0.0.0.0:5060",
        "tcp:0.0.0.0:5060",
        "tls:0.0.0.0:5061",
    ]
    assert settings.sip.domain == ""
    assert settings.sip.external_address is None
    assert "192.168.0.0/16" in settings.sip.local_networks
    assert "fe80::/10" in settings.sip.local_networks
    assert (settings.sip.t1, settings.sip.t2, settings.sip.t4) == (0.5, 4.0, 5.0)
    assert settings.sip.user_agent == f"sipbox/{__version__}"
    assert settings.sip.max_connections_per_source == 32
    assert settings.tls.cert is None and settings.tls.key is None
    assert settings.api.listen == "127.0.0.1:8080"
    assert settings.auth.algorithms == ("MD5",)
    assert settings.auth.qop == "auth"
    assert settings.database.url == ""
    assert settings.registrar.default_expires == 3600
    assert settings.registrar.keepalive_interval == 60.0
    assert settings.guard.enabled is True
    assert settings.guard.ban_time == 3 * 3600
    assert settings.guard.max_ban_time == 24 * 3600
    assert settings.guard.flood_block == 300
    assert "friendly-scanner" in settings.guard.scanner_user_agents


def test_settings_are_frozen() -> None:
    settings = load_settings(None)
    with pytest.raises(ValidationError):
        settings.sip.domain = "x"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        settings.sip = settings.sip  # type: ignore[misc]


def test_environment_is_not_read_implicitly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIPBOX_SIP_DOMAIN", "from-shell.example")
    assert load_settings(None).sip.domain == ""


# ----------------------------------------------------------------------------------- file


def test_toml_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [server]
        state_dir = "/srv/sipbox"
        log_level = "DEBUG"
        log_format = "json"
        sip_trace = true

        [sip]
        listen = ["udp:192.0.2.10:5060", "tls:[2001:db8::1]:5061"]
        domain = "pbx.example.com"
        aliases = ["sip.example.com"]
        external_address = "203.0.113.7"
        local_networks = ["10.0.0.0/8"]
        t1 = "250ms"
        tcp_idle_timeout = "10m"
        max_connections_per_source = "unlimited"

        [tls]
        cert = "/etc/sipbox/cert.pem"
        key = "/etc/sipbox/key.pem"

        [auth]
        algorithms = ["MD5", "SHA-256"]
        nonce_lifetime = "5m"

        [database]
        url = "postgresql://sipbox@db/sipbox"

        [registrar]
        keepalive_interval = 0

        [guard]
        ban_time = "1h"
        max_ban_time = "1d"
        whitelist = ["198.51.100.0/24", "192.0.2.1"]
        """,
    )
    settings = load_settings(path)
    assert settings.server.state_dir == Path("/srv/sipbox")
    assert settings.server.log_level == "debug"
    assert settings.server.log_format == "json"
    assert settings.server.sip_trace is True
    assert settings.sip.listen == (
        ListenSpec("udp", "192.0.2.10", 5060),
        ListenSpec("tls", "2001:db8::1", 5061),
    )
    assert settings.sip.domain == "pbx.example.com"
    assert settings.sip.aliases == ("sip.example.com",)
    assert settings.sip.external_address == "203.0.113.7"
    assert settings.sip.local_networks == ("10.0.0.0/8",)
    assert settings.sip.t1 == 0.25
    assert settings.sip.tcp_idle_timeout == 600
    assert settings.sip.max_connections_per_source is None
    assert settings.tls.cert == Path("/etc/sipbox/cert.pem")
    assert settings.auth.algorithms == ("MD5", "SHA-256")
    assert settings.auth.nonce_lifetime == 300
    assert settings.database.url.startswith("postgresql://")
    assert settings.registrar.keepalive_interval == 0
    assert settings.guard.ban_time == 3600
    assert settings.guard.max_ban_time == 86400
    assert settings.guard.whitelist == ("198.51.100.0/24", "192.0.2.1/32")


def test_example_file_loads_and_documents_defaults() -> None:
    """sipbox.example.toml is meant to be copied as is: it must be valid."""
    settings = load_settings(ROOT / "sipbox.example.toml")
    assert settings.auth.algorithms[0] == "MD5"


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="configuration file not found") as info:
        load_settings(Path("/nonexistent/sipbox.toml"))
    assert info.value.key is None


def test_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[sip\ndomain = 1"))


# ---------------------------------------------------------------------------- environment


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[sip]\ndomain = "file.example"\nt1 = "1s"\n')
    settings = load_settings(
        path,
        {
            "SIPBOX_SIP_DOMAIN": "pbx.example.com",
            "SIPBOX_SIP_MAX_MESSAGE_SIZE": "32768",
            "SIPBOX_SERVER_SIP_TRACE": "true",
            "SIPBOX_GUARD_BAN_TIME": "2h",
            "SIPBOX_GUARD_MAX_BAN_TIME": "3h",
            "SIPBOX_DATABASE_URL": "postgresql://postgres@127.0.0.1/test",
            "PATH": "/usr/bin",
        },
    )
    assert settings.sip.domain == "pbx.example.com"
    assert settings.sip.t1 == 1.0  # from the file, untouched
    assert settings.sip.max_message_size == 32768
    assert settings.server.sip_trace is True
    assert settings.guard.ban_time == 7200
    assert settings.database.url == "postgresql://postgres@127.0.0.1/test"


@pytest.mark.parametrize(
    "raw",
    ["udp:127.0.0.5:5070, tcp:[::1]:5070", '["udp:127.0.0.5:5070", "tcp:[::1]:5070"]'],
)
def test_environment_lists(raw: str) -> None:
    settings = load_settings(None, {"SIPBOX_SIP_LISTEN": raw})
    assert settings.sip.listen == (
        ListenSpec("udp", "127.0.0.5", 5070),
        ListenSpec("tcp", "::1", 5070),
    )


def test_environment_empty_list_and_unset_optional() -> None:
    settings = load_settings(
        None, {"SIPBOX_GUARD_SCANNER_USER_AGENTS": "", "SIPBOX_SIP_EXTERNAL_ADDRESS": ""}
    )
    assert settings.guard.scanner_user_agents == ()
    assert settings.sip.external_address is None


def test_environment_ignores_non_settings() -> None:
    """The prefix is shared with the CLI and the test suite; those variables are not typos."""
    settings = load_settings(
        None,
        {
            "SIPBOX_API_URL": "http://x",
            "SIPBOX_TOKEN": "t",
            "SIPBOX_REQUIRE_INTEROP": "1",
            "SIPBOX_TEST_PG_URL": "postgresql://x",
        },
    )
    assert settings == Settings()


def test_environment_unknown_key_names_variable() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, {"SIPBOX_SIP_DOMIAN": "x"})
    assert str(info.value) == (
        "sip.domian: unknown setting (from environment variable SIPBOX_SIP_DOMIAN)"
    )


def test_environment_bad_value_names_key_and_variable() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, {"SIPBOX_SIP_T1": "abc"})
    message = str(info.value)
    assert message.startswith('sip.t1: expected a duration like "500ms" or "30s", got "abc"')
    assert "SIPBOX_SIP_T1" in message
    assert info.value.key == "sip.t1"


# --------------------------------------------------------------------------------- errors


def test_error_message_format_for_duration(tmp_path: Path) -> None:
    error = error_for(tmp_path, '[sip]\nt1 = "abc"\n')
    assert str(error) == 'sip.t1: expected a duration like "500ms" or "30s", got "abc"'
    assert error.key == "sip.t1"


def test_unknown_setting(tmp_path: Path) -> None:
    error = error_for(tmp_path, '[sip]\ndomian = "x"\n')
    assert str(error) == "sip.domian: unknown setting"


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ("[nonsense]\nx = 1", "nonsense", "unknown section"),
        ('sip = "x"', "sip", "expected a table"),
        ('[server]\nlog_level = "loud"', "server.log_level", '"loud"'),
        ('[server]\nlog_format = "xml"', "server.log_format", '"xml"'),
        ('[server]\nsip_trace = "maybe"', "server.sip_trace", "expected true or false"),
        ("[server]\nstate_dir = 5", "server.state_dir", "got 5"),
        ('[sip]\nlisten = ["sctp:0.0.0.0:5060"]', "sip.listen[0]", "udp, tcp or tls"),
        ('[sip]\nlisten = "udp:0.0.0.0:5060"', "sip.listen", "expected a list"),
        ("[sip]\nlisten = []", "sip.listen", "at least one"),
        ("[sip]\ndomain = 5", "sip.domain", "expected a string"),
        ('[sip]\nlocal_networks = ["10.0.0.1/8"]', "sip.local_networks[0]", "host bits"),
        ('[sip]\nlocal_networks = ["lan"]', "sip.local_networks[0]", '"lan"'),
        ('[sip]\nt2 = "100ms"', "sip.t2", "at least t1"),
        ("[sip]\nt4 = 0", "sip.t4", "greater than 0"),
        ('[sip]\nt1 = "-1s"', "sip.t1", "expected a duration"),
        ('[sip]\nmax_message_size = "big"', "sip.max_message_size", "whole number"),
        ("[sip]\nmax_message_size = 10", "sip.max_message_size", "greater than or equal"),
        ("[sip]\nmax_connections_per_source = 0", "sip.max_connections_per_source", "1"),
        ('[tls]\ncert = "c.pem"', "tls.key", "both"),
        ('[api]\nlisten = "8080"', "api.listen", "host:port"),
        ('[api]\nlisten = "::1:8080"', "api.listen", "brackets"),
        ('[api]\nlisten = "127.0.0.1:99999"', "api.listen", "0-65535"),
        ('[auth]\nalgorithms = ["SHA-512"]', "auth.algorithms[0]", "SHA-512"),
        ("[auth]\nalgorithms = []", "auth.algorithms", "at least one"),
        ('[auth]\nalgorithms = ["MD5", "md5"]', "auth.algorithms", "twice"),
        ('[auth]\nqop = "auth-int"', "auth.qop", "auth-int"),
        ('[database]\nurl = "mysql://x"', "database.url", "mysql"),
        ("[registrar]\nmin_expires = 0", "registrar.min_expires", "greater than"),
        ("[registrar]\ndefault_expires = 10", "registrar.default_expires", "between"),
        ("[registrar]\nmax_expires = 30", "registrar.max_expires", "at least min_expires"),
        ('[guard]\nenabled = "sometimes"', "guard.enabled", "true or false"),
        ('[guard]\nban_time = "forever"', "guard.ban_time", "duration"),
        ('[guard]\nmax_ban_time = "1m"', "guard.max_ban_time", "at least ban_time"),
        ("[guard]\nipv6_prefix = 129", "guard.ipv6_prefix", "128"),
        ("[guard]\nflood_rate = -1", "guard.flood_rate", "greater than or equal"),
        ('[guard]\nblacklist = ["1.2.3"]', "guard.blacklist[0]", '"1.2.3"'),
    ],
)
def test_every_error_names_the_key(tmp_path: Path, text: str, key: str, fragment: str) -> None:
    error = error_for(tmp_path, text)
    assert str(error).startswith(f"{key}: "), str(error)
    assert fragment in str(error)
    assert error.key is not None and key.startswith(error.key)


def test_all_errors_reported_at_once(tmp_path: Path) -> None:
    error = error_for(tmp_path, '[sip]\nt1 = "x"\ndomian = 1\n[guard]\nwindow = "y"\n')
    lines = str(error).splitlines()
    assert [line.split(":")[0] for line in lines] == ["sip.t1", "sip.domian", "guard.window"]


# ------------------------------------------------------------------------------ durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30.0),
        ("5m", 300.0),
        ("3h", 10800.0),
        ("1d", 86400.0),
        ("1.5s", 1.5),
        (" 2 m ", 120.0),
        ("45", 45.0),
        (45, 45.0),
        (0.25, 0.25),
        (0, 0.0),
    ],
)
def test_durations(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["abc", "", "5 minutes", "1h30m", "-5s", "ms", True, [1], "inf"])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(text)


def test_duration_in_file_accepts_bare_number(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "[guard]\nwindow = 90\nflood_block = 0.5\n"))
    assert settings.guard.window == 90.0
    assert settings.guard.flood_block == 0.5


# ---------------------------------------------------------------------------- listen spec


@pytest.mark.parametrize(
    ("text", "transport", "host", "port"),
    [
        ("udp:0.0.0.0:5060", "udp", "0.0.0.0", 5060),
        ("TCP:192.0.2.1:5080", "tcp", "192.0.2.1", 5080),
        ("tls:[::]:5061", "tls", "::", 5061),
        ("udp:[::1]:5060", "udp", "::1", 5060),
        ("udp:[2001:db8::10]:0", "udp", "2001:db8::10", 0),
        ("tcp:pbx.example.com:5060", "tcp", "pbx.example.com", 5060),
    ],
)
def test_listen_spec(text: str, transport: str, host: str, port: int) -> None:
    spec = ListenSpec.parse(text)
    assert (spec.transport, spec.host, spec.port) == (transport, host, port)
    assert ListenSpec.parse(str(spec)) == spec


@pytest.mark.parametrize(
    "text",
    [
        "udp:0.0.0.0",
        "0.0.0.0:5060",
        "ws:0.0.0.0:5060",
        "udp:::1:5060",
        "udp:[::1:5060",
        "udp:[nothex]:5060",
        "udp:0.0.0.0:http",
        "udp:0.0.0.0:70000",
        "udp::5060",
        "udp:bad host:5060",
    ],
)
def test_bad_listen_spec(text: str) -> None:
    with pytest.raises(ValueError, match="transport:host:port"):
        ListenSpec.parse(text)


def test_listen_spec_str_brackets_ipv6() -> None:
    assert str(ListenSpec("udp", "::1", 5060)) == "udp:[::1]:5060"


# ------------------------------------------------------------------------- auth algorithms


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        (["MD5"], ("MD5",)),
        (["SHA-256"], ("SHA-256",)),
        (["md5", "sha-256"], ("MD5", "SHA-256")),
        (["MD5", "SHA256"], ("MD5", "SHA-256")),
    ],
)
def test_auth_algorithms(tmp_path: Path, written: list[str], expected: tuple[str, ...]) -> None:
    quoted = ", ".join(f'"{name}"' for name in written)
    settings = load_settings(write(tmp_path, f"[auth]\nalgorithms = [{quoted}]\n"))
    assert settings.auth.algorithms == expected


def test_auth_md5_must_come_first(tmp_path: Path) -> None:
    error = error_for(tmp_path, '[auth]\nalgorithms = ["SHA-256", "MD5"]\n')
    assert str(error).startswith('auth.algorithms: "MD5" must come before "SHA-256"')


# ---------------------------------------------------------------------- docs stay in step


def test_docs_table_lists_every_key() -> None:
    """docs/configuration.md has one row per setting; a new key without a row fails here."""
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\|\s*`(\w+)`\s*\|\s*`(\w+)`\s*\|", text, re.MULTILINE))
    actual = {
        (section, key)
        for section in Settings.SECTIONS
        for key in type(getattr(Settings(), section)).model_fields
    }
    assert documented == actual


# --------------------------------------------------------------------- CLI configuration


def test_cli_serve_reports_config_error_and_exits_2(tmp_path: Path) -> None:
    path = write(tmp_path, '[sip]\nt1 = "abc"\n')
    result = CliRunner().invoke(app, ["serve", "--config", str(path)])
    assert result.exit_code == 2
    assert 'sip.t1: expected a duration like "500ms" or "30s", got "abc"' in result.output


def test_cli_version() -> None:
    result = CliRunner().invoke(app, ["version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"sipbox {__version__}"


def test_api_client_from_config(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "admin-token").write_text("s3cret\n", encoding="utf-8")
    path = write(tmp_path, f'[server]\nstate_dir = "{state}"\n[api]\nlisten = "0.0.0.0:9090"\n')
    client = ApiClient.resolve(config=path, environ={})
    assert client.base_url == "http://127.0.0.1:9090"
    assert client.token == "s3cret"


def test_api_client_options_and_environment_win(tmp_path: Path) -> None:
    client = ApiClient.resolve(api_url="http://h:1/", token="opt", environ={})
    assert (client.base_url, client.token) == ("http://h:1", "opt")
    client = ApiClient.resolve(
        environ={"SIPBOX_API_URL": "http://[::1]:8080", "SIPBOX_TOKEN": "env"}
    )
    assert (client.base_url, client.token) == ("http://[::1]:8080", "env")


def test_api_client_without_token_file(tmp_path: Path) -> None:
    path = write(tmp_path, f'[server]\nstate_dir = "{tmp_path / "none"}"\n')
    client = ApiClient.resolve(config=path, environ={})
    assert client.base_url == "http://127.0.0.1:8080"
    assert client.token is None
