"""Carrying out the creates decide() asks for (the runner's objects, children), and learning from each
answer: what was made goes into the Memory and the World, a name already taken is looked at once to see
whose it is, and a refusal is kept for the next decision (which fails the execution, or waits and retries).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flux_api import Execution
from flux_api.errors import Failure

from flux_operator import budget, builders
from flux_operator.execution.actions import CreateChild, EnsureRunner, Make
from flux_operator.kube import ApiFailure, KubeApi
from flux_operator.ownership import PREDECESSOR_GRACE, PROGRESS, Memory, controller_uid, proves, refusal
from flux_operator.execution.children import child_key
from flux_operator.world import World

log = logging.getLogger("flux_operator")

# The ServiceAccount and the Role need nothing else to exist; the RoleBinding grants that Role to that account,
# so both must be proven ours first; the pod runs as the account with the binding's rights. Three round trips
# a start, not four.
STAGES = (("serviceAccount", "role"), ("roleBinding",), ("pod",))


@dataclass(frozen=True)
class Sent:
    """A create's answer: the object made, None with no refusal when the name was taken, or the refusal."""

    kind: str
    name: str
    made: dict[str, Any] | None
    refused: ApiFailure | None


class Maker:
    def __init__(self, api: KubeApi, world: World, settings: builders.RunnerSettings,
                 refused: Callable[[Failure], None] = lambda failure: None) -> None:
        self.api, self.world, self.settings = api, world, settings
        self.refused = refused  # counts each refusal (flux_reconcile_errors_total{kind})
        self._senders = ThreadPoolExecutor(max(map(len, STAGES)), thread_name_prefix="runner-objects")

    def _body(self, ex: Execution, key: str) -> dict[str, Any]:
        match key:
            case "serviceAccount":
                return builders.service_account(ex, self.settings)
            case "role":
                return builders.role(ex)
            case "roleBinding":
                return builders.role_binding(ex)
        return builders.runner_pod(ex, self.settings)

    def runner(self, ex: Execution, action: EnsureRunner, memory: Memory, now: datetime) -> bool:
        """Creates the runner's objects stage by stage (STAGES), the objects of one stage together. False at the
        first stage with a refusal: nothing is made that would bind to, or run as, an object not proven ours."""
        for stage in STAGES:
            makes = [make for make in action.makes if make.key in stage]
            if "pod" in stage and makes and "networkPolicy" not in memory.made and not self._network_policy(ex, memory):
                return False
            sent = self._together(ex, makes) if len(makes) > 1 else [self._send(ex, make) for make in makes]
            if not all([self._learn(ex, make, answer, memory, now) for make, answer in zip(makes, sent)]):
                return False
        return True

    def _together(self, ex: Execution, makes: list[Make]) -> list[Sent]:
        return [f.result() for f in [self._senders.submit(budget.carried(self._send, ex, make)) for make in makes]]

    def _send(self, ex: Execution, make: Make) -> Sent:
        body = builders.with_token(self._body(ex, make.key), make.token)
        kind, name = body["kind"], body["metadata"]["name"]
        try:
            return Sent(kind, name, self.api.create(body), None)
        except ApiFailure as err:
            return Sent(kind, name, None, err)

    def _learn(self, ex: Execution, make: Make, sent: Sent, memory: Memory, now: datetime) -> bool:
        """What the create's answer says: made, refused, or the name taken (ours from before a restart, or not)."""
        made = sent.made
        if sent.refused is not None:
            self.refused(sent.refused.kind)
            memory.refusals[make.key] = refusal(f"{sent.kind} {sent.name}", sent.refused.kind,
                                                sent.refused.detail or str(sent.refused), now,
                                                memory.refusals.get(make.key))
            return False
        if made is None:
            made = self._whose(ex, make, sent.kind, sent.name, memory, now)
            if made is None:
                return False
        memory.made[make.key] = made["metadata"].get("uid", "")
        memory.refusals.pop(make.key, None)
        if sent.kind == "Pod" and made.get("spec"):
            self.world.pod_seen(made)  # what the write returned: no second create while the watch lags
        return True

    def progress(self, ex: Execution, memory: Memory) -> None:
        """The runner's ExecutionProgress, asked for once per execution (MakeProgress). Never a failure: without
        it (a CRD not installed yet, a refusal) the runner writes all its checkpoints to the Execution, as before
        it existed. Only the operator may create these (tenants and runners hold no create); one found under the
        name (made before a restart, or a deleted namesake's) is left as it is: the runner reads its owner."""
        try:
            self.api.create(builders.progress_object(ex))
        except ApiFailure as err:
            self.refused(err.kind)
            log.warning("no ExecutionProgress for %s/%s, its runner writes progress to the Execution: %s",
                        ex.namespace, ex.name, err)
        memory.made[PROGRESS] = ""

    def _network_policy(self, ex: Execution, memory: Memory) -> bool:
        """The runner's NetworkPolicy (--runner-egress), before its pod so the network plugin has it first;
        once per execution (a retried pod create sends only the pod)."""
        policy = builders.network_policy(ex, self.settings)
        if policy is None:
            return True
        if (made := self.api.create(policy)) is not None:
            memory.made["networkPolicy"] = made["metadata"].get("uid", "")
            return True
        owner = controller_uid(self.api.read_metadata("NetworkPolicy", ex.namespace, policy["metadata"]["name"]) or {})
        if owner not in (None, ex.metadata.get("uid")):
            raise ApiFailure(f"create NetworkPolicy {ex.namespace}/{policy['metadata']['name']}", Failure.CONFLICT,
                             "still owned by a deleted execution of the same name")
        memory.made["networkPolicy"] = ""
        return True

    def _whose(self, ex: Execution, make: Make, kind: str, name: str, memory: Memory,
               now: datetime) -> dict | None:
        """The object under the name, if it is provably ours; else None, with the refusal recorded: a
        predecessor's object is waited for (the garbage collector takes it), anything else is final."""
        what = f"{kind} {name}"
        meta = self.api.read_metadata(kind, ex.namespace, name)
        uid, before = ex.metadata.get("uid", ""), memory.refusals.get(make.key)
        if meta is None:  # gone meanwhile: try again shortly
            memory.refusals[make.key] = refusal(what, Failure.CONFLICT, f"{what} went away while being created",
                                                now, before, permanent=False)
            return None
        if proves(meta, uid, list(make.proofs), make.uids) or (make.trust_owner and controller_uid(meta) == uid):
            return {"metadata": meta}
        owner = controller_uid(meta)
        if owner and owner != uid and (before is None or now - before.since < PREDECESSOR_GRACE):
            message = f"{what} still belongs to an execution of the same name that was deleted (uid {owner}): " \
                      "waiting for the garbage collector"
            memory.refusals[make.key] = refusal(what, Failure.CONFLICT, message, now, before, permanent=False)
            return None
        message = (f"{what} exists and was not made by the operator for this execution (an ownerReference proves "
                   "nothing): it is not used; delete it, or pick another execution name")
        memory.refusals[make.key] = refusal(what, Failure.CONFLICT, message, now, before, permanent=True)
        return None

    def child(self, ex: Execution, action: CreateChild, memory: Memory, now: datetime) -> bool:
        """Creates the child; False if the API server refused it. A name taken already is looked at once, so
        the next decision sees whose it is."""
        key = child_key(action.name)
        traceparent = builders.execution_traceparent(ex, self.settings) if self.settings.tracing_endpoint else None
        body = builders.child_execution(ex, action.name, action.workflow, action.input, action.token, traceparent)
        try:
            made = self.api.make_execution(ex.namespace, body)
            if made is None:
                made = self.api.get_execution(ex.namespace, action.name)
        except ApiFailure as err:
            self.refused(err.kind)
            memory.refusals[key] = refusal(f"child {action.name}", err.kind, err.detail or str(err), now,
                                           memory.refusals.get(key))
            return False
        memory.refusals.pop(key, None)
        if made is not None:
            self.world.execution_seen(made)
        return True
