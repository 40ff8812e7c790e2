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


def should_color(stream: IO[Any]) -> bool:
    """Colour only for a terminal, and never when ``NO_COLOR`` is set.

    Following https://no-color.org, any non-empty value of ``NO_COLOR`` turns
    colour off; an empty one is treated as unset.
    """
    if os.environ.get("NO_COLOR", ""):
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except ValueError:  # a closed stream
        return False
