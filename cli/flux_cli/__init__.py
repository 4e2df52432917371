"""`kubectl flux`: inspect and cancel Flux executions from the command line.

Layout, one way down: main.py (entry point) -> one package per feature (executions and schedules with
their commands, actions and renderers; logs with its commands, following.py and the pure steps.py; schedules
and logs also borrow executions' name check and cancel patch) -> the shared base: app.py (the typer app, the
cluster flags, output), rendering.py (the renderers' base), objects.py (objects read through the flux_api
models), kube.py (the only module that talks to the API server; kube_errors.py phrases its failures),
terminal.py, durations.py, errors.py.
"""
