"""Workflows the runner's signal tests run (importable as tests.runner.signal_workflows)."""


async def twice(ctx, input):
    return [await ctx.wait_for_signal("go"), await ctx.wait_for_signal("go")]


async def named(ctx, input):
    return await ctx.wait_for_signal(input["name"])


async def sleep_until(ctx, input):
    from datetime import datetime

    await ctx.sleep_until(datetime.fromisoformat(input["until"]))
    return "woke"


async def missed_then_taken(ctx, input):
    from flux_runner import SignalTimeout

    try:
        first = await ctx.wait_for_signal("go", timeout=0.05)
    except SignalTimeout:
        first = "timed out"
    return [first, await ctx.wait_for_signal("go")]


async def more_than_can_come(ctx, input):
    return [await ctx.wait_for_signal("go") for _ in range(input["waits"])]
