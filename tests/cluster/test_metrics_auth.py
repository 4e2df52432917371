"""/metrics asks the real API server who is scraping (TokenReview) and whether they may (SubjectAccessReview),
with the chart's RBAC for the operator and the chart's metrics-reader ClusterRole for the scraper; and a
scrape costs no API request while the answers are cached."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest
from fluxtest.identity import SCRAPER_TOKEN_ENV, mint_token
from fluxtest.operators import insecure_tls

pytestmark = pytest.mark.cluster


def scrape(port: int, token: str | None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    request = urllib.request.Request(f"https://127.0.0.1:{port}/metrics", headers=headers)
    try:
        with urllib.request.urlopen(request, context=insecure_tls(), timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def reviews(text: str) -> dict[str, float]:
    found = {}
    for line in text.splitlines():
        if line.startswith("flux_metrics_access_reviews_total{"):
            kind = line.split('kind="', 1)[1].split('"', 1)[0]
            found[kind] = float(line.rsplit(" ", 1)[1])
    return found


@pytest.fixture
def stranger_token(core, namespace) -> str:
    """A real ServiceAccount's token, with no right to /metrics."""
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "stranger"}})
    return mint_token(core, namespace, "stranger")


def test_an_unauthenticated_scrape_is_refused(operator):
    assert scrape(operator.metrics_port, None)[0] == 401
    status, body = scrape(operator.metrics_port, "not-a-token")
    assert status == 401 and "the token is not valid" in body


def test_a_scrape_by_someone_the_api_server_does_not_allow_is_refused(operator, stranger_token, namespace):
    status, body = scrape(operator.metrics_port, stranger_token)
    assert status == 403
    assert f"system:serviceaccount:{namespace}:stranger may not get /metrics" in body
    assert "flux_" not in body


def test_an_allowed_scrape_is_served_and_its_reviews_are_cached(operator, operator_env):
    token = Path(operator_env[SCRAPER_TOKEN_ENV]).read_text()
    status, first = scrape(operator.metrics_port, token)
    assert status == 200 and "flux_leader" in first
    before = reviews(first)
    assert before.get("token", 0) >= 1 and before.get("access", 0) >= 1, "the API server was asked"
    for _ in range(10):
        status, text = scrape(operator.metrics_port, token)
        assert status == 200
    assert reviews(text) == before, "ten more scrapes, no more reviews: the answers are cached"


def test_plain_http_is_not_served(operator):
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=5).read()
