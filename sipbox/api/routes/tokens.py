"""``/tokens``: named API tokens for scripts and monitoring — create, list, revoke.

A token is shown exactly once, in the answer that creates it; the store keeps only its SHA-256
(see `sipbox.api.auth`). Revoking marks it revoked (kept for the audit trail: who had access,
last used when) and empties the token cache, so it stops working with the very next request
rather than after the cache's few seconds. Roles: ``admin`` may change anything, ``read-only``
may only read (a Grafana or Prometheus token should be read-only).
"""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, ConfigDict, Field

from sipbox.api import examples as ex
from sipbox.api.auth import hash_token, new_token
from sipbox.api.deps import ServicesDep
from sipbox.api.errors import ApiError
from sipbox.api.examples import examples
from sipbox.api.routes.common import AUTH_ERRORS, error_responses
from sipbox.storage import ApiToken, TokenRole

__all__ = ["router", "token_out"]

router = APIRouter(prefix="/tokens", tags=["tokens"], responses=AUTH_ERRORS)


class TokenOut(BaseModel):
    """A stored token (never the secret itself)."""

    model_config = ConfigDict(json_schema_extra=examples(ex.TOKEN))

    id: int
    name: str = Field(examples=["grafana"])
    role: TokenRole
    created_at: float
    last_used_at: float | None = Field(description="Last use (epoch s), to within seconds")
    revoked: bool


class TokenCreated(TokenOut):
    """A new token: `token` is shown here and never again."""

    model_config = ConfigDict(json_schema_extra=examples(ex.TOKEN_CREATED))

    token: str = Field(
        description="The bearer token; store it now, it cannot be shown again",
        examples=["sbx_4mV3..."],
    )


class TokenList(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples(ex.TOKEN_LIST))
    total: int
    tokens: list[TokenOut]


class TokenIn(BaseModel):
    """A token to create."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=examples(ex.TOKEN_IN))

    name: str = Field(
        min_length=1, max_length=100, description="Who or what uses it", examples=["grafana"]
    )
    role: TokenRole = Field("read-only", description="admin, or read-only (GET only)")


def token_out(token: ApiToken) -> TokenOut:
    """The public view of a stored token."""
    return TokenOut(
        id=token.id,
        name=token.name,
        role=token.role,
        created_at=token.created_at,
        last_used_at=token.last_used_at,
        revoked=token.revoked,
    )


@router.get("", summary="List API tokens")
async def list_tokens(services: ServicesDep) -> TokenList:
    """Every token, revoked ones included, oldest first."""
    items = [token_out(t) for t in await services.store.list_api_tokens()]
    return TokenList(total=len(items), tokens=items)


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create an API token")
async def create_token(body: TokenIn, services: ServicesDep, response: Response) -> TokenCreated:
    """Create a token; the answer is the only place the token itself ever appears."""
    secret = new_token()
    stored = await services.store.create_api_token(body.name.strip(), hash_token(secret), body.role)
    response.headers["Location"] = f"/tokens/{stored.id}"
    return TokenCreated(**token_out(stored).model_dump(), token=secret)


@router.delete("/{token_id}", summary="Revoke an API token", responses=error_responses(404))
async def revoke_token(token_id: int, services: ServicesDep) -> TokenOut:
    """Revoke at once (the cache is emptied). Revoking the token you are using is allowed; a
    server whose admin tokens are all revoked makes a new one at its next start."""
    store = services.store
    await store.revoke_api_token(token_id)
    services.tokens.invalidate()
    for token in await store.list_api_tokens():
        if token.id == token_id:
            return token_out(token)
    raise ApiError(404, f"no API token with id {token_id}", "token_id")  # pragma: no cover
