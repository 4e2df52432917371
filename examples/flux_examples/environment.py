"""Reports what the runner pod was given: environment variables and mounted paths.

Input: {"names": ["MODE"], "paths": ["/scratch"]}
"""

import os


def report(names: list[str], paths: list[str]) -> dict:
    return {"env": {name: os.environ.get(name) for name in names},
            "paths": {path: os.path.isdir(path) for path in paths}}


async def main(ctx, input):
    return await ctx.step("report", report, list(input.get("names", [])), list(input.get("paths", [])))
