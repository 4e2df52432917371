"""Validation the API server applies (CEL rules and patterns), kept apart from the schema generator.

Each rule carries the message a user sees on `kubectl apply`: bad input is refused whole, never
half-created. The cron and time zone checks are exact enough for the API server to refuse what the
operator's cron library would refuse.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from flux_api.names import (
    CANCELLED_BY_ANNOTATION,
    GROUP,
    MAX_SCHEDULE_NAME,
    OWNED_LABEL_VALUES,
    REPLACED_BY_ANNOTATION,
    SCHEDULED_AT_ANNOTATION,
)
from flux_api.timefmt import FIRST_YEAR, LAST_YEAR, STAMP_PATTERN

# --- cron ---------------------------------------------------------------------------------------

_MONTHS = "jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec"
_DAYS = "sun|mon|tue|wed|thu|fri|sat"


def _field(value: str) -> str:
    """One cron field: comma-separated items, each `*`, `V` or `V-V`, optionally `/step`."""
    item = f"(\\*|({value})(-({value}))?)(/[0-9]{{1,2}})?"
    return f"{item}(,{item})*"


CRON_FIELDS = (
    _field("[0-5]?[0-9]"),  # minute
    _field("[01]?[0-9]|2[0-3]"),  # hour
    _field("0?[1-9]|[12][0-9]|3[01]|\\?"),  # day of month
    _field(f"0?[1-9]|1[0-2]|{_MONTHS}|{_MONTHS.upper()}"),  # month
    _field(f"[0-7]|{_DAYS}|{_DAYS.upper()}|\\?"),  # day of week
)
CRON_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
CRON_PATTERN = "^(" + "|".join(CRON_MACROS) + "|" + " +".join(f"({f})" for f in CRON_FIELDS) + ")$"

CRON_RULE = {
    "rule": f"self.trim().matches('{CRON_PATTERN}')".replace("\\", "\\\\"),
    "message": "spec.schedule must be a cron expression of 5 fields (minute hour day-of-month month "
               "day-of-week, e.g. \"*/5 * * * *\") or one of " + ", ".join(CRON_MACROS),
    "reason": "FieldValueInvalid",
}


# A day of the month that none of the named months has (`0 0 31 2 *`, `0 0 30 2 *`, `0 0 31 4,6,9,11 *`)
# never fires. Refused when the day of the week is unrestricted (`*` or `?`: otherwise cron fires on
# either) and the month field lists single months; ranges and steps of months are left to the operator,
# which reports what still never fires as Ready=False InvalidSchedule. Never refuses a firing expression.
_MONTH_DAYS = {1: 31, 2: 29, 3: 31, 4: 30, 5: 31, 6: 30, 7: 31, 8: 31, 9: 30, 10: 31, 11: 30, 12: 31}
_DAYS_BY_NAME = {name: _MONTH_DAYS[i + 1] for i, name in enumerate(_MONTHS.split("|"))}


def _cel_map(mapping: dict) -> str:
    return "{" + ", ".join(f"{k!r}: {v}" for k, v in mapping.items()) + "}"


_FIRST_DAY = "(i.split('/')[0].split('-')[0].matches('^[0-9]+$') ? int(i.split('/')[0].split('-')[0]) : 1)"
_LONGEST_MONTH = (f"(i.matches('^[0-9]+$') && int(i) >= 1 && int(i) <= 12 ? {_cel_map(_MONTH_DAYS)}[int(i)] : "
                  f"(i.lowerAscii() in {_cel_map(_DAYS_BY_NAME)} ? {_cel_map(_DAYS_BY_NAME)}[i.lowerAscii()] : 31))")
_CRON_FIELDS = "self.trim().split(' ').filter(x, x != '')"  # (no cel.bind in CRD rules of this Kubernetes)
CRON_FIRES_RULE = {
    "rule": f"{_CRON_FIELDS}.size() != 5 || !({_CRON_FIELDS}[4] in ['*', '?']) || "
            f"{_CRON_FIELDS}[2].split(',').map(i, {_FIRST_DAY}).min() <= "
            f"{_CRON_FIELDS}[3].split(',').map(i, {_LONGEST_MONTH}).max()",
    "message": "spec.schedule never fires: no month it names has the day of the month it names (such as "
               "\"0 0 31 2 *\"); name a day that exists, or a day of the week",
    "reason": "FieldValueInvalid",
}


def time_zones() -> list[str]:
    """Every IANA zone of the pinned `tzdata` package: the operator loads zones from the same one."""
    text = resources.files("tzdata").joinpath("zones").read_text()
    return sorted(z for z in text.split() if z)


def time_zone_rule() -> dict[str, Any]:
    zones = ", ".join(f"'{z}'" for z in time_zones())
    return {"rule": f"self in [{zones}]",
            "message": "spec.timeZone must be an IANA time zone name such as Europe/Berlin, America/New_York or UTC",
            "reason": "FieldValueInvalid"}


# --- Execution spec -----------------------------------------------------------------------------

RFC3339 = STAMP_PATTERN  # bounded years: see flux_api.timefmt
START_AT_RULE = {
    "rule": f"self.matches('{RFC3339}')".replace("\\", "\\\\"),
    "message": f"spec.startAt must be an RFC 3339 time of the years {FIRST_YEAR}-{LAST_YEAR} such as "
               "2026-12-01T09:00:00Z",
    "reason": "FieldValueInvalid",
}
_OWNED_ENV = "['PYTHONDONTWRITEBYTECODE', 'PYTHONUNBUFFERED', 'PYTHONNOUSERSITE']"
ENV_RULE = {
    "rule": f"self.all(e, !e.name.startsWith('FLUX_') && !(e.name in {_OWNED_ENV}))",
    "message": "spec.podTemplate.env cannot set FLUX_* variables, PYTHONDONTWRITEBYTECODE, PYTHONUNBUFFERED or "
               "PYTHONNOUSERSITE: the operator sets them",
    "reason": "FieldValueForbidden",
}
VOLUMES_RULE = {
    "rule": "self.all(v, v.name != 'tmp')",
    "message": "spec.podTemplate.volumes cannot use the name tmp: the operator's /tmp volume has it",
    "reason": "FieldValueForbidden",
}
MOUNTS_RULE = {
    "rule": "self.all(m, m.name != 'tmp' && m.mountPath != '/tmp' && !m.mountPath.startsWith('/tmp/')"
            " && !m.mountPath.startsWith('/var/run/secrets/kubernetes.io'))",
    "message": "spec.podTemplate.volumeMounts cannot cover /tmp or the service account token "
               "(/var/run/secrets/kubernetes.io): the operator owns them",
    "reason": "FieldValueForbidden",
}
# Clean absolute paths only, so that the policy on mounts over code (flux_api.steering) sees the path the
# runtime mounts at: no '//', '.' or '..' parts.
MOUNT_PATHS_RULE = {
    "rule": "self.all(m, m.mountPath.startsWith('/') && !m.mountPath.contains('//') && "
            "!m.mountPath.contains('/./') && !m.mountPath.contains('/../') && !m.mountPath.endsWith('/.') && "
            "!m.mountPath.endsWith('/..'))",
    "message": "spec.podTemplate.volumeMounts: a mountPath must be a clean absolute path (no //, . or .. parts)",
    "reason": "FieldValueInvalid",
}
_OWNED_LABELS = "['app.kubernetes.io/name', 'app.kubernetes.io/component', 'app.kubernetes.io/managed-by']"
LABELS_RULE = {
    "rule": f"self.all(k, !k.startsWith('{GROUP}/') && !(k in {_OWNED_LABELS}))",
    "message": f"spec.podTemplate.metadata.labels cannot set {GROUP}/* or app.kubernetes.io/name, component or "
               "managed-by: the operator selects runner pods by them",
    "reason": "FieldValueForbidden",
}
TEMPLATE_NO_CANCEL = {
    "rule": "!has(self.cancel) && !has(self.startAt)",
    "message": "spec.executionTemplate.spec cannot set cancel or startAt: the Schedule decides when runs start, "
               "cancel the executions themselves",
    "reason": "FieldValueForbidden",
}
# The operator creates the runs, so a signal in the template would be signed by the operator (or refused for
# every run): the Schedule's writer is who must sign (flux_api.policy_signals).
TEMPLATE_UNSIGNED_SIGNALS = {
    "rule": "!has(self.signals) || self.signals.all(s, !has(s.sentBy))",
    "message": "spec.executionTemplate.spec.signals cannot set sentBy: the operator makes the runs, so it cannot "
               "vouch for who sent them; send a signal to the run itself",
    "reason": "FieldValueForbidden",
}
# The operator creates a Schedule's runs with the template's labels and annotations: its own marks in the
# template would let anyone forge them through the operator (children, depth, runs of another Schedule).
_OWNED_PAIRS = " || ".join(f"(k == '{k}' && self[k] == '{v}')" for k, v in OWNED_LABEL_VALUES.items())
TEMPLATE_LABELS_RULE = {
    "rule": f"self.all(k, !k.startsWith('{GROUP}/') && !({_OWNED_PAIRS}))",
    "message": f"spec.executionTemplate.metadata.labels cannot set {GROUP}/* or "
               f"{', '.join(f'{k}={v}' for k, v in OWNED_LABEL_VALUES.items())}: the operator's own marks",
    "reason": "FieldValueForbidden",
}
_OWNED_ANNOTATIONS = f"['{CANCELLED_BY_ANNOTATION}', '{REPLACED_BY_ANNOTATION}', '{SCHEDULED_AT_ANNOTATION}']"
TEMPLATE_ANNOTATIONS_RULE = {
    "rule": f"self.all(k, !(k in {_OWNED_ANNOTATIONS}))",
    "message": f"spec.executionTemplate.metadata.annotations cannot set {CANCELLED_BY_ANNOTATION}, "
               f"{REPLACED_BY_ANNOTATION} or {SCHEDULED_AT_ANNOTATION}: the operator sets them",
    "reason": "FieldValueForbidden",
}
SCHEDULE_NAME_FITS = {
    "rule": f"self.metadata.name.size() <= {MAX_SCHEDULE_NAME}",
    "message": f"Schedule names are at most {MAX_SCHEDULE_NAME} characters: each run is named "
               "<schedule>-<minutes since 1970>, and that must fit a 63-character label value",
}


def add_spec_rules(spec: dict[str, Any]) -> None:
    """The rules on an ExecutionSpec schema node (an Execution's spec, or a Schedule's template)."""
    props = spec["properties"]
    props["startAt"]["x-kubernetes-validations"] = [START_AT_RULE]
    template = props["podTemplate"]["properties"]
    template["env"]["x-kubernetes-validations"] = [ENV_RULE]
    template["volumes"]["x-kubernetes-validations"] = [VOLUMES_RULE]
    template["volumeMounts"]["x-kubernetes-validations"] = [MOUNTS_RULE, MOUNT_PATHS_RULE]
    template["metadata"]["properties"]["labels"]["x-kubernetes-validations"] = [LABELS_RULE]
