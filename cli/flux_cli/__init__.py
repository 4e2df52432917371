"""`kubectl flux`: inspect and cancel Flux executions from the command line.

Layout, one way down: main.py (entry point) -> one package per feature (executions, schedules, logs), each
with its commands, actions and renderers -> the shared base: app.py (the typer app, the cluster flags,
output), rendering.py (the renderers' base), objects.py (objects read through the flux_api models),
kube.py (the only module that talks to the API server), terminal.py, durations.py, errors.py.
"""
