"""The execution state machine, pure: observed state in, actions out (entry point: `machine.decide`).

machine.py decides; cancel.py is the whole cancel path (which cancel, when, signal, escalate, conclude);
children.py and runner.py make what the runner asks for and what it needs; timing.py the times waited
for; actions.py the vocabulary. The kopf-side shell that feeds it and applies its actions is
flux_operator/reconcile.py.
"""
