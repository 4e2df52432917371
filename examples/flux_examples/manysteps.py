"""Many small steps: the checkpoint stays the same size however many have finished.

Input: {"steps": 100000}
"""

from __future__ import annotations


async def main(ctx, input):
    steps = int(input.get("steps", 100_000))
    for index in range(steps):
        await ctx.step(f"step-{index}", lambda: None)
    return {"steps": steps}
