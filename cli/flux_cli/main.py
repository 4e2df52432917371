"""`kubectl flux`: the entry point. Each feature registers its commands on the shared app when imported;
the import order below is the order of `kubectl flux --help`."""

from __future__ import annotations

from importlib import metadata
from typing import Annotated

import typer
from flux_api import API_VERSION
from rich.text import Text

from flux_cli.app import PROG, Cluster, Output, OutputFormat, Reach, app, command, emit, print_error
from flux_cli.errors import ExitCode
from flux_cli.executions import commands as execution_commands  # noqa: F401
from flux_cli.kube import KubeError
from flux_cli.logs import commands as log_commands  # noqa: F401
from flux_cli.rendering import Field, fields

DISTRIBUTION = "kubectl-flux"


@command(app, Reach.CLUSTER)
def version(
    client: Annotated[bool, typer.Option("--client", help="Only the plugin's version; do not contact the cluster.")] = False,
    output: Output = OutputFormat.TEXT,
    *,
    cluster: Cluster,
) -> int:
    """The plugin version and, unless --client, the cluster's version and whether it serves executions."""
    plugin = plugin_version()
    server: str | None = None
    served: bool | None = None
    error: KubeError | None = None
    if not client:
        try:
            kube = cluster.connect()
            server, served = kube.server_version(), kube.execution_api_served()
        except KubeError as failure:
            error = failure
    data = {"plugin": plugin, "apiVersion": API_VERSION, "server": server, "apiInstalled": served}
    emit(output, version_text(plugin, API_VERSION, server, served), data)
    if error is not None:
        print_error(str(error))
        return ExitCode.ERROR
    return ExitCode.OK


def version_text(plugin: str, api_version: str, server: str | None, api_served: bool | None) -> Text:
    rows: list[Field] = [("Plugin", plugin), ("Execution API", api_version)]
    if server is not None:
        rows.append(("Server", server))
        rows.append(("API installed", "yes" if api_served else "no: install the Flux CRD"))
    return fields(rows)


def plugin_version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"


# After `version`: the schedule verbs come last in --help, as they always did.
from flux_cli.schedules import commands as schedule_commands  # noqa: E402,F401


def run() -> None:
    """Console script entry point (`kubectl-flux`; kubectl finds it on PATH as `kubectl flux`)."""
    app(prog_name=PROG)


__all__ = ["app", "run"]
