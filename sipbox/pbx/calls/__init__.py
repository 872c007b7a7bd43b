"""Calls between users (issue 4): the B2BUA, target plans, dial plan, header policy, CDRs.

One module per concern: `model.py` (call/leg state), `plan.py` (which legs to ring: the
extension point for groups and forwarding), `routing.py` (number -> plan | reject: the extension
point for groups, lines and trunks), `policy.py` (what crosses between legs), `b2bua.py` (the
SIP logic), `cdr.py` (background record writer), `service.py` (assembly for `app.py`).
See docs/calls.md.
"""

from .b2bua import B2BUA
from .plan import ForkPlan, LegSpec, PlanStep, Reject, TargetPlan
from .routing import RouteContext, Router, UserResolver
from .service import CallService

__all__ = [
    "B2BUA",
    "CallService",
    "ForkPlan",
    "LegSpec",
    "PlanStep",
    "Reject",
    "RouteContext",
    "Router",
    "TargetPlan",
    "UserResolver",
]
