"""``sipbox group add/list/show/set/rm`` and ``sipbox user forward`` against a live API
(the `live_api` fixture of test_cli.py)."""

from __future__ import annotations

from tests.test_cli import LiveApi, live_api, run, run_json

__all__ = ["live_api"]


def test_group_commands(live_api: LiveApi) -> None:
    for number in ("1001", "1002", "1003"):
        run_json(live_api, "user", "add", number, "--password", "pw")
    created = run_json(
        live_api, "group", "add", "600", "--members", "1001,1002:15,1003",
        "--strategy", "ring-all", "--timeout", "20", "--name", "Sales",
    )  # fmt: skip
    assert isinstance(created, dict) and created["ring_timeout"] == 20
    assert created["members"][1] == {"number": "1002", "timeout": 15}
    table = run(live_api, "group", "list")
    assert table.exit_code == 0 and "600" in table.stdout and "1002 (15 s)" in table.stdout
    shown = run(live_api, "group", "show", "600")
    assert shown.exit_code == 0 and "ring-all" in shown.stdout and "Sales" in shown.stdout
    changed = run_json(live_api, "group", "set", "600", "--strategy", "circular",
                       "--members", "1003,1001", "--no-answer", "1002")  # fmt: skip
    assert isinstance(changed, dict) and changed["strategy"] == "circular"
    assert [m["number"] for m in changed["members"]] == ["1003", "1001"]
    bad = run(live_api, "group", "add", "601", "--members", "1001,9999")
    assert bad.exit_code == 1 and "members[1]" in bad.stderr
    assert run(live_api, "group", "add", "602", "--strategy", "random").exit_code == 2
    removed = run(live_api, "group", "rm", "600")
    assert removed.exit_code == 0 and "deleted group 600" in removed.stdout
    assert run(live_api, "group", "show", "600").exit_code == 1


def test_user_forward(live_api: LiveApi) -> None:
    run_json(live_api, "user", "add", "1001", "--password", "pw")
    fwd = run_json(live_api, "user", "forward", "1001", "--busy", "1002", "--no-answer", "1003")
    assert fwd == {"unconditional": None, "busy": "1002", "no_answer": "1003",
                   "unreachable": None, "dnd": False}  # fmt: skip
    fwd = run_json(live_api, "user", "forward", "1001", "--dnd", "on", "--busy", "off")
    assert isinstance(fwd, dict) and fwd["dnd"] is True and fwd["busy"] is None
    assert fwd["no_answer"] == "1003"
    shown = run(live_api, "user", "forward", "1001")
    assert shown.exit_code == 0 and "1003" in shown.stdout and "on" in shown.stdout
    cleared = run_json(live_api, "user", "forward", "1001", "--clear")
    assert isinstance(cleared, dict) and not any(cleared.values())
    assert run(live_api, "user", "forward", "1001", "--dnd", "maybe").exit_code == 2
