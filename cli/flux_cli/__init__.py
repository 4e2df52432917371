"""`kubectl flux`: inspect and cancel Flux executions from the command line.

Layout: pure logic (durations, facts, family, selection, cancelling, render) is free of I/O
and unit tested; kube.py is the only module that talks to the API server; actions.py joins the
two; main.py holds the thin typer commands.
"""
