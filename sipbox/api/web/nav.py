"""The navigation of the web admin, built from one list.

Why a list: features arrive one by one (ringing groups, external lines, trunks...). A later
feature adds its page route and flips its line here from ``planned`` to a real page; the
layout, the menu and the "arriving later" placeholder pages all follow from this list, so no
template needs editing to add a page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["NAV", "NavItem", "nav_sections"]


@dataclass(frozen=True, slots=True)
class NavItem:
    """One menu entry.

    `planned` entries are slots reserved for features not built yet: the menu shows them
    greyed out and their path serves a short page saying what will be there and how to do it
    meanwhile (`hint`).
    """

    label: str
    path: str
    section: str
    planned: bool = False
    hint: str = ""


NAV: Final[tuple[NavItem, ...]] = (
    NavItem("Dashboard", "/ui/", "Overview"),
    NavItem("Users", "/ui/users", "Telephony"),
    NavItem("Registrations", "/ui/registrations", "Telephony"),
    NavItem(
        "Groups",
        "/ui/groups",
        "Telephony",
        hint="Ringing and hunting groups (several phones ring for one number).",
    ),
    NavItem(
        "External lines",
        "/ui/lines",
        "Telephony",
        hint="Accounts at a SIP provider that sipbox registers to, with their state and a Test "
        "button.",
    ),
    NavItem(
        "Trunks",
        "/ui/trunks",
        "Telephony",
        hint="Peers trusted by address (another PBX, a carrier's SBC).",
    ),
    NavItem(
        "Call prefixes",
        "/ui/prefixes",
        "Telephony",
        hint="Which dialled numbers go out through which line or trunk.",
    ),
    NavItem(
        "Inbound routes",
        "/ui/inbound",
        "Telephony",
        hint="Where calls arriving on a line or trunk ring.",
    ),
    NavItem("Live calls", "/ui/calls", "Calls"),
    NavItem("Call records", "/ui/cdr", "Calls"),
    NavItem("Security", "/ui/security", "System"),
    NavItem("API tokens", "/ui/tokens", "System"),
    NavItem("Web admins", "/ui/admins", "System", hint="Who may log in to these pages."),
    NavItem("Settings", "/ui/settings", "System"),
)


def nav_sections(items: tuple[NavItem, ...] = NAV) -> list[tuple[str, list[NavItem]]]:
    """Items grouped by section, in first-appearance order (what the layout renders)."""
    sections: dict[str, list[NavItem]] = {}
    for item in items:
        sections.setdefault(item.section, []).append(item)
    return list(sections.items())
