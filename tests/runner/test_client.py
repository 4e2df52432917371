"""The runner's API client: paths, headers, token rotation, retries, error types."""

import asyncio
from pathlib import Path

import httpx
import pytest
from flux_api.errors import Failure, classify
from flux_runner.client import MERGE_PATCH, RetryPolicy, TokenFile, _message, ssl_context
from flux_runner.errors import ApiUnavailable, ConfigError, CredentialsError, Forbidden, NotFound
from flux_runner.settings import Settings
from flux_runner.testing import FakeExecutionApi, new_execution

pytestmark = pytest.mark.unit

PATH = "/apis/workflows.flux.dev/v1alpha1/namespaces/team-a/executions/demo"


@pytest.fixture
def api() -> FakeExecutionApi:
    return FakeExecutionApi(new_execution("demo", "flux_examples.quick:main", namespace="team-a"))


def call(api: FakeExecutionApi, token: Path, method: str, *args):
    async def go():
        async with api.client(token) as client:
            return await getattr(client, method)(*args)
    return asyncio.run(go())


def test_get_reads_the_own_execution_with_the_bearer_token(api, token):
    body = call(api, token, "get")
    assert body["metadata"]["name"] == "demo"
    request = api.requests[-1]
    assert (request.method, request.path) == ("GET", PATH)
    assert request.headers["authorization"] == "Bearer token-1"


def test_a_poll_reads_the_own_execution_from_the_api_servers_cache(api, token):
    assert call(api, token, "poll")["metadata"]["name"] == "demo"
    request = api.requests[-1]
    assert (request.method, request.path, request.query) == ("GET", PATH, "resourceVersion=0")
    call(api, token, "get")
    assert api.requests[-1].query == "", "the run's first read is a consistent one"


def test_patch_status_sends_a_merge_patch_to_the_status_subresource(api, token):
    body = call(api, token, "patch_status", {"spawnRequests": []})
    request = api.requests[-1]
    assert (request.method, request.path) == ("PATCH", PATH + "/status")
    assert request.headers["content-type"] == MERGE_PATCH
    assert request.body == {"status": {"spawnRequests": []}}
    assert body["status"]["spawnRequests"] == []


def test_token_is_read_again_for_every_request(api, token):
    async def go():
        async with api.client(token) as client:
            await client.get()
            token.write_text("token-2")  # kubelet rotated the projected token
            await client.get()
    asyncio.run(go())
    assert [r.headers["authorization"] for r in api.requests] == ["Bearer token-1", "Bearer token-2"]


def test_transient_failures_are_retried_until_success(api, token):
    api.failures = [503, 429, httpx.ConnectError("connection refused")]
    body = call(api, token, "get")
    assert body["metadata"]["name"] == "demo"
    assert len(api.requests) == 4


def test_retries_are_bounded(api, token):
    api.failures = [500] * 10
    with pytest.raises(ApiUnavailable, match="failed 4 times, last: HTTP 500"):
        call(api, token, "get")
    assert len(api.requests) == 4  # FAST_RETRY.attempts


@pytest.mark.parametrize(("code", "error"), [(403, Forbidden), (404, NotFound)])
def test_forbidden_and_not_found_fail_at_once_with_their_own_type(api, token, code, error):
    api.failures = [code]
    with pytest.raises(error, match=f"HTTP {code}: injected failure") as caught:
        call(api, token, "get")
    assert caught.value.status == code
    assert len(api.requests) == 1


def test_a_write_before_the_operator_recorded_the_pod_waits_for_it_apart_from_the_retries(api, token, monkeypatch):
    """The API server refuses a runner's write until the operator has recorded the pod it made (the runner's
    token is bound to it): the words say so, and the write is sent again until it lands."""
    from flux_api.errors import NOT_RECORDED_YET
    slept: list[float] = []

    async def no_sleep(seconds):
        slept.append(seconds)
    monkeypatch.setattr(asyncio, "sleep", no_sleep)
    api.failures = [(403, f"admission denied: {NOT_RECORDED_YET}")] * 6 + [503] * 3
    body = call(api, token, "patch_status", {"spawnRequests": []})
    assert body["status"]["spawnRequests"] == [] and len(api.requests) == 10  # 6 waits + 3 of the 4 attempts
    assert slept[:6] == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0]


