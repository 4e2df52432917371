"""Fails on its first run after one finished step; a retry resumes from the checkpoint and succeeds.

Input: {"failures": 1, "runSeconds": 0}: how many runs fail before one succeeds, and how long each run
works before it fails or returns (saying so in the log). The "prepare" step runs once in all: a retry
finds it in the checkpoint and reuses its result.
"""

import asyncio
import time


def prepare() -> dict:
    return {"preparedAt": time.time()}


async def main(ctx, input):
    failures = int(input.get("failures", 1))
    runs_before = sum(1 for name in ctx.completed_steps if name.startswith("run-"))
    await ctx.step(f"run-{runs_before + 1}", lambda: runs_before + 1)  # one record per run
    prepared = await ctx.step("prepare", prepare)
    ctx.log.info("run %d works for %ss", runs_before + 1, input.get("runSeconds", 0))
    await asyncio.sleep(float(input.get("runSeconds", 0)))
    if runs_before < failures:
        raise RuntimeError(f"transient failure in run {runs_before + 1}")
    return {"runs": runs_before + 1, "preparedAt": prepared["preparedAt"]}
