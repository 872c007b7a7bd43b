"""Example bodies for the OpenAPI document (issue 7: "every request and response body described
with examples").

Why one module: several answers nest others (a user list holds users, a group list groups), so
each example is written once here and reused; `tests/api/test_openapi_examples.py` checks every
example against the schema it illustrates, so they cannot drift from the models. Models attach
them with ``model_config = ConfigDict(json_schema_extra=examples(X))``.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["examples"]


def examples(*values: dict[str, Any]) -> dict[str, Any]:
    """The ``json_schema_extra`` that puts `values` under the schema's ``examples``."""
    return {"examples": list(values)}


T0: Final = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC, so the examples read as times

# FastAPI drops null values from examples in the document, so a field that is required but
# nullable (``max_calls: int | None``) is given a value here, or the example would not match.

FORWARDING: Final[dict[str, Any]] = {
    "unconditional": None,
    "busy": "1003",
    "no_answer": "600",
    "unreachable": None,
    "dnd": False,
}
USER_CREATE: Final[dict[str, Any]] = {
    "number": "1001",
    "display_name": "Alice",
    "password": "correct horse battery",
    "class_of_service": "national",
}
USER_CREATE_IP: Final[dict[str, Any]] = {
    "number": "1002",
    "display_name": "Door phone",
    "ip_auth": ["10.0.0.5/32"],
    "static_contact": "10.0.0.5:5060",
}
USER_UPDATE: Final[dict[str, Any]] = {
    "display_name": "Alice Smith",
    "forwarding": {"busy": "1003", "no_answer": "600"},
}
USER: Final[dict[str, Any]] = {
    "id": 1,
    "number": "1001",
    "display_name": "Alice",
    "enabled": True,
    "has_password": True,
    "password_stale": False,
    "max_contacts": 3,
    "ip_auth": ["192.168.1.0/24"],
    "static_contact": "192.168.1.20:5060",
    "nat": "auto",
    "class_of_service": "national",
    "ring_timeout": 30,
    "max_calls": 2,
    "forwarding": FORWARDING,
    "registrations": 1,
    "reachable": True,
    "created_at": T0,
    "updated_at": T0,
}
USER_LIST: Final[dict[str, Any]] = {"total": 1, "limit": 100, "offset": 0, "users": [USER]}
BULK_IN: Final[dict[str, Any]] = {"users": [USER_CREATE, USER_CREATE_IP]}
BULK_CREATED: Final[dict[str, Any]] = {"created": 2, "numbers": ["1001", "1002"]}

REGISTRATION: Final[dict[str, Any]] = {
    "number": "1001",
    "aor": "sip:1001@pbx.example.com",
    "contact": "sip:1001@192.168.1.20:5060",
    "source": "udp:203.0.113.7:41234",
    "source_transport": "udp",
    "source_host": "203.0.113.7",
    "source_port": 41234,
    "user_agent": "Yealink SIP-T46U 108.86.0.20",
    "expires_at": T0 + 3600,
    "expires_in": 3412,
}
REGISTRATION_LIST: Final[dict[str, Any]] = {"total": 1, "registrations": [REGISTRATION]}
REMOVED: Final[dict[str, Any]] = {"removed": 1}

HEALTH: Final[dict[str, Any]] = {"status": "ok"}
STATUS: Final[dict[str, Any]] = {
    "version": "0.1.0",
    "started_at": T0,
    "uptime_seconds": 86400.5,
    "domain": "pbx.example.com",
    "listeners": [{"transport": "udp", "host": "0.0.0.0", "port": 5060}],
    "counts": {"users": 42, "registrations": 37, "reachable": 39, "calls": 3, "bans": 2},
    "sip_counters": {"received": 120431, "sent": 118220, "retransmissions": 57},
}

BAN: Final[dict[str, Any]] = {
    "source": "198.51.100.23",
    "reason": "auth-failures",
    "since": T0,
    "until": T0 + 3600,
    "expires_in": 2950,
    "offence": 1,
    "hit_count": 1480,
    "users": ["100", "1000", "admin"],
    "user_agent": "friendly-scanner",
    "detail": "12 failed authentications in 60 s",
}
BAN_LIST: Final[dict[str, Any]] = {"total": 1, "bans": [BAN]}
BAN_IN: Final[dict[str, Any]] = {"source": "198.51.100.23", "duration": 3600, "reason": "test"}
UNBANNED: Final[dict[str, Any]] = {"source": "198.51.100.23", "unbanned": True}
ENTRY: Final[dict[str, Any]] = {
    "network": "192.0.2.0/24",
    "note": "office",
    "origin": "api",
    "created_at": T0,
}
ENTRY_LIST: Final[dict[str, Any]] = {"total": 1, "entries": [ENTRY]}
ENTRY_IN: Final[dict[str, Any]] = {"network": "192.0.2.0/24", "note": "office"}
SECURITY_EVENT: Final[dict[str, Any]] = {
    "id": 7,
    "at": T0,
    "kind": "ban",
    "source": "198.51.100.23",
    "reason": "auth-failures",
    "detail": {"users": ["100", "admin"], "failures": 12},
}
SECURITY_EVENT_LIST: Final[dict[str, Any]] = {"total": 1, "events": [SECURITY_EVENT]}

