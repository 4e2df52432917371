"""The operator's httpx client: kubeconfig to a client config, the request each call makes, and how an
answer is classified. No server: httpx's MockTransport records the requests and answers them."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from types import SimpleNamespace

import httpx
import kopf
import pytest
from flux_operator import handlers
from flux_operator.eventnames import sealed
from flux_api.errors import Failure
from flux_operator.kube import ApiFailure, KubeApi, RateLimiter, status_error
from flux_operator.kubeconfig import ClientConfig, ConfigError, kubeconfig_path, load_client_config, parse_kubeconfig

pytestmark = pytest.mark.unit

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def kubeconfig(user: dict, cluster: dict | None = None, **extra) -> dict:
    return {"apiVersion": "v1", "kind": "Config", "current-context": "here",
            "contexts": [{"name": "other", "context": {"cluster": "nope", "user": "nope"}},
                         {"name": "here", "context": {"cluster": "c", "user": "u", "namespace": "team"}}],
            "clusters": [{"name": "c", "cluster": cluster or {"server": "https://10.0.0.1:6443/",
                                                               "certificate-authority": "pki/ca.crt"}}],
            "users": [{"name": "u", "user": user}], **extra}


# --- kubeconfig -> ClientConfig ---------------------------------------------------------------------

def test_current_context_with_client_certificate_files_relative_to_the_kubeconfig() -> None:
    cfg = parse_kubeconfig(kubeconfig({"client-certificate": "pki/admin.crt", "client-key": "/abs/admin.key"}),
                           Path("/home/me/.kube"))
    assert cfg.server == "https://10.0.0.1:6443"  # no trailing slash: paths are appended
    assert cfg.ca_file == "/home/me/.kube/pki/ca.crt"
    assert (cfg.cert_file, cfg.key_file) == ("/home/me/.kube/pki/admin.crt", "/abs/admin.key")
    assert cfg.bearer_token() is None and cfg.namespace == "team" and not cfg.insecure


def test_inline_data_is_decoded_to_pem() -> None:
    cfg = parse_kubeconfig(kubeconfig({"client-certificate-data": b64(PEM), "client-key-data": b64("KEY")},
                                      {"server": "https://x", "certificate-authority-data": b64(PEM)}), Path("/"))
    assert (cfg.ca_data, cfg.cert_data, cfg.key_data) == (PEM, PEM, "KEY")
    assert cfg.ca_file is None and cfg.cert_file is None


def test_token_file_is_re_read_after_its_period(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("one\n")
    now = [0.0]
    cfg = parse_kubeconfig(kubeconfig({"token": "inline", "tokenFile": "token"},
                                      {"server": "https://x", "insecure-skip-tls-verify": True}), tmp_path)
    cfg.token_file._clock = lambda: now[0]
    assert cfg.insecure and cfg.bearer_token() == "one"  # the file wins over an inline token
    (tmp_path / "token").write_text("two")
    assert cfg.bearer_token() == "one"
    now[0] += 61
    assert cfg.bearer_token() == "two"
    (tmp_path / "token").write_text("three")
    assert cfg.bearer_token(fresh=True) == "three"  # kopf's re-login after a 401 reads it at once


@pytest.mark.parametrize("user,words", [
    ({"exec": {"command": "aws"}}, "'exec'"),
    ({"auth-provider": {"name": "gcp"}}, "'auth-provider'"),
])
def test_unsupported_authentication_is_a_clear_error(user: dict, words: str) -> None:
    with pytest.raises(ConfigError, match=f"{words}.*not support"):
        parse_kubeconfig(kubeconfig(user), Path("/"))


def test_missing_pieces_are_named() -> None:
    with pytest.raises(ConfigError, match="no current-context"):
        parse_kubeconfig({**kubeconfig({}), "current-context": ""}, Path("/"))
    with pytest.raises(ConfigError, match="no context named 'gone'"):
        parse_kubeconfig(kubeconfig({}), Path("/"), context="gone")
    with pytest.raises(ConfigError, match="has no server"):
        parse_kubeconfig(kubeconfig({}, {"certificate-authority": "ca"}), Path("/"))


def test_kubeconfig_env_takes_the_first_file_and_in_cluster_wins(tmp_path: Path) -> None:
    assert kubeconfig_path({"KUBECONFIG": "/a/one:/b/two", "HOME": "/h"}) == Path("/a/one")
    assert kubeconfig_path({"HOME": "/h"}) == Path("/h/.kube/config")
    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "namespace").write_text("flux-system")
    cfg = load_client_config({"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}, tmp_path)
    assert cfg.server == "https://[fd00::1]:443" and cfg.namespace == "flux-system"
    assert cfg.bearer_token() == "sa-token" and cfg.ca_file is None


def test_an_unreadable_kubeconfig_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read kubeconfig .*missing"):
        load_client_config({"KUBECONFIG": str(tmp_path / "missing")}, tmp_path)


def test_kopf_logs_in_with_the_same_config(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("rotated")
    cfg = parse_kubeconfig(kubeconfig({"tokenFile": "token", "client-key-data": b64("KEY")},
                                      {"server": "https://x:1", "certificate-authority": "ca.crt",
                                       "certificate-authority-data": b64(PEM)}), tmp_path)
    memo = kopf.Memo(runtime=SimpleNamespace(api=SimpleNamespace(config=cfg)))
    info = asyncio.run(handlers.login(memo=memo))
    assert (info.server, info.token, info.default_namespace) == ("https://x:1", "rotated", "team")
    assert (info.ca_data, info.ca_path, info.private_key_data) == (PEM, None, "KEY")  # data wins over a path


# --- the request each call makes ----------------------------------------------------------------------

class Recorder:
    def __init__(self, answer: httpx.Response | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.answer = answer

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer or httpx.Response(200, json={"metadata": {"name": "x"}, "status": {"allowed": True}})

    @property
    def last(self) -> tuple[str, str, str | None, dict | None]:
        r = self.requests[-1]
        return r.method, r.url.path, r.headers.get("content-type"), json.loads(r.content) if r.content else None


def api_with(recorder: Recorder, token: str | None = "t0k") -> KubeApi:
    return KubeApi(ClientConfig(server="https://api.test:6443", token=token), transport=httpx.MockTransport(recorder))


FX = "/apis/workflows.flux.dev/v1alpha1/namespaces/ns/executions"
SCHED = "/apis/workflows.flux.dev/v1alpha1/namespaces/ns/schedules"
MERGE = "application/merge-patch+json"


def test_each_call_builds_its_request() -> None:
    rec = Recorder()
    api = api_with(rec)
    api.get_execution("ns", "a")
    assert rec.last == ("GET", f"{FX}/a", None, None)
    assert rec.requests[-1].headers["authorization"] == "Bearer t0k"
    api.patch_status("ns", "a", {"phase": "Running"}, "42")
    assert rec.last == ("PATCH", f"{FX}/a/status", MERGE, {"status": {"phase": "Running"},
                                                           "metadata": {"resourceVersion": "42"}})
    api.patch_execution("ns", "a", {"spec": {"cancel": None}})
    assert rec.last == ("PATCH", f"{FX}/a", MERGE, {"spec": {"cancel": None}})
    assert api.create_execution("ns", {"metadata": {"name": "c"}})
    assert rec.last[:2] == ("POST", FX)
    assert api.make_execution("ns", {"metadata": {"name": "c"}}) is not None
    assert rec.last[:2] == ("POST", FX)
    api.delete_execution("ns", "a", "u1")
    assert rec.last[:2] == ("DELETE", f"{FX}/a")
    assert rec.last[3] | {} == {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background",
                                "preconditions": {"uid": "u1"}}
    api.delete_pod("ns", "p", 30, "u2")
    assert rec.last[:2] == ("DELETE", "/api/v1/namespaces/ns/pods/p")
    assert rec.last[3]["gracePeriodSeconds"] == 30 and rec.last[3]["preconditions"] == {"uid": "u2"}
    api.get_schedule("ns", "s")
    api.patch_schedule_status("ns", "s", {"active": []}, None)
    assert rec.last == ("PATCH", f"{SCHED}/s/status", MERGE, {"status": {"active": []}})
    api.emit_event({"namespace": "ns", "name": "a"}, "a.started", "Normal", "Started", "m" * 2000)
    assert rec.last[:2] == ("POST", "/api/v1/namespaces/ns/events") and len(rec.last[3]["message"]) == 1024


@pytest.mark.parametrize("kind,path", [
    ("ServiceAccount", "/api/v1/namespaces/ns/serviceaccounts"),
    ("Pod", "/api/v1/namespaces/ns/pods"),
    ("Role", "/apis/rbac.authorization.k8s.io/v1/namespaces/ns/roles"),
    ("RoleBinding", "/apis/rbac.authorization.k8s.io/v1/namespaces/ns/rolebindings"),
])
def test_create_and_read_owned_objects(kind: str, path: str) -> None:
    rec = Recorder(httpx.Response(200, json={"metadata": {"name": "r", "ownerReferences": [
        {"uid": "not-me", "controller": False}, {"uid": "owner", "controller": True}]}}))
    api = api_with(rec, token=None)
    created = api.create({"kind": kind, "metadata": {"name": "r", "namespace": "ns"}})
    assert rec.last[:2] == ("POST", path) and created["metadata"]["name"] == "r"
    assert "authorization" not in rec.requests[-1].headers
    assert api.read_metadata(kind, "ns", "r")["ownerReferences"][1] == {"uid": "owner", "controller": True}
    assert rec.last[:2] == ("GET", f"{path}/r")


def test_leases_reviews_and_discovery() -> None:
    rec = Recorder()
    api = api_with(rec)
    api.get_lease("ns", "l")
    assert rec.last[:2] == ("GET", "/apis/coordination.k8s.io/v1/namespaces/ns/leases/l")
    api.create_lease("ns", {"metadata": {"name": "l"}, "spec": {}})
    assert rec.last[:2] == ("POST", "/apis/coordination.k8s.io/v1/namespaces/ns/leases")
    assert rec.last[3]["kind"] == "Lease"
    api.replace_lease("ns", "l", {"metadata": {"name": "l", "resourceVersion": "7"}})
    assert rec.last[:2] == ("PUT", "/apis/coordination.k8s.io/v1/namespaces/ns/leases/l")
    assert api.allowed({"verb": "create", "group": "", "resource": "pods", "namespace": "ns"})
    assert rec.last[:2] == ("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews")
    assert rec.last[3]["spec"]["resourceAttributes"]["resource"] == "pods"
    assert api.served("/apis/workflows.flux.dev/v1alpha1")
    assert rec.last[:2] == ("GET", "/apis/workflows.flux.dev/v1alpha1")
    assert api.calls == len(rec.requests)


# --- classification of answers ------------------------------------------------------------------------

def status(code: int, message: str) -> httpx.Response:
    return httpx.Response(code, json={"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                      "message": message, "code": code})


def test_a_status_body_gives_the_message_and_other_bodies_the_reason() -> None:
    assert status_error(409, json.dumps({"kind": "Status", "message": "the object has been modified"}),
                        "Conflict").message == "the object has been modified"
    assert status_error(502, "<html>bad gateway</html>", "Bad Gateway").message == "Bad Gateway"
    assert status_error(503, "", "").message == ""


@pytest.mark.parametrize("answer,kind", [
    (status(409, "Operation cannot be fulfilled: the object has been modified"), Failure.CONFLICT),
    (status(404, 'executions "a" not found'), Failure.NOT_FOUND),
    (status(422, "spec.workflow: Required value"), Failure.INVALID),
    (status(403, "forbidden"), Failure.DENIED),
    (status(403, 'executions "a" is forbidden: User "u" cannot patch resource "executions/status"'), Failure.FORBIDDEN),
    (status(429, "too many requests"), Failure.THROTTLED),
    (status(500, "etcdserver: request is too large"), Failure.TOO_LARGE),
    (httpx.Response(503, text="upstream down"), Failure.SERVER),
    (httpx.Response(200, text="not json"), Failure.SERVER),
])
def test_error_answers_are_classified_once(answer: httpx.Response, kind: Failure) -> None:
    api = api_with(Recorder(answer))
    with pytest.raises(ApiFailure) as raised:
        api.patch_status("ns", "a", {"phase": "Running"}, "1")
    assert raised.value.kind is kind
    assert raised.value.status == (answer.status_code if answer.status_code >= 300 else None)
    # Anything below 500 was an answer: the connection works, so health stays green.
    assert (api.last_success > 0) == (answer.status_code < 500 and answer.status_code >= 300)


def test_an_event_refused_because_its_namespace_is_going_is_not_a_failure() -> None:
    """The status write after an Event must still happen in a namespace being deleted."""
    going = status(403, 'events "a.cancelled" is forbidden: unable to create new content in namespace ns because it '
                        'is being terminated')
    assert api_with(Recorder(going)).emit_event({"namespace": "ns", "name": "a"}, "a.c", "Normal", "C", "m") is False
    with pytest.raises(ApiFailure) as raised:
        api_with(Recorder(status(403, "forbidden"))).emit_event({"namespace": "ns", "name": "a"}, "a.c", "Normal",
                                                                 "C", "m")
    assert raised.value.kind is Failure.DENIED, "a policy refusing Events is still an error worth seeing"


def test_an_event_goes_at_once_with_a_spare_token_and_is_deferred_without_one() -> None:
    rec, deferred = Recorder(), []
    api = KubeApi(ClientConfig(server="https://api.test:6443", token="t"), RateLimiter(qps=0.001, burst=2),
                  transport=httpx.MockTransport(rec), event_key=b"")
    api.defer_event = deferred.append
    assert api.emit_event({"namespace": "ns", "name": "a"}, "a.s", "Normal", "Started", "m", deferrable=True)
    assert [r.method for r in rec.requests] == ["POST"] and deferred == [], "a spare token: posted, in order"
    api.get_execution("ns", "a")  # the second token
    assert api.emit_event({"namespace": "ns", "name": "b"}, "b.s", "Normal", "Started", "m", deferrable=True)
    assert len(rec.requests) == 2, "no token to spare: not sent now"
    assert [(e["metadata"]["name"], e["reason"], e["involvedObject"]["name"]) for e in deferred] == \
        [("b.s", "Started", "b")]
    assert deferred[0]["firstTimestamp"], "the time of the decision, not of the post"


def test_event_names_end_in_a_hash_keyed_by_the_operators_uid_asked_for_once() -> None:
    """A namespace user can read an object's UID, so a name made of it alone could be taken first: the operator
    would take the Conflict for its own post and post nothing (eventnames.py)."""
    answers = iter([status(503, "not now"), httpx.Response(201, json={"status": {"userInfo": {"uid": "u-1"}}})])
    requests: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if request.url.path.endswith("/selfsubjectreviews"):
            return next(answers)
        return httpx.Response(201, json={"metadata": {"name": "e"}})
    api = KubeApi(ClientConfig(server="https://api.test:6443", token="t"), transport=httpx.MockTransport(answer))
    names = []
    for _ in range(3):
        api.emit_event({"namespace": "ns", "name": "a"}, "a.0123abcd.started", "Normal", "Started", "m")
        names.append(json.loads(requests[-1].content)["metadata"]["name"])
    assert names[0] == "a.0123abcd.started", "the UID not known yet: the name as it was, and asked again"
    assert names[1] == names[2] == sealed("a.0123abcd.started", b"u-1") != names[0]
    assert sum(r.url.path.endswith("/selfsubjectreviews") for r in requests) == 2, "once known, kept"
    primed = KubeApi(ClientConfig(server="https://api.test:6443", token="t"), transport=httpx.MockTransport(
        lambda request: httpx.Response(201, json={"status": {"userInfo": {"username": "op", "uid": "u-1"}}})))
    assert primed.whoami() == "op" and primed.event_key() == b"u-1" and primed.calls == 1, \
        "the start-up check's answer serves: no second review"


def test_tolerated_failures_come_back_as_values() -> None:
    assert api_with(Recorder(status(404, "gone"))).get_execution("ns", "a") is None
    assert api_with(Recorder(status(409, "exists"))).create_execution("ns", {"metadata": {"name": "a"}}) is False
    assert api_with(Recorder(status(409, "exists"))).make_execution("ns", {"metadata": {"name": "a"}}) is None
    assert api_with(Recorder(status(404, "gone"))).read_metadata("Pod", "ns", "p") is None
    assert api_with(Recorder(status(409, "uid mismatch"))).delete_pod("ns", "p", 1, "u") is None
    terminating = {"kind": "Pod", "metadata": {"name": "p", "deletionTimestamp": "2026-12-05T08:00:00Z"}}
    assert api_with(Recorder(httpx.Response(200, json=terminating))).delete_pod("ns", "p", 1, "u") == terminating
    assert api_with(Recorder(status(404, "not served"))).served("/apis/x/v1") is False


def test_no_answer_is_unreachable_and_transient() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    api = KubeApi(ClientConfig(server="https://api.test"), transport=httpx.MockTransport(refuse))
    with pytest.raises(ApiFailure) as raised:
        api.get_execution("ns", "a")
    assert raised.value.kind is Failure.UNREACHABLE and raised.value.transient
    assert api.last_success == 0.0


def test_each_request_carries_the_connect_and_read_timeouts() -> None:
    seen = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return httpx.Response(200, json={})

    api = KubeApi(ClientConfig(server="https://api.test"), timeout=(2.0, 9.0), transport=httpx.MockTransport(record))
    api.get_schedule("ns", "s")
    assert seen == [{"connect": 2.0, "read": 9.0, "write": 9.0, "pool": 9.0}]


def test_tls_from_inline_certificate_data_and_insecure() -> None:
    pytest.importorskip("cryptography")  # a dev dependency (hack/), not the operator's
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "flux-test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    cfg = parse_kubeconfig(kubeconfig({"client-certificate-data": b64(cert_pem), "client-key-data": b64(key_pem)},
                                      {"server": "https://x", "certificate-authority-data": b64(cert_pem)}), Path("/"))
    context = cfg.ssl_context()
    assert context.check_hostname and context.get_ca_certs()[0]["subject"] == ((("commonName", "flux-test"),),)
    insecure = parse_kubeconfig(kubeconfig({}, {"server": "https://x", "insecure-skip-tls-verify": True}), Path("/"))
    assert not insecure.ssl_context().check_hostname
    broken = parse_kubeconfig(kubeconfig({}, {"server": "https://x", "certificate-authority-data": b64(PEM)}), Path("/"))
    with pytest.raises(ConfigError, match="cannot set up TLS"):
        broken.ssl_context()


def test_each_request_is_told_to_the_metrics_with_its_code_and_a_failed_connection_as_zero() -> None:
    seen: list[tuple[str, str, int]] = []
    api = api_with(Recorder(httpx.Response(404, json={"message": "nope"})))
    api.on_request = lambda verb, path, code, seconds: seen.append((verb, path, code)) if seconds >= 0 else None
    assert api.get_execution("ns", "a") is None
    assert seen == [("GET", f"{FX}/a", 404)]

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    down = KubeApi(ClientConfig(server="https://api.test:6443", token="t"), transport=httpx.MockTransport(refuse))
    down.on_request = lambda verb, path, code, seconds: seen.append((verb, path, code))
    with pytest.raises(ApiFailure):
        down.get_execution("ns", "b")
    assert seen[-1] == ("GET", f"{FX}/b", 0)


def test_time_waited_for_the_rate_limit_is_told_and_none_when_there_was_no_wait() -> None:
    class Waits:
        def __init__(self, waits):
            self.waits = list(waits)

        def acquire(self, lane_name=None, urgent=False):
            return self.waits.pop(0)

    api = KubeApi(ClientConfig(server="https://api.test:6443", token="t"), limiter=Waits([0.0, 0.25]),
                  transport=httpx.MockTransport(Recorder()))
    throttled: list[float] = []
    api.on_throttled = throttled.append
    api.get_execution("ns", "a")
    api.get_execution("ns", "a")
    assert throttled == [0.25]
