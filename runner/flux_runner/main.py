"""`flux-runner`: the entry point of an Execution's pod.

Reads its Execution, runs the workflow as an asyncio task, turns SIGTERM into task
cancellation, and writes the final checkpoint. Exit 0 whenever the outcome is recorded
(even Failed: retrying cannot fix a bad workflow); 1 when the API server failed us, so the pod
restarts and completed steps are reused; 2 when the pod's environment is incomplete.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flux_api import TERMINAL_PHASES, logfields, tracecontext
from flux_api.progress import checkpoint_of

from flux_runner import __version__, deadline, tracing, waitfor
from flux_runner.cancel import CancelSwitch
from flux_runner.client import ExecutionClient
from flux_runner.context import WorkflowContext, create_context
from flux_runner.ending import Ending, describe, ending_of, infrastructure_error
from flux_runner.errors import ApiError, ConfigError, InvalidSpec
from flux_runner.journal import DEFAULT_CHECKPOINT_INTERVAL, Journal, look_for_progress, recorded_checkpoint
from flux_runner.settings import Settings
from flux_runner.spawner import POLL_INTERVAL
from flux_runner.termination import TERMINATION_LOG, write_termination_message
from flux_runner.waits import DEFAULT_DURABLE_AFTER, DurableWait
from flux_runner.workflow import load_workflow, parse_spec

EXIT_OK = 0
EXIT_API_ERROR = 1
EXIT_CONFIG_ERROR = 2

log = logging.getLogger("flux.runner")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flux-runner", description="Runs the workflow of one Execution.")
    parser.add_argument("--version", action="version", version=f"flux-runner {__version__}")
    parser.parse_args(argv)
    configure_logging()
    try:
        settings = Settings.from_env()
        api = ExecutionClient.in_cluster(settings)
    except ConfigError as exc:
        log.error("%s", exc)
        write_termination_message(f"Error: {exc}")
        return EXIT_CONFIG_ERROR
    log.info("flux-runner %s: execution %s/%s, pod %s", __version__, settings.namespace, settings.name,
             settings.pod_name or "-")
    tracing.configure()
    try:
        return asyncio.run(run(api, checkpoint_interval=settings.checkpoint_interval,
                               durable_after=settings.durable_wait_after))
    finally:
        tracing.shutdown()


def configure_logging(env: Mapping[str, str] = os.environ) -> logging.Handler:
    """Text, or with FLUX_LOG_FORMAT=json (the operator passes on its --log-format) one JSON object a line,
    each naming the execution, its uid and the pod (flux_api.logfields)."""
    handler = logging.StreamHandler(sys.stderr)
    if env.get("FLUX_LOG_FORMAT") == "json":
        traced = tracecontext.parse(env.get("TRACEPARENT"))  # with tracing on: its execution's trace and span
        logfields.set_process_fields(namespace=env.get("FLUX_EXECUTION_NAMESPACE"),
                                     execution=env.get("FLUX_EXECUTION_NAME"), uid=env.get("FLUX_EXECUTION_UID"),
                                     pod=env.get("FLUX_POD_NAME"), trace_id=traced.trace_hex if traced else None,
                                     span_id=f"{traced.span_id:016x}" if traced else None)
        handler.setFormatter(logfields.JsonLines())
        handler.addFilter(logfields.FieldsFilter())
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%SZ")
        formatter.converter = time.gmtime  # the Z above must be true
        handler.setFormatter(formatter)
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    # One line per poll request would drown the workflow's own log.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return handler


async def run(
    api: ExecutionClient,
    termination_log: Path = TERMINATION_LOG,
    poll_interval: float = POLL_INTERVAL,
    checkpoint_interval: float = DEFAULT_CHECKPOINT_INTERVAL,
    durable_after: float = DEFAULT_DURABLE_AFTER,
) -> int:
    """Runs the Execution behind `api` to a recorded end; returns the exit code."""
    waitfor.install()  # before the workflow's module is imported
    deadline.install()
    switch = CancelSwitch()
    with signals_cancel(switch):
        async with api:
            try:
                ending = await run_execution(api, switch, poll_interval, checkpoint_interval, durable_after)
            except ApiError as exc:
                log.error("the API server failed us, exiting for a restart: %s", exc)
                write_termination_message(f"Error: {exc}", termination_log)
                return EXIT_API_ERROR
    log.info("finished: %s", ending.summary)
    write_termination_message(ending.summary, termination_log)
    return EXIT_OK


@contextmanager
def signals_cancel(switch: CancelSwitch) -> Iterator[None]:
    # Essential: as PID 1 of its container the runner would otherwise ignore SIGTERM
    # and only the SIGKILL at the end of the grace period would stop it.
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for signum in signals:
        loop.add_signal_handler(signum, switch.request, f"received {signum.name}")
    try:
        yield
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)


async def run_execution(api: ExecutionClient, switch: CancelSwitch, poll_interval: float,
                        checkpoint_interval: float = DEFAULT_CHECKPOINT_INTERVAL,
                        durable_after: float = DEFAULT_DURABLE_AFTER) -> Ending:
    execution = await api.get()
    uid = (execution.get("metadata") or {}).get("uid")
    # The operator makes the ExecutionProgress only once a checkpoint of this runner's reached the Execution:
    # without one there, a first start asks for nothing more (the journal looks for it once it has written).
    started = checkpoint_of(execution) is not None
    progress, again = await look_for_progress(api, uid) if started else (None, True)
    look_for = uid if again else None
    try:
        previous = recorded_checkpoint(execution, progress)
    except InvalidSpec as exc:
        return await finish(Journal(api), Ending.failed(str(exc)))
    if previous is not None and previous.state in TERMINAL_PHASES:
        # Restarted after the final checkpoint was written: it stands.
        log.info("already finished as %s before this start; nothing to do", previous.state)
        return Ending(previous.state, previous.result, previous.error)
    journal = Journal(api, previous, interval=checkpoint_interval, progress=progress is not None, look_for=look_for)
    switch.observe(execution)
    if switch.requested:
        log.info("cancelled before the workflow started: %s", switch.reason)
        return await finish(journal, Ending.cancelled(switch.reason))
    try:
        spec = parse_spec(execution)
    except InvalidSpec as exc:
        return await finish(journal, Ending.failed(str(exc)))
    ctx = create_context(api, execution, journal, switch, poll_interval, durable_after)
    return await finish(journal, await run_workflow(spec.workflow, ctx, spec.input, switch))


async def run_workflow(ref: str, ctx: WorkflowContext, input: dict[str, Any], switch: CancelSwitch) -> Ending:
    task = asyncio.create_task(execute(ref, ctx, input), name=f"workflow {ref}")
    switch.attach(task)
    await asyncio.wait([task])
    broken = infrastructure_error(task)
    if broken is not None:
        raise broken
    if not task.cancelled() and task.exception() is not None and not isinstance(task.exception(), DurableWait):
        log.error("workflow raised %s", describe(task.exception()), exc_info=task.exception())
    return ending_of(task, switch)


async def execute(ref: str, ctx: WorkflowContext, input: dict[str, Any]) -> Any:
    # Imported inside the task: an import error is the workflow's failure, recorded like any other.
    workflow = load_workflow(ref)
    log.info("running %s", ref)
    return await workflow(ctx, input)


async def finish(journal: Journal, ending: Ending) -> Ending:
    await journal.finish(ending.state, ending.result, ending.error, ending.wait)
    return ending


def entry() -> None:
    """The `flux-runner` command: the process ends the moment its run is recorded. A thread the workflow left
    running (not a daemon, or an executor's busy worker) would otherwise hold it open at interpreter exit, and
    with it the pod, whose end is what the operator waits for before it takes the verdict."""
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