LEG: Final[dict[str, Any]] = {
    "number": "1002",
    "target": "sip:1002@192.168.1.21:5060",
    "destination": "udp:192.168.1.21:5060",
    "state": "answered",
    "status": 200,
    "call_id": "5f1e0c2d@pbx.example.com",
}
CALL: Final[dict[str, Any]] = {
    "id": "c-01HZX3",
    "state": "answered",
    "caller": "1001",
    "caller_source": "udp:192.168.1.20:5060",
    "dialed": "600",
    "started_at": T0,
    "answered_at": T0 + 6,
    "duration": 42.5,
    "a_call_id": "a84b4c76e66710@pc33",
    "b_call_id": "5f1e0c2d@pbx.example.com",
    "legs": [LEG],
}
CALL_LIST: Final[dict[str, Any]] = {"total": 1, "calls": [CALL]}
HUNG_UP: Final[dict[str, Any]] = {"id": "c-01HZX3", "hung_up": True}
TRACED: Final[dict[str, Any]] = {
    "index": 0,
    "at": T0,
    "offset": 0.0,
    "direction": "in",
    "leg": "caller",
    "party": "caller",
    "call_id": "a84b4c76e66710@pc33",
    "peer": "udp:192.168.1.20:5060",
    "summary": "INVITE",
    "text": "INVITE sip:1002@pbx.example.com SIP/2.0\r\nCall-ID: a84b4c76e66710@pc33\r\n...",
}
TRACE: Final[dict[str, Any]] = {
    "id": "c-01HZX3",
    "started_at": T0,
    "legs": {"a84b4c76e66710@pc33": "caller", "5f1e0c2d@pbx.example.com": "1002"},
    "truncated": 0,
    "messages": [TRACED],
}
CDR: Final[dict[str, Any]] = {
    "id": "c-01HZX3",
    "start_time": T0,
    "answer_time": T0 + 6,
    "end_time": T0 + 66,
    "duration": 60,
    "billable": 60,
    "caller_number": "1001",
    "caller_display": "Alice",
    "caller_source": "udp:192.168.1.20:5060",
    "caller_transport": "udp",
    "dialed_number": "902012345678",
    "destination": "line:ct-ims",
    "disposition": "answered",
    "status": 200,
    "reason": "OK",
    "hangup_by": "caller",
    "a_call_id": "a84b4c76e66710@pc33",
    "b_call_id": "5f1e0c2d@pbx.example.com",
    "line": "ct-ims",
}
CDR_LIST: Final[dict[str, Any]] = {"total": 1, "limit": 50, "offset": 0, "records": [CDR]}

TOKEN: Final[dict[str, Any]] = {
    "id": 3,
    "name": "grafana",
    "role": "read-only",
    "created_at": T0,
    "last_used_at": T0 + 60,
    "revoked": False,
}
TOKEN_CREATED: Final[dict[str, Any]] = {
    **TOKEN,
    "last_used_at": T0,
    "token": "sbx_4mV3q9Xw...",
}
TOKEN_LIST: Final[dict[str, Any]] = {"total": 1, "tokens": [TOKEN]}
TOKEN_IN: Final[dict[str, Any]] = {"name": "grafana", "role": "read-only"}

GROUP_CREATE: Final[dict[str, Any]] = {
    "number": "600",
    "name": "Sales",
    "strategy": "sequential",
    "ring_timeout": 20,
    "no_answer_destination": "1001",
    "members": ["1001", {"number": "1002", "timeout": 15}],
}
GROUP_UPDATE: Final[dict[str, Any]] = {"strategy": "ring-all", "members": ["1001", "1002"]}
MEMBER_ADD: Final[dict[str, Any]] = {"number": "1003", "timeout": 10, "position": 0}
MEMBER: Final[dict[str, Any]] = {"number": "1001", "timeout": 20}
GROUP: Final[dict[str, Any]] = {
    "id": 1,
    "number": "600",
    "name": "Sales",
    "strategy": "sequential",
    "ring_timeout": 20,
    "no_answer_destination": "1001",
    "completed_elsewhere": True,
    "skip_busy": True,
    "members": [MEMBER, {"number": "1002", "timeout": 15}],
    "last_answered": None,
    "created_at": T0,
    "updated_at": T0,
}
GROUP_LIST: Final[dict[str, Any]] = {"total": 1, "groups": [GROUP]}

IMPORT_RESULT: Final[dict[str, Any]] = {
    "imported": {
        "users": 2,
        "groups": 1,
        "lines": 1,
        "trunks": 0,
        "prefixes": 1,
        "inbound_routes": 1,
        "whitelist": 1,
        "blacklist": 0,
    }
}
