"""Who may read /metrics: the API server decides, as kube-rbac-proxy does. The bearer token goes to a
TokenReview (who is this?), the answer to a SubjectAccessReview (may they `get` the non-resource URL
/metrics?). Answers are cached, so a scrape every 15 s costs two API requests every two minutes; a flood
of bad tokens is answered from a bounded budget of reviews, not passed on to the API server.

The reviews use a client of their own: `flux_api_requests` keeps counting the workers' requests only.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from flux_operator.kube import ApiFailure, KubeApi

log = logging.getLogger("flux_operator")

TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
# How long an answer holds. A revoked token or binding stops working within ALLOWED_TTL.
ALLOWED_TTL = 120.0
DENIED_TTL = 10.0
CACHE_ENTRIES = 1024
# Reviews this endpoint may ask for: sustained per second, and at once.
REVIEWS_PER_SECOND = 5.0
REVIEW_BURST = 20
# Renewals of a token that was allowed within KNOWN_TTL have a budget of their own: any pod may spend the one
# above on made-up tokens, and Prometheus's scrape must not go blind once its answer expires.
KNOWN_TTL = 3600.0
RENEWALS_PER_SECOND = 1.0
RENEWAL_BURST = 5
# And each source address may spend at most this much of the shared budget: one pod's flood of made-up tokens
# leaves the rest to others (Prometheus's token is new after each rotation, so it is no renewal then).
SOURCE_REVIEWS_PER_SECOND = 1.0
SOURCE_REVIEW_BURST = 10


class Verdict(Enum):
    ALLOWED = 200
    UNAUTHENTICATED = 401
    FORBIDDEN = 403
    UNAVAILABLE = 503  # the API server could not be asked (down, or our budget of reviews is spent)


@dataclass(frozen=True)
class Caller:
    user: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()


class TtlCache:
    """A bounded map whose entries expire; thread-safe."""

    def __init__(self, clock: Callable[[], float], entries: int = CACHE_ENTRIES) -> None:
        self.clock, self.entries = clock, entries
        self._data: OrderedDict[Any, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            found = self._data.get(key)
            if found is None:
                return None
            if found[0] <= self.clock():
                del self._data[key]
                return None
            return found[1]

    def put(self, key: Any, value: Any, ttl: float) -> None:
        with self._lock:
            self._data[key] = (self.clock() + ttl, value)
            self._data.move_to_end(key)
            while len(self._data) > self.entries:
                self._data.popitem(last=False)


class Budget:
    """A token bucket that never waits: a request over budget is refused, not queued."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self._tokens, self._last = float(burst), clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = self.clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True


# Review functions: a token in, who it is (None: not authenticated); a caller in, whether allowed.
TokenReview = Callable[[str], "Caller | None"]
AccessReview = Callable[[Caller], bool]


class MetricsAccess:
    def __init__(self, token_review: TokenReview, access_review: AccessReview, clock=time.monotonic,
                 on_review: Callable[[str], None] = lambda kind: None) -> None:
        self.token_review, self.access_review, self.on_review = token_review, access_review, on_review
        self._callers = TtlCache(clock)
        self._decisions = TtlCache(clock)
        self._budget = Budget(REVIEWS_PER_SECOND, REVIEW_BURST, clock)
        self._known = TtlCache(clock)  # digests of tokens allowed lately: their renewals use _renewals
        self._renewals = Budget(RENEWALS_PER_SECOND, RENEWAL_BURST, clock)
        self._sources = TtlCache(clock)  # source address -> its Budget, while it asks
        self._clock = clock
        self._said: set[str] = set()

    def _source_budget(self, source: str) -> Budget:
        budget = self._sources.get(source)
        if budget is None:
            budget = Budget(SOURCE_REVIEWS_PER_SECOND, SOURCE_REVIEW_BURST, self._clock)
        self._sources.put(source, budget, KNOWN_TTL)
        return budget

    def check(self, authorization: str | None, source: str = "") -> tuple[Verdict, str]:
        """The verdict on a request with this Authorization header from this address, and a line for the
        answer's body."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return Verdict.UNAUTHENTICATED, "a bearer token is required"
        digest = hashlib.sha256(token.strip().encode()).hexdigest()  # tokens are never kept as they are
        known = self._known.get(digest) is not None
        spend = self._source_budget(source)
        cached, unanswered = self._answer(self._callers, digest, "token", "the token",
                                          lambda: self.token_review(token.strip()) or False, known, spend)
        if unanswered:
            return unanswered
        if cached is False:
            return Verdict.UNAUTHENTICATED, "the token is not valid"
        caller: Caller = cached
        allowed, unanswered = self._answer(self._decisions, caller, "access", "access",
                                           lambda: self.access_review(caller), known, spend)
        if unanswered:
            return unanswered
        if not allowed:
            return Verdict.FORBIDDEN, f"{caller.user} may not get /metrics"
        self._known.put(digest, True, KNOWN_TTL)
        return Verdict.ALLOWED, ""

    def _answer(self, cache: TtlCache, key: Any, kind: str, subject: str, review: Callable[[], Any],
                known: bool = False, source: Budget | None = None) -> tuple[Any, tuple[Verdict, str] | None]:
        """A review's answer for `key`: cached, or asked within the budget (the source's share of it first; a
        `known` token's also within the renewals') and cached (a yes for ALLOWED_TTL, a no for DENIED_TTL).
        (None, the verdict) when no answer can be had now."""
        answer = cache.get(key)
        if answer is None:
            shared = (source is None or source.take()) and self._budget.take()
            if not shared and not (known and self._renewals.take()):
                return None, (Verdict.UNAVAILABLE, f"too many {kind} reviews: try again shortly")
            try:
                self.on_review(kind)
                answer = review()
            except ApiFailure as err:
                return None, self._unavailable(f"cannot review {subject}: {err}")
            cache.put(key, answer, ALLOWED_TTL if answer else DENIED_TTL)
        return answer, None

    def _unavailable(self, message: str) -> tuple[Verdict, str]:
        if message not in self._said:  # e.g. the operator may not create TokenReviews: say it once, loudly
            self._said.add(message)
            log.error("/metrics: %s", message)
        return Verdict.UNAVAILABLE, message


def api_reviews(api: KubeApi, path: str = "/metrics") -> tuple[TokenReview, AccessReview]:
    """The two reviews, asked of the API server through `api`."""

    def token_review(token: str) -> Caller | None:
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
        with api.call("review a /metrics token"):
            status = api.request("POST", TOKEN_REVIEWS, body).get("status") or {}
        if not status.get("authenticated"):
            return None
        user = status.get("user") or {}
        extra = tuple(sorted((k, tuple(v)) for k, v in (user.get("extra") or {}).items()))
        return Caller(user.get("username", ""), user.get("uid", ""), tuple(user.get("groups") or ()), extra)

    def access_review(caller: Caller) -> bool:
        spec: dict[str, Any] = {"user": caller.user, "groups": list(caller.groups),
                                "nonResourceAttributes": {"path": path, "verb": "get"}}
        if caller.uid:
            spec["uid"] = caller.uid
        if caller.extra:
            spec["extra"] = {k: list(v) for k, v in caller.extra}
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}
        with api.call(f"review /metrics access of {caller.user}"):
            status = api.request("POST", ACCESS_REVIEWS, body).get("status") or {}
        return bool(status.get("allowed")) and not status.get("denied")

    return token_review, access_review
