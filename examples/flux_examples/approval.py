"""An approval: prepare, wait for a person's decision (a signal), then go on or stop.

    kubectl flux signal approval approve --data '{"approved": true}' --reason "looks good"

Who approved is the signal's sender, which the API server checked (the plugin signs with your user name),
never a name inside the data, which anyone who may send a signal can write.

The wait holds no pod (phase Waiting, "waiting for signal approve") when it may last longer than the
operator's --durable-wait-after; the signal starts a new pod that skips the steps before it.
Input: {"timeoutSeconds": 86400}   (none: wait for ever)
"""

import asyncio

from flux_runner import SignalTimeout


async def main(ctx, input):
    plan = await ctx.step("prepare", asyncio.sleep, 0.1, {"rows": 42})
    try:
        decision, approver = await ctx.wait_for_signal("approve", timeout=input.get("timeoutSeconds"), with_sender=True)
    except SignalTimeout:
        return {"applied": False, "why": "nobody decided in time"}
    if not (isinstance(decision, dict) and decision.get("approved")):
        return {"applied": False, "why": "rejected", "decision": decision}
    applied = await ctx.step("apply", asyncio.sleep, 0.1, plan["rows"])
    return {"applied": True, "rows": applied, "decision": decision, "approvedBy": approver}
