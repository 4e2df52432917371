"""Workflows of the benchmark suite only. The cascade part's operator runs its runners with
`env PYTHONPATH=<repo>/bench/workflows flux-runner`, so no package needs installing.

`steps`: `steps` no-op steps one after another (the steps part).

`tree`: a full tree of Executions, `fanout` children per node down to `depth`; every leaf works one
long step (only a cancel ends it). depth 4, fanout 2: 1 + 2 + 4 + 8 + 16 = 31 Executions.
Input: {"depth": 4, "fanout": 2, "stepSeconds": 3600}

`nap`: a step, a durable sleep of `sleepSeconds`, a step (the pause part's wake lateness).
"""

import asyncio

TREE = "flux_bench_workflows:tree"


async def _work(seconds: float) -> dict:
    await asyncio.sleep(seconds)  # a cancel lands here
    return {"seconds": seconds}


async def tree(ctx, input):
    depth, fanout = int(input.get("depth", 4)), int(input.get("fanout", 2))
    if depth <= 0:
        return await ctx.step("work", _work, float(input.get("stepSeconds", 3600)))
    below = {**input, "depth": depth - 1}
    results = await asyncio.gather(*(ctx.spawn(TREE, below, name=f"c{i}") for i in range(fanout)))
    return {"children": len(results)}


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
