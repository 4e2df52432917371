"""A long, cancellable workflow: `steps` steps of `stepSeconds` seconds, with visible cleanup.

Input: {"steps": 60, "stepSeconds": 1}; with "cleanupTimeout": s, the cleanup also waits up to s seconds for
something that never comes (a release that hangs), under asyncio.timeout, and records how that wait ended.
"""

import asyncio


async def work(index: int, seconds: float) -> dict:
    await asyncio.sleep(seconds)  # stands in for real work; an await is where a cancel lands
    return {"step": index, "seconds": seconds}


async def hung_release(seconds: float) -> str:
    try:
        async with asyncio.timeout(seconds):
            await asyncio.Event().wait()
    except TimeoutError:
        return "TimeoutError"
    return "answered"


async def main(ctx, input):
    steps = int(input.get("steps", 60))
    seconds = float(input.get("stepSeconds", 1))
    if steps < 0 or seconds < 0:
        raise ValueError("input.steps and input.stepSeconds must not be negative")
    try:
        for index in range(1, steps + 1):
            await ctx.step(f"step-{index}", work, index, seconds)
    except asyncio.CancelledError:
        # Cleanup runs inside the grace period; record it so the cancel is visibly graceful. Why it stops tells
        # what to undo: after a suspend or an eviction the execution goes on from its checkpoint.
        done = len(ctx.completed_steps)
        reason = await ctx.stop_reason()
        ctx.log.info("stopped (%s) after %d of %d steps: cleaning up", reason.value, done, steps)
        data = {"cleanedUp": True, "completedSteps": done, "stoppedFor": reason.value}
        if "cleanupTimeout" in input:
            data["cleanupWait"] = await hung_release(float(input["cleanupTimeout"]))
        await ctx.checkpoint(data)
        raise  # re-raise: the runner then records the execution as Cancelled
    return {"completedSteps": len(ctx.completed_steps)}
