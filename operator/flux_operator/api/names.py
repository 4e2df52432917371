"""Fixed names that other tools (kubectl, GitOps repos, dashboards) depend on."""

GROUP = "workflows.flux.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "Execution"
PLURAL = "executions"
SINGULAR = "execution"
SHORT_NAMES = ["fx"]

# Children carry their parent's name here; `kubectl get fx -l workflows.flux.dev/parent=X`.
PARENT_LABEL = f"{GROUP}/parent"
# Every object the operator makes for an execution (pod, ServiceAccount, Role, RoleBinding).
EXECUTION_LABEL = f"{GROUP}/execution"
# The annotation way in: `kubectl annotate fx NAME workflows.flux.dev/cancel=<reason>`.
CANCEL_ANNOTATION = f"{GROUP}/cancel"
