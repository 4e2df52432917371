"""A workflow that spawns without restraint: what the spawn caps are for (the fault tests use it).

Input: {"mode": "wide", "width": 60}  spawns `width` trivial children at once; the runner refuses the
                                       one past the cap of children per execution (SpawnLimit). With
                                       "kilobytes": k each child returns k KiB (results too big to mirror).
       {"mode": "deep", "levels": 8}   every execution spawns one child of itself, `levels` deep; the
                                       operator refuses the child that would sit below the depth cap
                                       (Event SpawnRefused, the child mirrored as Failed).
       {"mode": "bomb", "fanout": 2}   every execution spawns `fanout` copies of itself, without end.
"""

import asyncio

SELF = "flux_examples.spawnbomb:main"
LEAF = "flux_examples.spawnbomb:leaf"


async def leaf(ctx, input):
    size = int(input.get("kilobytes", 0))
    return {"leaf": True, **({"pad": "x" * (size * 1024)} if size else {})}


async def main(ctx, input):
    mode = input.get("mode", "wide")
    if mode == "wide":
        width = int(input.get("width", 60))
        leaf_input = {"kilobytes": int(input["kilobytes"])} if input.get("kilobytes") else {}
        results = await asyncio.gather(*(ctx.spawn(LEAF, leaf_input, name=f"w{i}") for i in range(width)))
        return {"children": len(results)}
    if mode == "deep":
        levels = int(input.get("levels", 8))
        if levels <= 0:
            return {"bottom": True}
        child = await ctx.spawn(SELF, {"mode": "deep", "levels": levels - 1}, name="d")
        return {"below": child}
    if mode == "bomb":
        fanout = int(input.get("fanout", 2))
        children = await asyncio.gather(*(ctx.spawn(SELF, input, name=f"b{i}") for i in range(fanout)))
        return {"children": children}
    raise ValueError("input.mode must be 'wide', 'deep' or 'bomb'")
