"""Workflows of the benchmark suite only. The steps and pause parts' operators run their runners with
`env PYTHONPATH=<repo>/bench/workflows flux-runner`, so no package needs installing.

`steps`: `steps` no-op steps one after another (the steps part).

`nap`: a step, a durable sleep of `sleepSeconds`, a step (the pause part's wake lateness).
"""

import asyncio


async def _work(seconds: float) -> dict:
    await asyncio.sleep(seconds)
    return {"seconds": seconds}


def _nothing() -> None:
    return None


async def steps(ctx, input):
    """`steps` no-op steps, one after another: what a step costs the runner and the API server."""
    count = int(input.get("steps", 100_000))
    for i in range(count):
        await ctx.step(f"step-{i}", _nothing)
    return {"steps": count}


async def nap(ctx, input):
    await ctx.step("before", _work, 0)
    await ctx.sleep(float(input.get("sleepSeconds", 15)))
    return await ctx.step("after", _work, 0)
