"""The fixed names of the operator's Events: posting one again after a crash is a harmless Conflict."""

from __future__ import annotations

import hashlib
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
