"""Connecting as kubectl does: --kubeconfig and --context, $KUBECONFIG, ~/.kube/config, else the in-cluster
service account; every problem is one line (KubeconfigError)."""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.config.config_exception import ConfigException

from flux_cli.kube import DEFAULT_REQUEST_TIMEOUT, Kube
from flux_cli.kube_errors import KubeconfigError

IN_CLUSTER_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def _kubeconfig_paths(kubeconfig: str | None) -> str | None:
    """The kubeconfig to load like kubectl picks it; None means "none found"."""
    if kubeconfig:
        path = Path(kubeconfig).expanduser()
        if not path.is_file():
            raise KubeconfigError(f"kubeconfig {kubeconfig} does not exist")
        return str(path)
    env = os.environ.get("KUBECONFIG", "")
    if env.strip():
        # kubectl skips missing entries in a KUBECONFIG list, but not a list that names nothing.
        existing = [p for p in env.split(os.pathsep) if p and Path(p).expanduser().is_file()]
        if not existing:
            raise KubeconfigError(f"KUBECONFIG={env} names no existing file")
        return os.pathsep.join(existing)
    default = Path("~/.kube/config").expanduser()
    return str(default) if default.is_file() else None


def connect(
    kubeconfig: str | None = None,
    context: str | None = None,
    *,
    request_timeout: tuple[float, float] = DEFAULT_REQUEST_TIMEOUT,
) -> Kube:
    """A Kube for --kubeconfig/--context as kubectl would resolve them.

    Order: the given file, else $KUBECONFIG, else ~/.kube/config, else the in-cluster service account.
    The default namespace is the context's namespace, else "default".
    """
    configuration = k8s.Configuration()
    paths = _kubeconfig_paths(kubeconfig)
    if paths is None:
        return _connect_in_cluster(configuration, context, request_timeout)
    try:
        contexts, current = k8s_config.list_kube_config_contexts(paths)
        chosen = current
        if context:
            chosen = next((c for c in contexts if c.get("name") == context), None)
            if chosen is None:
                known = ", ".join(sorted(str(c.get("name")) for c in contexts)) or "none"
                raise KubeconfigError(f'context "{context}" not found in {paths} (contexts: {known})')
        k8s_config.load_kube_config(
            config_file=paths, context=context, client_configuration=configuration, persist_config=False
        )
    except ConfigException as error:
        raise KubeconfigError(f"kubeconfig {paths}: {_one_line(str(error))}") from None
    except (OSError, yaml.YAMLError) as error:
        raise KubeconfigError(f"cannot read kubeconfig {paths}: {_one_line(str(error))}") from None
    namespace = ((chosen or {}).get("context") or {}).get("namespace") or "default"
    return Kube(k8s.ApiClient(configuration), default_namespace=namespace, request_timeout=request_timeout)


def _connect_in_cluster(
    configuration: k8s.Configuration, context: str | None, request_timeout: tuple[float, float]
) -> Kube:
    if not os.environ.get("KUBERNETES_SERVICE_HOST"):
        raise KubeconfigError("no kubeconfig found: use --kubeconfig, set KUBECONFIG or create ~/.kube/config")
    if context:
        raise KubeconfigError(f'--context "{context}" needs a kubeconfig, and none was found')
    try:
        k8s_config.load_incluster_config(client_configuration=configuration)
    except ConfigException as error:
        raise KubeconfigError(f"in-cluster configuration: {_one_line(str(error))}") from None
    try:
        namespace = Path(IN_CLUSTER_NAMESPACE_FILE).read_text().strip() or "default"
    except OSError:
        namespace = "default"
    return Kube(k8s.ApiClient(configuration), default_namespace=namespace, request_timeout=request_timeout)


def _one_line(text: str) -> str:
    return " ".join(text.split())
