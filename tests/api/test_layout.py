"""The four roles import one way: everything depends on flux_api, nothing on the operator, and the
runner (the base of every workflow image) carries nothing of the operator or the CLI."""

from __future__ import annotations

import ast
import re
from importlib import metadata
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
PACKAGES = {"flux_api": REPO / "api" / "flux_api", "flux_runner": REPO / "runner" / "flux_runner",
            "flux_operator": REPO / "operator" / "flux_operator", "flux_cli": REPO / "cli" / "flux_cli"}
ALLOWED = {"flux_api": set(), "flux_runner": {"flux_api"}, "flux_operator": {"flux_api"}, "flux_cli": {"flux_api"}}


def imported_top_levels(folder: Path) -> set[str]:
    found = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_run_one_way(package: str) -> None:
    ours = imported_top_levels(PACKAGES[package]) & set(PACKAGES)
    assert ours - {package} <= ALLOWED[package]


def requirements(distribution: str, seen: set[str] | None = None) -> set[str]:
    """The distribution and everything it installs, transitively (extras not taken)."""
    seen = set() if seen is None else seen
    name = re.sub(r"[-_.]+", "-", distribution).lower()
    if name in seen:
        return seen
    try:
        requires = metadata.requires(name) or []
    except metadata.PackageNotFoundError:
        return seen  # a requirement whose marker excludes this Python: not installed, not in the image
    seen.add(name)
    for requirement in requires:
        if "extra ==" in requirement:
            continue
        requirements(re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0], seen)
    return seen


def test_the_runner_installs_no_operator_or_cli_dependency() -> None:
    installed = requirements("flux-runner")
    assert {"flux-workflows-api", "httpx", "pydantic"} <= installed
    assert not installed & {"kopf", "typer", "rich", "kubernetes", "prometheus-client", "flux-operator",
                            "kubectl-flux"}


def test_the_api_package_needs_only_pydantic() -> None:
    assert requirements("flux-workflows-api") - {"flux-workflows-api"} <= requirements("pydantic")


def test_the_operator_installs_no_kubernetes_client() -> None:
    # kopf imports `kubernetes` whenever it is installed, and its models alone cost ~55 MB of RSS:
    # the operator's own client is httpx (flux_operator.kube).
    installed = requirements("flux-operator")
    assert {"flux-workflows-api", "kopf", "httpx", "prometheus-client", "pyyaml"} <= installed
    assert not installed & {"kubernetes", "kubernetes-asyncio", "pykube-ng", "typer", "rich", "kubectl-flux"}
