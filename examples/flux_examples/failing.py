"""A workflow that fails in its second step: shows how a failure is recorded."""


def prepare() -> dict:
    return {"prepared": True}


def explode() -> None:
    raise RuntimeError("step 2 failed on purpose")


async def main(ctx, input):
    await ctx.step("prepare", prepare)
    await ctx.step("explode", explode)
    return {"unreachable": True}
