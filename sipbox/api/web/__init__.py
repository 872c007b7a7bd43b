"""The web admin (issue 7): login, sessions with CSRF tokens, lock-out, and the pages.

Why inside `sipbox.api`: the pages are one more client of the same services and the same
authorisation as the REST API (the middleware in `sipbox.api.auth` accepts a bearer token *or*
a session cookie), and the pages' forms call the JSON API itself, so every rule the API
enforces applies to the browser too. Nothing here is built: Jinja2 templates in
``sipbox/api/templates`` and one small script and style sheet in ``sipbox/api/static``.

- `accounts`: web admin passwords (argon2), the first account created at start-up.
- `sessions`: the in-memory session table (cookie -> user, CSRF token) and the per-address
  login lock-out.
- `nav`: the navigation, built from one list (later features add a line there).
- `pages`: the page routes, ``/login`` and ``/logout``.
"""

from sipbox.api.web.accounts import DEFAULT_ADMIN, ensure_web_admin, hash_password, verify_password
from sipbox.api.web.sessions import LoginLimiter, Session, SessionStore

__all__ = [
    "DEFAULT_ADMIN",
    "LoginLimiter",
    "Session",
    "SessionStore",
    "ensure_web_admin",
    "hash_password",
    "verify_password",
]
