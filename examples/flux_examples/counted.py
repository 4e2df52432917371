"""longrun whose steps say when their work begins: counting those lines in the runner's log counts how
often each step's work really ran, across restarts, evictions and resumes (the fault tests use it).

Input: {"steps": 10, "stepSeconds": 0.5, "cleanupSeconds": 0}; cleanupSeconds makes a cancel's cleanup
take that long (still within the grace period: the outcome stays Graceful).
"""

import asyncio


async def work(ctx, index: int, seconds: float) -> dict:
    ctx.log.info("work step-%d begins", index)  # only when the step runs: a recorded step is skipped
    await asyncio.sleep(seconds)
    return {"step": index}


async def main(ctx, input):
    steps = int(input.get("steps", 10))
    seconds = float(input.get("stepSeconds", 0.5))
    try:
        for index in range(1, steps + 1):
            await ctx.step(f"step-{index}", work, ctx, index, seconds)
    except asyncio.CancelledError:
        await asyncio.sleep(float(input.get("cleanupSeconds", 0)))
        await ctx.checkpoint({"cleanedUp": True, "completedSteps": len(ctx.completed_steps)})
        raise
    return {"completedSteps": len(ctx.completed_steps)}
