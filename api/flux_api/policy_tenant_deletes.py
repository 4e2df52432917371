"""Admission policies on other ways to have the cluster delete (or the operator patch) what one may not.

- `flux-ttl-needs-delete`: lowering an Execution's ttlSecondsAfterFinished (deleting it sooner) needs `delete`
  on it.
- `flux-deletes-need-delete`: an ownerReference added to an Execution or a Schedule, lower history limits or a
  sooner TTL in a Schedule's template need `delete`; a switch to concurrencyPolicy Replace or signals in a
  Schedule's template need `patch` on executions.

Both look at updates only (a create deletes nothing that exists), and exempt the operator's own writes.
"""

from __future__ import annotations

from typing import Any

from flux_api.admission import (
    NAMESPACE,
    NOT_THE_OPERATOR,
    authorize,
    policy,
    resource_rules,
    string,
    validation,
    variable,
)
from flux_api.names import GROUP, PARENT_LABEL, PLURAL, SCHEDULE_PLURAL

TTL = "flux-ttl-needs-delete"
DELETES = "flux-deletes-need-delete"
# A Schedule's history limits and their defaults: lowering one deletes finished runs.
HISTORY_LIMITS = (("successfulExecutionsHistoryLimit", 3), ("failedExecutionsHistoryLimit", 1),
                  ("cancelledExecutionsHistoryLimit", 1))


def ttl_policy() -> dict[str, Any]:
    # -1 stands for "never": no TTL on the object and no default that applies (children go with their parent).
    fallback = (f"object.metadata.?labels.orValue({{}}).exists(k, k == {string(PARENT_LABEL)}) ? -1 : "
                "params.spec.?defaultTtlSecondsAfterFinished.orValue(-1)")
    variables = [
        variable("fallback", fallback),
        variable("before", "oldObject.spec.?ttlSecondsAfterFinished.orValue(variables.fallback)"),
        variable("after", "object.spec.?ttlSecondsAfterFinished.orValue(variables.fallback)"),
        variable("sooner", "variables.after != -1 && (variables.before == -1 || variables.after < variables.before)"),
    ]
    never = "'never'"
    rule = validation(
        f"!variables.sooner || {authorize(PLURAL, 'delete', 'object.metadata.name', GROUP)}",
        "spec.ttlSecondsAfterFinished: deleting sooner needs delete on the execution",
        f"'spec.ttlSecondsAfterFinished: you may not delete executions in ' + {NAMESPACE} + ' (' + "
        "object.metadata.name + '): ' + string(variables.after) + 's deletes it sooner than ' + "
        f"(variables.before == -1 ? {never} : string(variables.before) + 's')")
    return policy(TTL, resource_rules([(GROUP, PLURAL)], ["UPDATE"]), [rule], variables, [NOT_THE_OPERATOR])


def deletes_policy() -> dict[str, Any]:
    """Other ways to have the cluster delete what one may not delete. An ownerReference added to an Execution or a
    Schedule lets the garbage collector delete it (and what it owns) once that owner is gone, or at once if it
    never existed. On a Schedule, lower history limits delete its finished runs, and a sooner TTL in its template
    deletes the runs it makes. And to have the operator patch them: a switch to Replace cancels the active run,
    and signals in the template are sent to every run; both need `patch` on executions."""
    owners = ("object.metadata.?ownerReferences.orValue([]).filter(r, !(r in "
              "oldObject.metadata.?ownerReferences.orValue([])))")
    template_ttl = "spec.executionTemplate.spec.?ttlSecondsAfterFinished.orValue(variables.defaultTtl)"
    lowered = [f"object.spec.?{f}.orValue({d}) < oldObject.spec.?{f}.orValue({d})" for f, d in HISTORY_LIMITS]
    variables = [
        variable("isSchedule", f"request.resource.resource == '{SCHEDULE_PLURAL}'"),
        variable("addedOwners", owners),
        variable("defaultTtl", "params.spec.?defaultTtlSecondsAfterFinished.orValue(-1)"),
        variable("ttlBefore", f"oldObject.{template_ttl}"),
        variable("ttlAfter", f"object.{template_ttl}"),
        variable("deletesRuns", "variables.isSchedule && (" + " || ".join(lowered) + " || (variables.ttlAfter != -1 && "
                                "(variables.ttlBefore == -1 || variables.ttlAfter < variables.ttlBefore)))"),
        variable("patchesRuns", "variables.isSchedule && ((object.spec.?concurrencyPolicy.orValue('Allow') == "
                                "'Replace' && oldObject.spec.?concurrencyPolicy.orValue('Allow') != 'Replace') || "
                                "object.spec.executionTemplate.spec.?signals.orValue([]) != "
                                "oldObject.spec.executionTemplate.spec.?signals.orValue([]))"),
    ]
    resource = "request.resource.resource"
    may_delete_it = (f"authorizer.group('{GROUP}').resource({resource}).namespace({NAMESPACE})"
                     ".name(object.metadata.name).check('delete').allowed()")
    rules = [
        validation(f"size(variables.addedOwners) == 0 || {may_delete_it}",
                   "metadata.ownerReferences: adding an owner needs delete on the object",
                   f"'metadata.ownerReferences: you may not delete ' + {resource} + ' in ' + {NAMESPACE} + ' (' + "
                   "object.metadata.name + '): an owner lets the garbage collector delete it (' + "
                   "variables.addedOwners[0].kind + ' ' + variables.addedOwners[0].name + ')'"),
        validation(f"!variables.deletesRuns || {authorize(PLURAL, 'delete', None, GROUP)}",
                   "a Schedule's lower history limits or sooner TTL need delete on executions",
                   f"'spec: you may not delete executions in ' + {NAMESPACE} + ': lower history limits or a sooner "
                   "ttlSecondsAfterFinished in the template delete runs of the Schedule'"),
        validation(f"!variables.patchesRuns || {authorize(PLURAL, 'patch', None, GROUP)}",
                   "a switch to concurrencyPolicy Replace, or signals in the template, need patch on executions",
                   f"'spec: you may not patch executions in ' + {NAMESPACE} + ': concurrencyPolicy Replace cancels the "
                   "Schedule\\'s active run, and signals in its template are sent to every run'"),
    ]
    return policy(DELETES, resource_rules([(GROUP, PLURAL), (GROUP, SCHEDULE_PLURAL)], ["UPDATE"]), rules, variables,
                  [NOT_THE_OPERATOR])
