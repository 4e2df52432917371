"""Fixed names that other tools (kubectl, GitOps repos, dashboards) and all four roles depend on."""

GROUP = "workflows.flux.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "Execution"
PLURAL = "executions"
SINGULAR = "execution"
SHORT_NAMES = ["fx"]

# Children carry their parent's name here; `kubectl get fx -l workflows.flux.dev/parent=X`.
PARENT_LABEL = f"{GROUP}/parent"
# How deep a child sits in its tree (the root is 0): caps runaway recursion.
DEPTH_LABEL = f"{GROUP}/depth"
# The UID of the tree's root on every child below it (a root has none): how big a tree is, for its cap. A UID,
# not a name: a new root under an old root's name (its children still about) starts a tree of its own.
ROOT_LABEL = f"{GROUP}/root"
# Every object the operator makes for an execution (pod, ServiceAccount, Role, RoleBinding).
EXECUTION_LABEL = f"{GROUP}/execution"
# On every object the operator makes for an execution (its runner's objects, its children): a random token
# whose hash the operator recorded in the execution's status before the create. Only the operator ever knew
# the token before the object existed, so an object under the same name without it is not the operator's.
CREATE_TOKEN_ANNOTATION = f"{GROUP}/create-token"
# The annotation way in: `kubectl annotate fx NAME workflows.flux.dev/cancel=<reason>`.
CANCEL_ANNOTATION = f"{GROUP}/cancel"
# Set by the operator on a child it cancels, so the child reports source `parent`.
CANCELLED_BY_ANNOTATION = f"{GROUP}/cancelled-by"
# Why spec.suspend was set (`kubectl flux suspend --reason`); optional.
SUSPEND_REASON_ANNOTATION = f"{GROUP}/suspend-reason"
# Set by the operator on a child it suspends with its parent: resuming the parent resumes only these.
SUSPENDED_BY_ANNOTATION = f"{GROUP}/suspended-by"
# The reason recorded when activeDeadlineSeconds runs out.
DEADLINE_REASON = "DeadlineExceeded"

MANAGED_BY = {"app.kubernetes.io/managed-by": "flux-operator"}
# Labels whose value alone marks an object as the operator's (other values are anyone's): policy_owned.
OWNED_LABEL_VALUES = {**MANAGED_BY, "app.kubernetes.io/name": "flux-runner"}


def operators_label(key: str, value: str) -> bool:
    """A label only the operator sets: under its prefix, or one of OWNED_LABEL_VALUES (copies never carry them)."""
    return key.startswith(f"{GROUP}/") or OWNED_LABEL_VALUES.get(key) == value
# The distroless "nonroot" user; the runner image runs as it too.
RUNNER_UID = 65532


def runner_pod_name(execution: str) -> str:
    return f"{execution}-runner"


RUNNER_ACCOUNT_PREFIX = "flux-runner-"


def runner_account_name(execution: str) -> str:
    """The runner's ServiceAccount, Role and RoleBinding share this name."""
    return f"{RUNNER_ACCOUNT_PREFIX}{execution}"


def tree_depth(labels: dict[str, str] | None, deepest: int) -> int:
    """An execution's depth in its tree from its label (0 for a root); a mangled label reads as `deepest`."""
    try:
        return int((labels or {}).get(DEPTH_LABEL, "0"))
    except ValueError:
        return deepest


def tree_root(uid: str | None, labels: dict[str, str] | None) -> str:
    """The UID of the root of the tree this execution (of this `uid`) is in: its own for a root, and for a child
    made before the operator set ROOT_LABEL (its own children count from it)."""
    return (labels or {}).get(ROOT_LABEL) or uid or ""


# --- Schedules ---------------------------------------------------------------------------------
SCHEDULE_KIND = "Schedule"
SCHEDULE_PLURAL = "schedules"
SCHEDULE_SINGULAR = "schedule"
SCHEDULE_SHORT_NAMES = ["fxs"]
# Executions a Schedule starts carry its name here (and an ownerReference to it).
SCHEDULE_LABEL = f"{GROUP}/schedule"
# The cron time an execution was started for (RFC 3339).
SCHEDULED_AT_ANNOTATION = f"{GROUP}/scheduled-at"
# Set with spec.cancel when concurrencyPolicy Replace stops a run: the source becomes `replaced`.
REPLACED_BY_ANNOTATION = f"{GROUP}/replaced-by"
# Set by `kubectl flux unschedule --reason`: why the Schedule was suspended.
UNSCHEDULE_REASON_ANNOTATION = f"{GROUP}/unschedule-reason"
# A Schedule's name plus "-" and a 10-digit minute count must stay a 63-character label value.
MAX_SCHEDULE_NAME = 52
# On each run the operator creates: a secret whose hash the Schedule's status held before the create, so a
# run made just before a crash is recognised as the operator's own, and a forged one is not.
RUN_TOKEN_ANNOTATION = f"{GROUP}/run-token"


def runner_pod_name_for(execution: str, retries: int | None) -> str:
    """The runner pod of a retry gets a fresh name, so the finished one can be told apart."""
    return runner_pod_name(execution) if not retries else f"{execution}-runner-{retries}"

# --- Opt-in namespaces ---------------------------------------------------------------------------
# The operator acts only in namespaces labelled `workflows.flux.dev/enabled=true` (or listed with
# --namespace), and never in a namespace whose name starts with `kube-` (Kubernetes reserves them).
ENABLED_NAMESPACE_LABEL = f"{GROUP}/enabled"
RESERVED_NAMESPACE_PREFIX = "kube-"

# --- Concurrency limits ----------------------------------------------------------------------------
LIMIT_KIND = "ConcurrencyLimit"
LIMIT_PLURAL = "concurrencylimits"
LIMIT_SINGULAR = "concurrencylimit"
LIMIT_SHORT_NAMES = ["fxcl"]

# --- Kueue (its plain-Pod integration admits runner pods) ---------------------------------------------
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
KUEUE_ADMISSION_GATE = "kueue.x-k8s.io/admission"
