"""Includable fields nested inside hashes, which the renderer's ``hidden`` cannot reach.

Stripe leaves some fields out of a response unless the request names them in
``expand[]``, also when they sit inside a plain hash: a portal configuration's
``features.subscription_update.products``, a promotion code's
``restrictions.currency_options`` (the stripe-node types mark such fields
optional, ``products?:``, as they mark a price's top-level ``tiers?:``;
Stripe's published example objects leave them out). The renderer only knows
top-level hidden fields and cannot walk an ``expand[]`` path through a plain
hash, so a handler takes these paths out of ``expand[]`` with :func:`take`
(once its events are emitted: events never carry includable fields) and the
object type's ``complete`` hook asks :func:`included` whether to keep them.
"""

from __future__ import annotations

from collections.abc import Collection

from reconciler.emulator.router import Request

__all__ = ["included", "take"]

_INCLUDED = "includable.paths"


def take(req: Request, paths: Collection[str], *, in_list: bool = False) -> None:
    """Move the nested includable ``paths`` named in ``expand[]`` into the request context.

    On a list endpoint the paths are named under ``data.`` (``data.restrictions...``).
    Other ``expand[]`` entries stay for the renderer (which refuses unknown ones).
    """
    expand = req.params.get("expand")
    if not isinstance(expand, list):
        return
    prefix = "data." if in_list else ""
    taken: set[str] = set(req.context.get(_INCLUDED, ()))
    keep: list[str] = []
    for entry in expand:
        path = str(entry)
        bare = path[len(prefix) :] if path.startswith(prefix) else None
        if bare is not None and bare in paths:
            taken.add(bare)
        else:
            keep.append(path)
    req.params["expand"] = keep
    req.context[_INCLUDED] = taken


def included(req: Request, path: str) -> bool:
    """Whether the request asked for the nested includable ``path``."""
    return path in req.context.get(_INCLUDED, ())
