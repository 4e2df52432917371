"""A long sleep between steps that holds no pod while it sleeps (a durable sleep).

Past the operator's --durable-wait-after (60 s by default) the runner pod ends when the sleep starts, the
execution shows phase Waiting ("sleeping until <time>"), and at the wake time a new pod skips the steps
before the sleep and runs the ones after it.

Input: {"sleepSeconds": 120, "stepsBefore": 2, "stepsAfter": 2}
"""

import asyncio


async def main(ctx, input):
    before, after = int(input.get("stepsBefore", 2)), int(input.get("stepsAfter", 2))
    for i in range(1, before + 1):
        await ctx.step(f"before-{i}", asyncio.sleep, 0.1, i)
    await ctx.sleep(float(input.get("sleepSeconds", 120)))
    for i in range(1, after + 1):
        await ctx.step(f"after-{i}", asyncio.sleep, 0.1, i)
    return {"stepsBefore": before, "stepsAfter": after}


async def stubborn(ctx, input):
    """Tries to swallow the end of its pod with `except Exception`: it cannot, the sleep still holds no pod."""
    try:
        await ctx.sleep(float(input.get("sleepSeconds", 120)))
    except Exception:  # noqa: BLE001 - the point of this example
        return "swallowed"
    return "woke"
