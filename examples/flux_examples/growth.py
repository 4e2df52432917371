"""A workflow whose checkpoint only grows: every step returns about `kilobytes` KB (the fault tests
use it to drive a runner into its checkpoint budget).

Input: {"steps": 20, "kilobytes": 200}
"""

import asyncio


async def blob(index: int, kilobytes: int) -> str:
    await asyncio.sleep(0)
    # Digits are not compressible away by anything between here and etcd, and are valid JSON as-is.
    return (str(index % 10) * 1024) * kilobytes


async def main(ctx, input):
    steps = int(input.get("steps", 20))
    kilobytes = int(input.get("kilobytes", 200))
    for index in range(1, steps + 1):
        await ctx.step(f"blob-{index}", blob, index, kilobytes)
    return {"completedSteps": len(ctx.completed_steps)}
