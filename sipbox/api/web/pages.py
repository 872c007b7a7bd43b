"""The web admin's routes: ``/login``, ``/logout``, the pages under ``/ui/``, ``/static/``.

How a page works: the route reads what it shows through the *same functions as the JSON API*
(``list_users``, ``get_status``...), so a page and ``curl`` always agree, and renders one Jinja2
template extending ``base.html`` (layout + navigation from `sipbox.api.web.nav`). Forms and
buttons do not post back to these routes: ``static/admin.js`` sends them to the JSON API with
the session's CSRF token and shows the API's error message next to the form. So every rule of
the API (validation, roles, CSRF) applies unchanged, and a new page needs no new write route.

Login is the one classic form POST (it must work before any session exists). It is protected by
a double-submit token (a random cookie set by ``GET /login`` echoed in a hidden field), SameSite
cookies, and the per-address lock-out of `LoginLimiter`.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from sipbox import __version__
from sipbox.api.auth import Principal
from sipbox.api.deps import Services, ServicesDep
from sipbox.api.errors import ApiError
from sipbox.api.web.accounts import verify_password
from sipbox.api.web.nav import NAV, NavItem, nav_sections
from sipbox.api.web.sessions import SESSION_COOKIE
from sipbox.storage import CdrFilter

__all__ = ["router", "templates"]

log = logging.getLogger("sipbox.api.web")

_HERE = Path(__file__).resolve().parent.parent
STATIC_DIR: Final = _HERE / "static"
templates = Jinja2Templates(directory=str(_HERE / "templates"))

LOGIN_CSRF_COOKIE: Final = "sipbox_login_csrf"
_STATIC_TYPES: Final = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}

router = APIRouter(include_in_schema=False)


# ----------------------------------------------------------------------------------- helpers


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def _ago(seconds: float | None) -> str:
    """``3725`` -> ``1h 2m``: short durations for tables."""
    if seconds is None:
        return "-"
    rest = int(max(0, seconds))
    if rest < 60:
        return f"{rest}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return " ".join(parts[:2])


templates.env.filters["when"] = _when
templates.env.filters["ago"] = _ago
templates.env.filters["urlpart"] = lambda value: quote(str(value), safe="")
templates.env.globals["version"] = __version__


def _render(
    request: Request, template: str, title: str, status_code: int = 200, **values: Any
) -> HTMLResponse:
    """A page in the shared layout: navigation, the user's name, the CSRF token."""
    principal: Principal | None = getattr(request.state, "principal", None)
    session = principal.session if principal is not None else None
    context = {
        "title": title,
        "nav": nav_sections(),
        "path": request.url.path,
        "principal": principal,
        "csrf_token": session.csrf_token if session is not None else "",
        **values,
    }
    response = templates.TemplateResponse(request, template, context, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def _optional(call: Any) -> Any:
    """The result of an API function, or None when the feature is not running (503)."""
    try:
        return await call
    except ApiError as exc:
        if exc.status == 503:
            return None
        raise


# ------------------------------------------------------------------------------ login/logout


def _safe_next(target: str | None) -> str:
    """Only local page paths are followed after login (no open redirect to another site)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui/"


def _client(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def _login_page(
    request: Request, next_path: str, error: str = "", status_code: int = 200
) -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    response = _render(
        request,
        "login.html",
        "Log in",
        status_code=status_code,
        next=next_path,
        error=error,
        login_csrf=token,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=3600,
        path="/login",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.get("/login")
async def login_form(request: Request, next: str | None = None) -> HTMLResponse:
    """The login form (public)."""
    return _login_page(request, _safe_next(next))


@router.post("/login")
async def login(
    request: Request,
    username: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/ui/",
) -> Response:
    """Check the password (argon2, in a thread), start a session, go to the page asked for.

    A locked-out address gets 429 without its password being checked; a wrong name or password
    gets one message for both (no hint which was wrong).
    """
    services = _services(request)
    source = _client(request)
    target = _safe_next(next)
    cookie_token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie_token or not secrets.compare_digest(cookie_token, csrf_token):
        return _login_page(
            request, target, "Your login form expired; please try again.", status_code=400
        )
    limiter = services.limiter
    locked = limiter.locked_for(source)
    if locked > 0:
        message = f"Too many failed logins from {source}. Try again in {_ago(locked)}."
        return _login_page(request, target, message, status_code=429)
    account = await services.store.get_web_admin(username.strip())
    ok = await verify_password(account.password_hash if account else None, password)
    if not ok or account is None:
        if limiter.failed(source):
            log.warning("web login locked out for %s after repeated failures", source)
            await _audit(services, "web-lockout", source, username)
        else:
            log.info("web login failed for %r from %s", username[:64], source)
        return _login_page(request, target, "Wrong user name or password.", status_code=401)
    limiter.succeeded(source)
    cookie, _ = services.sessions.create(account.username)
    log.info("web login: %s from %s", account.username, source)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=int(services.sessions.lifetime),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


async def _audit(services: Services, kind: str, source: str, username: str) -> None:
    """Record a lock-out in the security events (best effort: never fails the request)."""
    try:
        await services.store.append_security_event(
            time.time(), kind, source, "web-login-failures", {"username": username[:64]}
        )
    except Exception:
        log.warning("could not record the web lock-out of %s", source, exc_info=True)


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End this browser's session (needs the session's CSRF header, like every write)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        _services(request).sessions.end(cookie)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# ----------------------------------------------------------------------------------- static


_STATIC_FILES: Final = {
    p.name: p for p in STATIC_DIR.iterdir() if p.is_file() and p.suffix in _STATIC_TYPES
}


@router.get("/static/{name}")
async def static_file(name: str) -> Response:
    """The pages' script and style sheet (public; only files shipped in the package)."""
    path = _STATIC_FILES.get(name)
    if path is None:
        raise ApiError(404, f"no static file {name!r}")
    return FileResponse(
        path,
        media_type=_STATIC_TYPES[path.suffix],
        headers={"Cache-Control": "max-age=300"},
    )


# ------------------------------------------------------------------------------------ pages


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=303)