def test_a_policy_missing_its_params_is_waited_out_but_the_runners_role_is_final(api, token, monkeypatch):
    """One classification (flux_api.errors): a policy whose TenancyPolicy is being replaced says yes moments
    later; the runner's Role grants what its operator made it for, and RBAC's no stays no."""
    async def no_sleep(seconds):
        return None
    monkeypatch.setattr(asyncio, "sleep", no_sleep)
    api.failures = [(403, "ValidatingAdmissionPolicy 'x' with binding 'x' denied request: failed to configure "
                          "binding: no params found for policy binding")] * 3
    call(api, token, "patch_status", {"spawnRequests": []})
    assert len(api.requests) == 4
    api.requests.clear()
    api.failures = [(403, 'User "system:serviceaccount:ns:flux-runner-x" cannot get resource "executionprogresses"')]
    with pytest.raises(Forbidden, match="cannot get resource"):
        call(api, token, "get")
    assert len(api.requests) == 1
    assert classify(403, _message(httpx.Response(403, json={"message": 'User "u" cannot get resource "x"'}))) is \
        Failure.FORBIDDEN, "the runner classifies the API server's message, not the JSON text that quotes it"


def test_waiting_for_the_pod_to_be_recorded_is_bounded(api, token, monkeypatch):
    from flux_api.errors import NOT_RECORDED_YET
    from flux_runner.testing import FAST_RETRY

    async def no_sleep(seconds):
        return None
    monkeypatch.setattr(asyncio, "sleep", no_sleep)
    api.failures = [(403, NOT_RECORDED_YET)] * (FAST_RETRY.early_waits + 1)
    with pytest.raises(Forbidden, match="not recorded this execution's runner pod yet"):
        call(api, token, "patch_status", {"spawnRequests": []})
    assert len(api.requests) == FAST_RETRY.early_waits + 1


def test_a_missing_token_is_a_credentials_error(api, tmp_path):
    with pytest.raises(CredentialsError, match="cannot read service account token"):
        call(api, tmp_path / "absent", "get")


def test_an_empty_token_is_a_credentials_error(tmp_path):
    (tmp_path / "token").write_text("\n")
    with pytest.raises(CredentialsError, match="is empty"):
        TokenFile(tmp_path / "token").read()


def test_backoff_grows_is_capped_and_honours_retry_after():
    policy = RetryPolicy(attempts=10, first_delay=1.0, max_delay=5.0)
    assert 0.5 <= policy.delay(1) <= 1.0
    assert 2.0 <= policy.delay(3) <= 4.0
    assert policy.delay(9) <= 5.0
    assert policy.delay(1, retry_after=3.0) == 3.0
    assert policy.delay(1, retry_after=60.0) == 5.0


def test_settings_come_from_the_pod_environment(tmp_path):
    settings = Settings.from_env({
        "FLUX_EXECUTION_NAME": "demo", "FLUX_EXECUTION_NAMESPACE": "team-a", "FLUX_POD_NAME": "demo-pod",
        "KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443", "FLUX_SA_DIR": str(tmp_path),
    })
    assert settings.api_url == "https://[fd00::1]:443"
    assert settings.token_path == tmp_path / "token"
    assert settings.ca_path == tmp_path / "ca.crt"


def test_the_namespace_falls_back_to_the_service_account_file(tmp_path):
    (tmp_path / "namespace").write_text("from-file\n")
    settings = Settings.from_env({
        "FLUX_EXECUTION_NAME": "demo", "KUBERNETES_SERVICE_HOST": "10.0.0.1",
        "KUBERNETES_SERVICE_PORT": "6443", "FLUX_SA_DIR": str(tmp_path),
    })
    assert settings.namespace == "from-file"
    assert settings.api_url == "https://10.0.0.1:6443"


def test_missing_environment_names_every_missing_variable(tmp_path):
    with pytest.raises(ConfigError, match="FLUX_EXECUTION_NAME, FLUX_EXECUTION_NAMESPACE, KUBERNETES_SERVICE_HOST"):
        Settings.from_env({"KUBERNETES_SERVICE_PORT": "443", "FLUX_SA_DIR": str(tmp_path)})


def test_a_missing_cluster_ca_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot load the cluster CA"):
        ssl_context(tmp_path / "ca.crt")
