"""A workflow whose step results outgrow the checkpoint budget: it must fail once, clearly.

Input: {"steps": 3, "kilobytes": 200}: each step returns that many kilobytes.
"""

from __future__ import annotations


async def main(ctx, input):
    steps, size = int(input.get("steps", 3)), int(input.get("kilobytes", 200))
    for index in range(steps):
        await ctx.step(f"chunk-{index}", lambda: "x" * (size * 1024))
    return "all chunks stored"