@router.get("/ui")
async def ui_root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=303)


@router.get("/ui/")
async def dashboard(request: Request, services: ServicesDep) -> HTMLResponse:
    """Headline numbers (the same `/status` answer `sipbox status` prints), live calls,
    recent bans and calls per hour over the last day."""
    from sipbox.api.routes.security import list_bans
    from sipbox.api.routes.status import get_status

    status = await get_status(services)
    bans = await _optional(list_bans(services))
    recent_bans = sorted(bans.bans, key=lambda b: b.since, reverse=True)[:5] if bans else None
    chart = await _calls_per_hour(services)
    return _render(
        request,
        "dashboard.html",
        "Dashboard",
        status=status,
        recent_bans=recent_bans,
        chart=chart,
    )


async def _calls_per_hour(services: Services, hours: int = 24) -> dict[str, Any] | None:
    """Bars for an inline SVG: calls started in each of the last `hours` hours (from CDRs);
    None when this server keeps no call records."""
    store = services.store
    if getattr(services.context, "calls", None) is None or not hasattr(store, "list_cdrs"):
        return None
    now = time.time()
    first_hour = int(now // 3600) - hours + 1
    since = first_hour * 3600.0
    records = await store.list_cdrs(CdrFilter(since=since), limit=50_000)
    counts = [0] * hours
    answered = [0] * hours
    for record in records:
        index = int(record.start_time // 3600) - first_hour
        if 0 <= index < hours:
            counts[index] += 1
            if record.disposition == "answered":
                answered[index] += 1
    peak = max(counts) or 1
    bars = []
    for i, (count, ok) in enumerate(zip(counts, answered, strict=True)):
        hour = time.strftime("%H:00", time.localtime((first_hour + i) * 3600))
        bars.append(
            {
                "x": i * 20,
                "height": round(100 * count / peak),
                "answered_height": round(100 * ok / peak),
                "count": count,
                "answered": ok,
                "label": hour,
            }
        )
    return {"bars": bars, "peak": peak, "total": sum(counts), "width": hours * 20}


@router.get("/ui/users")
async def users_page(request: Request, services: ServicesDep, offset: int = 0) -> HTMLResponse:
    """Users with live registration state and source addresses; the add-user form."""
    from sipbox.api.routes.users import list_users

    page = await list_users(services, limit=200, offset=max(0, offset))
    sources = _sources_by_number(services)
    return _render(
        request,
        "users.html",
        "Users",
        page=page,
        sources=sources,
        registrar=services.registrar is not None,
    )


def _sources_by_number(services: Services) -> dict[str, list[str]]:
    """number -> "udp:203.0.113.7:5060" of each live registration."""
    registrar = services.registrar
    out: dict[str, list[str]] = {}
    if registrar is None:
        return out
    for binding in registrar.bindings():
        host = binding.source_host
        shown = f"[{host}]" if ":" in host else host
        out.setdefault(binding.number, []).append(
            f"{binding.source_transport}:{shown}:{binding.source_port}"
        )
    return out


@router.get("/ui/users/{number}")
async def user_page(request: Request, number: str, services: ServicesDep) -> HTMLResponse:
    """One user: edit form, password form, its registrations, delete."""
    from sipbox.api.routes.registrations import list_registrations
    from sipbox.api.routes.users import get_user

    user = await get_user(number, services)
    regs = await _optional(list_registrations(services, user=number))
    return _render(
        request,
        "user.html",
        f"User {number}",
        user=user,
        registrations=regs.registrations if regs else None,
    )


@router.get("/ui/registrations")
async def registrations_page(request: Request, services: ServicesDep) -> HTMLResponse:
    from sipbox.api.routes.registrations import list_registrations

    regs = await _optional(list_registrations(services, user=None))
    return _render(
        request, "registrations.html", "Registrations", registrations=regs, now=time.time()
    )


@router.get("/ui/security")
async def security_page(request: Request, services: ServicesDep) -> HTMLResponse:
    """Bans (unban, manual ban), white/black lists, the audit trail."""
    from sipbox.api.routes import security

    bans = await _optional(security.list_bans(services))
    lists: dict[str, Any] = {}
    for kind in ("whitelist", "blacklist"):
        try:
            lists[kind] = security._entries(services, kind)  # type: ignore[arg-type]
        except ApiError:
            lists[kind] = None
    events = await _optional(security.list_events(services, limit=50, since=None))
    return _render(request, "security.html", "Security", bans=bans, lists=lists, events=events)


@router.get("/ui/tokens")
async def tokens_page(request: Request, services: ServicesDep) -> HTMLResponse:
    from sipbox.api.routes.tokens import list_tokens

    return _render(request, "tokens.html", "API tokens", tokens=await list_tokens(services))


@router.get("/ui/admins")
async def admins_page(request: Request, services: ServicesDep) -> HTMLResponse:
    """Web admin accounts: add, reset a password (shown once), delete (never the last)."""
    from sipbox.api.routes.admins import list_admins

    principal = getattr(request.state, "principal", None)
    return _render(
        request, "admins.html", "Web admins", admins=await list_admins(services),
        me=getattr(principal, "name", None),
    )  # fmt: skip


_SECRET_KEY = re.compile(r"password|secret|token|passphrase", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")


def masked_settings(settings: Any) -> list[tuple[str, list[tuple[str, str]]]]:
    """The effective configuration as (section, [(key, shown value)]), secrets masked.

    A key naming a password/secret/token is shown as ``********`` when set; a password inside
    a URL (``postgresql://user:pw@host/db``) is masked too.
    """
    if settings is None:
        return []
    dumped: Mapping[str, Any] = settings.model_dump(mode="json")
    out: list[tuple[str, list[tuple[str, str]]]] = []
    for section, values in dumped.items():
        rows: list[tuple[str, str]] = []
        for key, value in (values or {}).items():
            if _SECRET_KEY.search(key) and value not in (None, "", [], ()):
                shown = "********"
            elif isinstance(value, str):
                shown = _URL_PASSWORD.sub(r"\1********@", value)
            elif isinstance(value, list):
                shown = ", ".join(_URL_PASSWORD.sub(r"\1********@", str(v)) for v in value)
            elif value is None:
                shown = "(not set)"
            else:
                shown = str(value).lower() if isinstance(value, bool) else str(value)
            rows.append((key, shown or "(empty)"))
        out.append((section, rows))
    return out


@router.get("/ui/settings")
async def settings_page(request: Request, services: ServicesDep) -> HTMLResponse:
    """The effective configuration, read-only (it is changed in the TOML file)."""
    settings = getattr(services.context, "settings", None)
    return _render(
        request,
        "settings.html",
        "Settings",
        sections=masked_settings(settings),
        domain=services.realm,
    )


@router.get("/ui/calls")
async def calls_page(request: Request, services: ServicesDep) -> HTMLResponse:
    """Calls in progress, with a hang-up button."""
    from sipbox.api.routes.calls import list_calls

    calls = await _optional(list_calls(services))
    return _render(request, "calls.html", "Live calls", calls=calls)


_DISPOSITIONS: Final = (
    "answered",
    "busy",
    "no-answer",
    "cancelled",
    "failed",
    "rejected",
    "interrupted",
)


@router.get("/ui/cdr")
async def cdr_page(
    request: Request,
    services: ServicesDep,
    number: str = "",
    disposition: str = "",
    offset: int = 0,
) -> HTMLResponse:
    """Call records, newest first, filtered by number and disposition, 50 a page."""
    from sipbox.api.routes.cdr import list_cdr

    disposition = disposition if disposition in _DISPOSITIONS else ""
    page = await list_cdr(
        services,
        since=None,
        until=None,
        number=number.strip() or None,
        disposition=disposition or None,
        limit=50,
        offset=max(0, offset),
    )
    query = {k: v for k, v in (("number", number.strip()), ("disposition", disposition)) if v}
    return _render(
        request,
        "cdr.html",
        "Call records",
        page=page,
        number=number,
        disposition=disposition,
        dispositions=_DISPOSITIONS,
        query="&".join(f"{k}={quote(v, safe='')}" for k, v in query.items()),
    )


def _planned(item: NavItem) -> Any:
    async def planned_page(request: Request) -> HTMLResponse:
        return _render(request, "planned.html", item.label, item=item)

    planned_page.__name__ = f"planned_{item.path.strip('/').replace('/', '_')}"
    return planned_page


for _item in NAV:
    if _item.planned:
        router.add_api_route(_item.path, _planned(_item), methods=["GET"])
