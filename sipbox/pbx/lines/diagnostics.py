"""`sipbox line test NAME`: which registration form does the carrier accept?

Carriers differ in the digest username they want (``account`` or ``account@domain``, ZTE IMS
answers 403 to the short form) and in whether requests must go through the SBC/proxy. The test
tries the configured form first, then the other username form, then each without the proxy -
at most one REGISTER (plus its challenge answer) per combination, `spacing` seconds apart so
the carrier's own fail-to-ban is not tripped - and stops at the first that is accepted. The
report is in plain words, for a person on the phone with the carrier.

An accepted test REGISTER is then withdrawn (Expires: 0): otherwise the carrier keeps a stray
binding until it expires and may send calls to it. Not when it *is* the line's live binding:
the same contact at the same registrar as the line's current registration, where an
un-REGISTER would take the line itself off the air.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from .line import LineConfig
from .registration import LineRegistration
from .service import LineService

__all__ = ["run_line_test"]


async def run_line_test(
    service: LineService, name: str, *, spacing: float | None = None, timeout: float = 8.0
) -> dict[str, Any]:
    line = service.lines.get(name)
    if line is None:
        raise KeyError(name)
    spacing = service.settings.lines.test_spacing if spacing is None else spacing
    forms = [line.auth_id_with_domain, not line.auth_id_with_domain]
    proxies = [True, False] if line.proxy else [True]
    if not line.proxy:
        pass
    elif f"{name}#domain" not in service.line_targets:
        service.line_targets[f"{name}#domain"] = await service._domain_targets(line)
    tries: list[dict[str, Any]] = []
    accepted: dict[str, Any] | None = None
    for use_proxy in proxies:
        for with_domain in forms:
            if tries:
                await asyncio.sleep(spacing)
            result = await _try(service, line, with_domain, use_proxy, timeout)
            tries.append(result)
            if result["accepted"]:
                accepted = result
                break
        if accepted:
            break
    report = {
        "line": name,
        "tries": tries,
        "accepted": accepted,
        "summary": _summary(line, tries, accepted),
        "finished_at": time.time(),
    }
    service.last_tests[name] = report  # shown with the line's status until the next test
    return report


async def _try(
    service: LineService, line: LineConfig, with_domain: bool, use_proxy: bool, timeout: float
) -> dict[str, Any]:
    reg = service._new_registration(line, auth_with_domain=with_domain, use_proxy=use_proxy)
    username = line.auth_username(with_domain)
    via = str(line.proxy_spec) if use_proxy and line.proxy else "the domain's own servers"
    now = service.port.now()
    reg.start(now)
    out = reg.poll(now)
    reg._due = None
    if out is None:
        return {"username": username, "via": via, "accepted": False, "status": None,
                "reason": reg.status.last_reason or "no address to send to"}  # fmt: skip
    service._send_reg(reg, out)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline and reg.status.state == "registering":
        await asyncio.sleep(0.05)
    reg._due = None  # a test never retries on its own
    st = reg.status
    ok = st.state == "registered"
    released = False
    if ok:
        released = await _release(service, line, reg, loop.time() + timeout)
    return {
        "username": username,
        "via": via,
        "with_domain": with_domain,
        "use_proxy": use_proxy,
        "accepted": ok,
        "status": st.last_status if st.state != "registering" else None,
        "reason": st.last_reason if st.state != "registering" else "no answer",
        "released": released,
    }


async def _release(
    service: LineService, line: LineConfig, reg: LineRegistration, deadline: float
) -> bool:
    """Withdraw the test's binding unless it is the live registration's; True when done."""
    live = service.regs.get(line.name)
    if (
        live is not None
        and live.status.state == "registered"
        and live.destination == reg.destination
    ):
        return False  # same Contact at the same registrar: that binding is the line's own
    service._send_reg(reg, reg.stop(service.port.now()))
    loop = asyncio.get_running_loop()
    while loop.time() < deadline and reg.status.state == "unregistering":
        await asyncio.sleep(0.05)
    return reg.status.state == "disabled"


def _summary(line: LineConfig, tries: list[dict[str, Any]], accepted: dict[str, Any] | None) -> str:
    refused = "; ".join(
        f'username "{t["username"]}" via {t["via"]}: '
        + (f"{t['status']} {t['reason']}" if t["status"] else str(t["reason"]))
        for t in tries
        if not t["accepted"]
    )
    if accepted is None:
        return (
            f"The carrier accepted none of the forms tried ({refused}). Check account and password."
        )
    text = f'The carrier accepts username "{accepted["username"]}" via {accepted["via"]}.'
    advice = []
    if accepted["with_domain"] != line.auth_id_with_domain:
        advice.append("turn auth_id_with_domain " + ("on" if accepted["with_domain"] else "off"))
    if line.proxy and not accepted["use_proxy"]:
        advice.append("remove the proxy")
    if advice:
        text += " To use it: " + " and ".join(advice) + "."
    if accepted.get("released"):
        text += " The test registration was withdrawn again (Expires: 0)."
    if refused:
        text += f" Refused: {refused}."
    return text
