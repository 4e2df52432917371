"""A workflow that does not stop when asked: what the two non-graceful outcomes look like.

Input: {"onCancel": "ignore"} keeps working through the grace period, so it is SIGKILLed (Killed).
       {"onCancel": "finish"} swallows the cancel and returns at once (the cancel came TooLate).
"""

import asyncio


async def main(ctx, input):
    behaviour = input.get("onCancel", "ignore")
    if behaviour not in ("ignore", "finish"):
        raise ValueError("input.onCancel must be 'ignore' or 'finish'")
    await ctx.step("started", lambda: "started")
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        if behaviour == "finish":
            return {"finished": "despite the cancel"}
        ctx.log.info("ignoring the cancel")
        while True:  # deliberately bad: a real workflow cleans up and re-raises
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue
    return {"finished": "normally"}
