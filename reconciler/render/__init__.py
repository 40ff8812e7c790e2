"""Renders of a plan for people and machines, and whether to colour them.

:func:`render_text` for the terminal, :func:`render_json` for files and
tools, :func:`render_markdown` for a pull-request comment. Every render is a
pure function of the plan returning a string: only ``cli.py`` prints.
"""

from __future__ import annotations

import os
from typing import IO, Any

from reconciler.render.json import render_json
from reconciler.render.markdown import render_markdown
from reconciler.render.text import render_text

__all__ = ["render_json", "render_markdown", "render_text", "should_color"]


def should_color(stream: IO[Any], *, no_color: bool = False) -> bool:
    """Colour for a terminal, unless told otherwise; the first rule that applies wins:

    1. ``no_color`` (the ``--no-color`` option): never.
    2. ``NO_COLOR`` set to any non-empty value (https://no-color.org): never.
    3. ``FORCE_COLOR`` set and non-empty: always (a CI log such as GitHub Actions,
       where output is a pipe but the viewer shows colour), except ``0`` or
       ``false``, which mean never.
    4. Otherwise colour exactly when ``stream`` is a terminal.
    """
    if no_color or os.environ.get("NO_COLOR", ""):
        return False
    forced = os.environ.get("FORCE_COLOR", "")
    if forced:
        return forced.strip().lower() not in ("0", "false")
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except ValueError:  # a closed stream
        return False
