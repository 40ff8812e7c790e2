"""Keep secrets out of every message: clean keys on the way in, redact text on the way out.

A key pasted from a secrets file often ends in a newline. :func:`clean_secret`
strips the whitespace around it and refuses a key that still holds
whitespace, control or non-ASCII characters, naming it by its prefix only.
:func:`redact` removes anything shaped like a Stripe or GitHub secret, and
whatever follows ``Bearer``, from a text: by pattern, so a key is caught
however it was quoted, escaped or cut.
"""

from __future__ import annotations

import re

from reconciler.errors import ReconcileError

__all__ = ["REDACTED", "clean_secret", "key_prefix", "redact"]

REDACTED = "[redacted]"

_PREFIXES = r"(?:sk|rk|pk)_(?:test_|live_)?|whsec_|gh[pousr]_|github_pat_"
# Atomic: "sk_live_****1234" (a masked key) is not "sk_" followed by the key "live_".
_SECRET = re.compile(rf"(?<![A-Za-z0-9_])((?>{_PREFIXES}))[A-Za-z0-9_]+")
_BEARER = re.compile(r"(?i)\b(bearer\s+)\S+")
_PREFIX = re.compile(rf"\s*({_PREFIXES})")


def key_prefix(key: str) -> str:
    """What may be shown of a key: its kind (``sk_test_…``), never a character of the secret."""
    found = _PREFIX.match(key)
    return f"{found.group(1)}…" if found else "…"


def redact(text: str, *known: str) -> str:
    """``text`` without secrets: the ``known`` ones (and each of their parts), then by pattern."""
    for secret in known:
        for part in (secret, *secret.split()):
            if len(part) >= 8:
                text = text.replace(part, REDACTED)
    text = _BEARER.sub(rf"\g<1>{REDACTED}", text)
    return _SECRET.sub(rf"\g<1>{REDACTED}", text)


def clean_secret(name: str, value: str) -> str:
    """``value`` without surrounding whitespace; refused if whitespace or controls remain inside.

    The refusal names the variable and the key's prefix only.
    """
    key = value.strip()
    if any(not ("!" <= ch <= "~") for ch in key):
        raise ReconcileError(
            f"{name} ({key_prefix(key)}) holds a space, a line break, a control or a non-ASCII "
            "character inside the key; copy the key again"
        )
    return key
