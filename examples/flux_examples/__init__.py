"""Example workflows for flux-runner: `spec.workflow: flux_examples.<module>:main`."""
