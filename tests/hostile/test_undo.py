"""What cannot be undone stays done: a cancel asked for with the annotation, taken back before the operator saw it."""

from __future__ import annotations

import json

import pytest
from flux_api import CANCEL_ANNOTATION
from fluxtest import manifest
from kubernetes.client.rest import ApiException


@pytest.mark.threat("cancel-undone", f"a tenant cancels with the annotation {CANCEL_ANNOTATION} while the operator "
                    "is down, then removes it, and then sets another reason, before the operator records it",
                    "both refused by the API server (a cancel cannot be undone); once the operator runs, the "
                    "execution ends Cancelled (NotStarted) with the first reason and never gets a pod")
@pytest.mark.timeout(120)
def test_a_cancel_by_annotation_cannot_be_taken_back(tenant, operators, fx, result):
    body = manifest("regret", "flux_examples.quick:main")
    tenant.fx.create(body)
    tenant.fx.patch("regret", {"metadata": {"annotations": {CANCEL_ANNOTATION: "stop it"}}})
    refused = []
    for change in (None, "never mind"):
        with pytest.raises(ApiException) as caught:
            tenant.fx.patch("regret", {"metadata": {"annotations": {CANCEL_ANNOTATION: change}}})
        assert caught.value.status == 422, caught.value.body
        refused.append(json.loads(caught.value.body)["message"])
        assert 'a cancel cannot be undone; the annotation stays "stop it"' in refused[-1], refused[-1]
    tenant.fx.patch("regret", {"metadata": {"annotations": {"note": "other annotations stay free"}}})
    operators.start()
    status = fx.wait_phase("regret", "Cancelled", "Succeeded", "Failed", timeout=60)
    result.figure(f"refused: {refused[0][-90:]!r}; then {status['phase']} ({status['cancellation']['outcome']})")
    assert status["phase"] == "Cancelled" and status["cancellation"]["outcome"] == "NotStarted", status
    assert status["cancellation"]["reason"] == "stop it"
    assert fx.pod("regret") is None
