"""Which objects are the operator's own: the ones it made, never the ones it merely finds under its names.

An ownerReference proves nothing: anyone who may create an object may write one. So before the operator
creates an object for an execution (a runner's ServiceAccount, Role, RoleBinding or pod, or a child) it
records, in the execution's status (which tenants and runners cannot write), the SHA-256 of a random
*creation token*; then it creates the object carrying the token in an annotation; then it records the
object's UID. Only an object with a recorded UID, or one carrying a token whose hash was recorded, is the
operator's. The token exists nowhere but in this process's memory until the object exists, so an object
made beforehand under the same name cannot carry it.

That closes the gap between a create and the record of its UID: if the operator dies there, its successor
finds the object, reads its token, and recognises it by the recorded hash. A successor holds new tokens:
their hashes are added beside the old ones (at most MAX_TOKENS), so objects made by either are recognised.

`Memory` is what one replica knows of an execution beyond the watches: the tokens it holds, the UIDs of
what it made, and the creates the API server refused. Decisions read it (injected, like the clock).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flux_api import Execution
from flux_api.errors import Failure, is_refusal
from flux_api.names import CREATE_TOKEN_ANNOTATION
from flux_api.types import MAX_TOKENS

# How long an object of ours may still belong to a deleted predecessor of the same name before the
# garbage collector has taken it; past that, whoever owns it, it is not ours.
PREDECESSOR_GRACE = timedelta(minutes=2)
# Retries of a create refused for now (a full quota, an unreachable API server): bounded exponential backoff.
FIRST_RETRY_SECONDS, LONGEST_RETRY_SECONDS = 1.0, 30.0


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def with_token(hashes: list[str], token: str) -> list[str]:
    """The recorded hashes with this token's added (the oldest dropped past MAX_TOKENS)."""
    digest = token_hash(token)
    return list(hashes) if digest in hashes else [*hashes, digest][-MAX_TOKENS:]


def controller_uid(metadata: Mapping[str, Any]) -> str | None:
    owners = metadata.get("ownerReferences") or []
    return next((o.get("uid") for o in owners if isinstance(o, dict) and o.get("controller")), None)


def proves(metadata: Mapping[str, Any], owner_uid: str, hashes: list[str], uids: tuple[str, ...] = ()) -> bool:
    """Whether an object is one the operator made for `owner_uid`: controlled by it, and either a UID the
    operator recorded or a creation token whose hash it recorded."""
    if not owner_uid or controller_uid(metadata) != owner_uid:
        return False
    if metadata.get("uid") and metadata.get("uid") in uids:
        return True
    token = (metadata.get("annotations") or {}).get(CREATE_TOKEN_ANNOTATION)
    return isinstance(token, str) and token_hash(token) in hashes


@dataclass
class Refusal:
    """A create that did not happen: the API server refused it, or found an object of that name that is
    not ours. Permanent ones end what asked for it; the others are retried at `retry_at`."""

    what: str  # "Pod job-runner", "child job-left"
    failure: Failure
    message: str
    attempts: int
    since: datetime
    retry_at: datetime | None  # None: permanent

    @property
    def permanent(self) -> bool:
        return self.retry_at is None


def refusal(what: str, failure: Failure, message: str, now: datetime, before: Refusal | None,
            permanent: bool | None = None) -> Refusal:
    """The refusal after one more failed attempt: a refusal by the API server (admission, the schema, a size) is
    final; anything else, the operator's own role lacking a right included, is retried with backoff (1 s doubling
    to 30 s), and a name held by a predecessor for longer than PREDECESSOR_GRACE is final too."""
    attempts = (before.attempts if before else 0) + 1
    since = before.since if before else now
    if permanent is None:
        permanent = is_refusal(failure)
    if permanent:
        return Refusal(what, failure, message, attempts, since, None)
    delay = min(LONGEST_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2 ** (attempts - 1))
    return Refusal(what, failure, message, attempts, since, now + timedelta(seconds=delay))


PROGRESS = "progress"  # Memory.made key of the runner's ExecutionProgress (asked for once, made or not)


@dataclass
class Memory:
    """One replica's knowledge of one execution beyond the watches. Lost on a restart, by design: the
    status records and the tokens on the objects are enough to recognise what was made."""

    new_token: Callable[[], str] = field(default=lambda: secrets.token_urlsafe(24), repr=False)
    tokens: dict[str, str] = field(default_factory=dict)  # object key -> the token this replica puts on it
    made: dict[str, str] = field(default_factory=dict)  # object key -> UID of what this replica made
    refusals: dict[str, Refusal] = field(default_factory=dict)  # object key -> its last failed create

    def token(self, key: str, renew: bool = False) -> str:
        if renew or key not in self.tokens:
            self.tokens[key] = self.new_token()
        return self.tokens[key]


class Memories:
    """Memory per execution (by UID: a successor of the same name starts afresh), bounded. Thread-safe; the
    work queue hands one execution to one worker at a time, so a Memory itself needs no lock."""

    def __init__(self, kept: int = 50_000) -> None:
        self._kept = kept
        self._by_uid: OrderedDict[str, Memory] = OrderedDict()
        self._lock = threading.Lock()

    def of(self, ex: Execution) -> Memory:
        uid = ex.metadata.get("uid", "") or f"{ex.namespace}/{ex.name}"
        with self._lock:
            memory = self._by_uid.get(uid)
            if memory is None:
                memory = self._by_uid[uid] = Memory()
                while len(self._by_uid) > self._kept:
                    self._by_uid.popitem(last=False)
            else:
                self._by_uid.move_to_end(uid)
            return memory

    def forget(self, ex: Execution) -> None:
        with self._lock:
            self._by_uid.pop(ex.metadata.get("uid", ""), None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_uid)
