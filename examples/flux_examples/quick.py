"""A fast workflow for tests and smoke checks: three short steps, sync and async.

Input: {"name": "flux"}
"""

import asyncio


async def greet(name: str) -> str:
    await asyncio.sleep(0)
    return f"hello, {name}"


async def main(ctx, input):
    greeting = await ctx.step("greet", greet, input.get("name", "flux"))
    shout = await ctx.step("shout", str.upper, greeting)  # plain functions work as steps too
    length = await ctx.step("measure", len, shout)
    return {"greeting": greeting, "shout": shout, "length": length}
