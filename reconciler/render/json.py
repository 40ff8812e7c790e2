"""The machine render of a plan: the versioned JSON document.

``render_json`` gives exactly the plan file's text (:meth:`Plan.dumps`), the
contract published as ``schemas/plan.schema.json``: sorted keys, two-space
indent, one trailing newline. Pure.
"""

from __future__ import annotations

from reconciler.plan import Plan

__all__ = ["render_json"]


def render_json(plan: Plan) -> str:
    """The plan as its JSON document (``format_version`` "1"), identical to ``plan.dumps()``."""
    return plan.dumps()
