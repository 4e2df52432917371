"""Families of executions.

`main`: the parent spawns two branches, each branch spawns one leaf. Leaves run `flux_examples.longrun`, so
cancelling the parent shows the cascade. Input: {"steps": 5, "stepSeconds": 1}

`full`: a balanced tree, `fanout` children per execution down to `depth`; each leaf works one step of
`stepSeconds`. depth 4, fanout 2 is 1 + 2 + 4 + 8 + 16 = 31 executions (the cascade benchmark's tree).
Input: {"depth": 4, "fanout": 2, "stepSeconds": 3600}
"""

import asyncio

LEAF = "flux_examples.longrun:main"
BRANCH = "flux_examples.tree:branch"
FULL = "flux_examples.tree:full"
MAX_FANOUT = 8  # a typo in the input must not spawn thousands


async def main(ctx, input):
    # Both branches run at once; their names make the children `<parent>-left` and `<parent>-right`.
    left, right = await asyncio.gather(
        ctx.spawn(BRANCH, input, name="left"),
        ctx.spawn(BRANCH, input, name="right"),
    )
    return {"left": left, "right": right}


async def branch(ctx, input):
    leaf = await ctx.spawn(LEAF, {"steps": input.get("steps", 5), "stepSeconds": input.get("stepSeconds", 1)},
                           name="leaf")
    return {"leaf": leaf}


async def _work(seconds: float) -> dict:
    await asyncio.sleep(seconds)  # a cancel lands here
    return {"seconds": seconds}


async def full(ctx, input):
    depth, fanout = int(input.get("depth", 4)), int(input.get("fanout", 2))
    if depth < 0 or not 1 <= fanout <= MAX_FANOUT:
        raise ValueError(f"depth must not be negative and fanout must be 1..{MAX_FANOUT}: got {depth}, {fanout}")
    if depth == 0:
        return await ctx.step("work", _work, float(input.get("stepSeconds", 3600)))
    below = {**input, "depth": depth - 1}
    # Children `<parent>-c0`, `<parent>-c1`, ...
    results = await asyncio.gather(*(ctx.spawn(FULL, below, name=f"c{i}") for i in range(fanout)))
    return {"children": len(results)}
