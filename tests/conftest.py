"""The suite's fixtures live in the dev package (hack/fluxtest), installed by requirements-dev.txt."""

pytest_plugins = ["fluxtest.plugin"]
