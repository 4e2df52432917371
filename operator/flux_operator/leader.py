"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it.

Every replica watches and keeps its World warm; only the holder of the Lease acts. The holder
renews every `renew_every` seconds and steps down if it could not renew within `renew_deadline`;
a standby polls every `retry` seconds and takes the Lease once `duration` has passed without
the holder renewing it.
Every write is a compare-and-swap on the Lease's resourceVersion, so two can never both win.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from flux_api.errors import Failure
from flux_api.timefmt import utcnow

from flux_operator.budget import LEASE_LANE, lane
from flux_operator.kube import ApiFailure, KubeApi

log = logging.getLogger("flux_operator.leader")


def _micro(moment: datetime) -> str:
    # Lease times are metav1.MicroTime: microseconds, always.
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(self, api: KubeApi, namespace: str, name: str, identity: str, duration: float = 15.0,
                 renew_deadline: float = 10.0, retry: float = 2.0, renew_every: float = 6.0,
                 on_started: Callable[[], None] = lambda: None, on_stopped: Callable[[], None] = lambda: None,
                 clock=utcnow) -> None:
        self.api, self.namespace, self.name, self.identity = api, namespace, name, identity
        # A standby polls every `retry` seconds, so it takes over soon after expiry; the leader renews
        # every `renew_every` seconds, which keeps its steady-state traffic at a few requests a minute.
        self.duration, self.renew_deadline, self.retry, self.renew_every = duration, renew_deadline, retry, renew_every
        self.on_started, self.on_stopped, self.clock = on_started, on_stopped, clock
        self._leading = threading.Event()
        self._stopped = threading.Event()
        self._last_renew = 0.0  # monotonic
        self.holder: str | None = None
        self.transitions = 0
        self._lease: dict | None = None  # the Lease as our last successful write returned it
        self._observed: tuple[str | None, str] | None = None
        self._observed_at = 0.0

    @property
    def leading(self) -> bool:
        return self._leading.is_set()

    def run(self) -> None:
        with lane(LEASE_LANE):  # first in line for the client budget: tenants' traffic never delays a renewal
            self._run()

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                won = self.try_acquire_or_renew()
            except ApiFailure as err:
                log.warning("lease %s/%s: %s", self.namespace, self.name, err)
                won = False
            if won:
                self._last_renew = time.monotonic()
                if not self.leading:
                    log.info("%s became the leader (lease %s/%s)", self.identity, self.namespace, self.name)
                    self._leading.set()
                    self.on_started()
            elif self.leading and time.monotonic() - self._last_renew > self.renew_deadline:
                self._step_down("could not renew the lease in time")
            # A failed renewal is retried at once (every `retry` s), not a whole renewal period later.
            self._stopped.wait(self.renew_every if self.leading and won else self.retry)
        if self.leading:
            self.release()

    def stop(self) -> None:
        self._stopped.set()

    def _step_down(self, why: str) -> None:
        log.warning("%s is no longer the leader: %s", self.identity, why)
        self._leading.clear()
        self.on_stopped()

    def try_acquire_or_renew(self) -> bool:
        now = self.clock()
        # The leader renews from the copy its last write returned: one request per renewal, no read.
        lease = self._lease if self.leading else None
        if lease is None:
            lease = self.api.get_lease(self.namespace, self.name)
        if lease is None or not lease.get("metadata"):
            return self._create(now)
        lease = copy.deepcopy(lease)
        spec = lease.setdefault("spec", {})
        holder = spec.get("holderIdentity")
        self.holder = holder
        # Expiry by our own clock since we last saw the record change, as client-go does: the
        # holder's clock may differ from ours, but the time between two of our reads does not.
        record = (holder, str(spec.get("renewTime")))
        if record != self._observed:
            self._observed, self._observed_at = record, time.monotonic()
        expired = time.monotonic() - self._observed_at > (spec.get("leaseDurationSeconds") or 0)
        if holder not in (self.identity, None, "") and not expired:
            return False
        if holder != self.identity:
            spec["acquireTime"] = _micro(now)
            spec["leaseTransitions"] = (spec.get("leaseTransitions") or 0) + 1
        spec.update(holderIdentity=self.identity, leaseDurationSeconds=int(self.duration), renewTime=_micro(now))
        # The PUT carries metadata.resourceVersion: a concurrent writer makes this a Conflict (None).
        self._lease = self.api.replace_lease(self.namespace, self.name, lease)
        if self._lease is not None:
            self.holder = self.identity
            self.transitions = spec.get("leaseTransitions") or 0
            return True
        return False

    def _create(self, now: datetime) -> bool:
        body = {"metadata": {"name": self.name, "namespace": self.namespace},
                "spec": {"holderIdentity": self.identity, "leaseDurationSeconds": int(self.duration),
                         "acquireTime": _micro(now), "renewTime": _micro(now), "leaseTransitions": 0}}
        self._lease = self.api.create_lease(self.namespace, body)
        if self._lease is not None:
            self.holder = self.identity
            return True
        return False

    def release(self) -> None:
        """Hands the lease over at once on a clean shutdown, so the standby need not wait it out."""
        if not self.leading:
            return
        self._step_down("shutting down")
        try:
            with lane(LEASE_LANE):
                self._hand_over()
        except ApiFailure as err:
            log.warning("could not release the lease: %s", err)

    def _hand_over(self) -> None:
        lease = self.api.get_lease(self.namespace, self.name)
        spec = (lease or {}).get("spec") or {}
        if lease is not None and spec.get("holderIdentity") == self.identity:
            # Nobody holds it, and it ran out long ago: the next to ask gets it at once.
            spec.update(holderIdentity="", leaseDurationSeconds=1,
                        renewTime=_micro(self.clock() - timedelta(seconds=self.duration + 1)))
            lease["spec"] = spec
            self.api.replace_lease(self.namespace, self.name, lease, tolerate=(Failure.CONFLICT, Failure.NOT_FOUND))
