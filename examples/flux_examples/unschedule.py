"""A scheduled workflow that stops its own Schedule once a limit is reached.

Input: {"stopWhen": true, "reason": "quota reached"}: with stopWhen it calls ctx.unschedule(reason),
which suspends the Schedule and ends this run as Cancelled with that reason.
"""

import asyncio


async def main(ctx, input):
    await ctx.step("work", lambda: "done")
    if input.get("stopWhen", True):
        try:
            await ctx.unschedule(str(input.get("reason", "limit reached")))
        except asyncio.CancelledError:
            await ctx.checkpoint({"unscheduled": True})
            raise
    return {"schedule": ctx.schedule}
