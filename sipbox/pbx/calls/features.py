"""Wires groups, forwarding/DND and feature codes into a `CallService`'s router (issue 4).

Why a separate installer instead of more code in `service.py`: the router is an ordered list of
resolvers that several features extend (external lines add prefix resolvers too); each feature
inserts itself here without the B2BUA or the core service changing. The resulting order:

    feature codes  ->  groups  ->  users with forwarding (instead of the plain UserResolver)
    -> whatever else was registered (lines, trunks)

Call `install_features` before the service takes traffic; it loads the groups into memory.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sipbox.storage.interface import Store

from .featurecodes import FeatureCodeResolver, FeatureCodes
from .forwarding import ForwardingResolver
from .groups import GroupDirectory, GroupResolver

log = logging.getLogger("sipbox.pbx.calls")

__all__ = ["Features", "install_features"]


class Features:
    """What `install_features` built (the API reaches the group cache through it)."""

    __slots__ = ("codes", "forwarding", "groups", "resolver", "tasks")

    def __init__(
        self,
        groups: GroupDirectory,
        resolver: GroupResolver,
        forwarding: ForwardingResolver,
        codes: FeatureCodeResolver | None,
    ) -> None:
        self.groups = groups
        self.resolver = resolver
        self.forwarding = forwarding
        self.codes = codes
        self.tasks: set[asyncio.Task[Any]] = set()


async def install_features(
    service: Any,
    store: Store,
    *,
    domain: str,
    ring_timeout: float = 30.0,
    codes: FeatureCodes | None = None,
) -> Features:
    """Add groups, forwarding and (unless `codes` is None) feature codes to `service.router`;
    sets ``service.groups`` (the cache the API refreshes) and ``service.features``."""
    from sipbox.pbx.user_admin import UserAdmin

    router = service.router
    users = router.users
    groups = GroupDirectory(store)
    await groups.load()
    group_resolver = GroupResolver(groups, users, ring_timeout, router)
    forwarding = ForwardingResolver(users, router)
    resolvers = list(router.resolvers)
    position = resolvers.index(users) if users in resolvers else len(resolvers)
    if users in resolvers:
        resolvers[position] = forwarding
    else:
        resolvers.append(forwarding)
    resolvers.insert(position, group_resolver)
    code_resolver: FeatureCodeResolver | None = None
    features = Features(groups, group_resolver, forwarding, None)
    if codes is not None:
        admin = UserAdmin(store, domain, users.directory)

        def persist(number: str, change: dict[str, Any]) -> None:
            task = asyncio.get_running_loop().create_task(_persist(admin, number, change))
            features.tasks.add(task)
            task.add_done_callback(features.tasks.discard)

        code_resolver = FeatureCodeResolver(codes, users.directory, persist, router)
        resolvers.insert(0, code_resolver)
        features.codes = code_resolver
    router.resolvers[:] = resolvers
    service.groups = groups
    service.features = features
    return features


async def _persist(admin: Any, number: str, change: dict[str, Any]) -> None:
    try:
        await admin.update(number, {"forwarding": change})
    except Exception:
        log.exception("feature code: could not store forwarding of user %s", number)
