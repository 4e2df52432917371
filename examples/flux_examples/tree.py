"""A family of executions: the parent spawns two branches, each branch spawns one leaf.

Leaves run `flux_examples.longrun`, so cancelling the parent shows the cascade.
Input: {"steps": 5, "stepSeconds": 1}
"""

import asyncio

LEAF = "flux_examples.longrun:main"
BRANCH = "flux_examples.tree:branch"


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
