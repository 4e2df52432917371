"""The fixed names of the operator's Events: posting one again after a crash is a harmless Conflict.

A fixed name is one a namespace user could take first (the `edit` role may create Events, and an object's UID
is readable): the operator, taking the Conflict for its own earlier post, would then post nothing, and what
the taker wrote would stand alone, a count of missed Schedule times with it. So the name the API server sees
ends in a keyed hash (`sealed`), its key the operator's own UID: the same for every replica and after a
restart, and unknown to anyone who cannot read the operator's ServiceAccount.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any


def event_name(metadata: dict[str, Any], reason: str, key: str = "") -> str:
    """A fixed name per (object, reason, key): posting it again after a crash is a harmless Conflict. A key a
    runner chose (a signal's, a child's name) that is no safe name part is hashed: the API server refuses an
    Event named with `/` or `%`, and the status write behind it would never land."""
    uid = str(metadata.get("uid") or "")
    if key and not _SAFE_KEY.fullmatch(key):
        key = "k" + hashlib.sha256(key.encode()).hexdigest()[:16]
    return f"{metadata.get('name', '')}.{uid[:8]}.{reason.lower()}" + (f".{key}" if key else "")


_SAFE_KEY = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,62}")


def sealed(name: str, key: bytes) -> str:
    """`name` with a keyed hash of it appended; without a key (an identity with no UID), `name` itself."""
    if not key:
        return name
    return f"{name}.{hmac.new(key, name.encode(), hashlib.sha256).hexdigest()[:12]}"
