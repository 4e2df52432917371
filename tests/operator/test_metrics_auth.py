"""/metrics access: the verdicts, the cache that makes most scrapes free, the budget that keeps a flood of
bad tokens off the API server, and the HTTPS server in front of it (the reviews themselves are asked of a
real API server in tests/cluster/test_metrics_auth.py)."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from flux_api.errors import Failure
from flux_operator import metrics_server
from flux_operator.kube import ApiFailure
from flux_operator.metrics import Metrics
from flux_operator.metrics_auth import ALLOWED_TTL, DENIED_TTL, REVIEW_BURST, Caller, MetricsAccess, Verdict
from localcluster.procs import free_port
from tests.operator.builders import Clock

pytestmark = pytest.mark.unit

PROMETHEUS = Caller("system:serviceaccount:monitoring:prometheus", "u-1", ("system:serviceaccounts",))


class Reviews:
    """Answers as an API server would, and counts what it was asked."""

    def __init__(self, users: dict[str, Caller], allowed: set[str]) -> None:
        self.users, self.allowed, self.asked = users, allowed, {"token": 0, "access": 0}
        self.down = False

    def token(self, token: str) -> Caller | None:
        self.asked["token"] += 1
        if self.down:
            raise ApiFailure("review", Failure.UNREACHABLE)
        return self.users.get(token)

    def access(self, caller: Caller) -> bool:
        self.asked["access"] += 1
        return caller.user in self.allowed


@pytest.fixture
def clock() -> Clock:
    return Clock(1000.0)


@pytest.fixture
def reviews() -> Reviews:
    return Reviews({"good": PROMETHEUS, "nobody": Caller("someone")}, {PROMETHEUS.user})


@pytest.fixture
def access(reviews, clock) -> MetricsAccess:
    return MetricsAccess(reviews.token, reviews.access, clock=clock)


def test_verdicts(access) -> None:
    assert access.check(None)[0] is Verdict.UNAUTHENTICATED
    assert access.check("Basic dXNlcjpwdw==")[0] is Verdict.UNAUTHENTICATED
    assert access.check("Bearer ")[0] is Verdict.UNAUTHENTICATED
    assert access.check("Bearer forged")[0] is Verdict.UNAUTHENTICATED
    verdict, why = access.check("Bearer nobody")
    assert verdict is Verdict.FORBIDDEN and why == "someone may not get /metrics"
    assert access.check("Bearer good") == (Verdict.ALLOWED, "")


def test_a_scrape_every_15_seconds_costs_two_reviews_per_ttl(access, reviews, clock) -> None:
    for _ in range(int(ALLOWED_TTL // 15)):
        assert access.check("Bearer good")[0] is Verdict.ALLOWED
        clock.now += 15
    assert reviews.asked == {"token": 1, "access": 1}
    assert access.check("Bearer good")[0] is Verdict.ALLOWED
    assert reviews.asked == {"token": 2, "access": 2}, "after the TTL the API server is asked again"


def test_a_refusal_is_remembered_briefly(access, reviews, clock) -> None:
    access.check("Bearer forged")
    access.check("Bearer forged")
    assert reviews.asked["token"] == 1
    clock.now += DENIED_TTL + 0.1
    access.check("Bearer forged")
    assert reviews.asked["token"] == 2, "a token may become valid: a refusal is not kept long"


def test_a_flood_of_new_tokens_is_refused_from_the_budget_not_passed_on(access, reviews, clock) -> None:
    # From many pods at once (one pod's share is smaller still: below).
    verdicts = [access.check(f"Bearer random-{i}", f"10.1.{i // 200}.{i % 200}")[0] for i in range(200)]
    assert reviews.asked["token"] == REVIEW_BURST
    assert verdicts.count(Verdict.UNAVAILABLE) == 200 - REVIEW_BURST
    clock.now += 1.0
    assert access.check("Bearer good")[0] in (Verdict.ALLOWED, Verdict.UNAVAILABLE)
    assert reviews.asked["token"] <= REVIEW_BURST + 5, "the budget refills at a few reviews a second"


def test_one_pods_flood_leaves_the_shared_budget_to_others(access, reviews, clock) -> None:
    """A brand-new token (Prometheus's after a rotation is no renewal) from another address is still reviewed
    while one pod sends made-up tokens as fast as it can."""
    from flux_operator.metrics_auth import SOURCE_REVIEW_BURST
    for second in range(10):
        clock.now += 1.0
        flood = [access.check(f"Bearer made-up-{second}-{i}", "10.1.0.9")[0] for i in range(50)]
        assert flood.count(Verdict.UNAVAILABLE) >= 50 - SOURCE_REVIEW_BURST
        assert access.check(f"Bearer good-{second}" if second else "Bearer good", "10.1.0.2")[0] \
            in (Verdict.ALLOWED, Verdict.UNAUTHENTICATED), f"refused after {second} s of one pod's flood"


def test_prometheus_renews_its_answer_while_a_flood_of_made_up_tokens_spends_the_budget(access, reviews,
                                                                                       clock) -> None:
    """Any pod may send made-up tokens; a token allowed lately renews from a budget of its own."""
    assert access.check("Bearer good")[0] is Verdict.ALLOWED
    clock.now += ALLOWED_TTL + 1  # its answer expired
    for second in range(30):  # 30 made-up tokens a second, every second: the shared budget stays spent
        clock.now += 1.0
        for i in range(30):
            access.check(f"Bearer made-up-{second}-{i}")
        if second % 15 == 14:  # a scrape every 15 s
            assert access.check("Bearer good")[0] is Verdict.ALLOWED, f"blind after {second} s of flood"
    assert access.check("Bearer made-up-again")[0] is Verdict.UNAVAILABLE, "the flood still gets no reviews"


def test_an_api_server_that_cannot_answer_makes_it_unavailable_and_nothing_is_cached(access, reviews) -> None:
    reviews.down = True
    assert access.check("Bearer good")[0] is Verdict.UNAVAILABLE
    reviews.down = False
    assert access.check("Bearer good")[0] is Verdict.ALLOWED


def test_tokens_are_kept_only_as_digests(access) -> None:
    access.check("Bearer good")
    assert "good" not in repr(access._callers._data)


# --- the HTTPS server -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def served():
    metrics = Metrics()
    metrics.leader.set(1)
    reviews = Reviews({"good": PROMETHEUS, "nobody": Caller("someone")}, {PROMETHEUS.user})
    access = MetricsAccess(reviews.token, reviews.access)
    context = metrics_server.self_signed_context()
    port = free_port()
    server = metrics_server.serve(port, metrics.registry, access, lambda: context, host="127.0.0.1")
    yield port
    server.shutdown()


def scrape(port: int, token: str | None, path: str = "/metrics") -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    insecure = ssl.create_default_context()
    insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE  # self-signed
    request = urllib.request.Request(f"https://127.0.0.1:{port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, context=insecure, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_the_server_answers_each_verdict_over_tls(served) -> None:
    assert scrape(served, None)[0] == 401
    assert scrape(served, "nobody") == (403, "someone may not get /metrics\n")
    status, body = scrape(served, "good")
    assert status == 200 and "flux_leader 1.0" in body
    assert scrape(served, "good", "/other")[0] == 404


def test_plain_http_gets_no_metrics(served) -> None:
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        with urllib.request.urlopen(f"http://127.0.0.1:{served}/metrics", timeout=5) as r:
            assert "flux_leader" not in r.read().decode()
    assert scrape(served, "good")[0] == 200, "a failed handshake costs the server nothing"


def test_the_certificate_is_self_signed_for_this_host(served) -> None:
    pem = ssl.get_server_certificate(("127.0.0.1", served))
    assert "BEGIN CERTIFICATE" in pem


def test_the_operator_never_imports_the_crypto_library() -> None:
    code = ("import sys, flux_operator.main, flux_operator.runtime, flux_operator.metrics_server; "
            "from flux_operator import metrics_server as m; m.self_signed_context(); "
            "print(json.dumps(sorted(k for k in sys.modules if k.startswith('cryptography'))))")
    out = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [], "made in a child process: about 11 MB the operator does not carry"
