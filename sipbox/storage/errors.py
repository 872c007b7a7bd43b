"""Errors the store raises on purpose, independent of the backend underneath.

Callers (the PBX, the REST API, the CLI) must be able to answer "409 conflict" or "404 not
found" without knowing whether SQLite or PostgreSQL is behind the store, so driver exceptions
never cross this boundary: a unique-constraint violation becomes `AlreadyExists`, a missing row
on update/delete becomes `NotFound`, and any other database failure becomes `StoreError`.
Every message names the field and value involved, because that is what a person needs to fix it.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base class of every error the store raises; also raised for unexpected database failures."""


class AlreadyExists(StoreError):
    """A record with the same unique key (e.g. a user's number) is already stored."""


class NotFound(StoreError):
    """The record to update, delete or revoke does not exist."""


class Refused(StoreError):
    """The write would break a rule the store keeps across rows (e.g. deleting the last web
    admin account); the API answers 409."""


class InvalidValue(StoreError, ValueError):
    """A field value is outside its domain (e.g. ``nat='maybe'`` or a malformed CIDR).

    Also a `ValueError`, so callers validating input generically still catch it. The store checks
    values itself because the database is the truth for configuration: garbage written here would
    be read back by every node.
    """
