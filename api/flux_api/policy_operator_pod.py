"""The pod half of `flux-operator-makes-only-runners` (policy_operator): a pod the operator's identity creates is
confined as flux_operator.builders makes every runner pod.

The checks are on fields, not on equality with the builder's output: a platform's mutating admission (a service
mesh, Kueue, an image-policy webhook) may add to a pod before this policy sees it. Labels, node selectors,
priority classes and the runtime class are left alone for that reason: mutators set them too.
"""

from __future__ import annotations

from typing import Any

from flux_api.admission import string, validation
from flux_api.names import EXECUTION_LABEL
from flux_api.tenancy import CONFINEMENT_ANNOTATION_PREFIXES, FREE_PROJECTED_SOURCES, FREE_VOLUME_TYPES

# Every volume source of a core/v1 Pod (Kubernetes 1.35): a pod object's fields cannot be iterated in CEL.
POD_VOLUME_TYPES = ("awsElasticBlockStore", "azureDisk", "azureFile", "cephfs", "cinder", "configMap", "csi",
                    "downwardAPI", "emptyDir", "ephemeral", "fc", "flexVolume", "flocker", "gcePersistentDisk",
                    "gitRepo", "glusterfs", "hostPath", "image", "iscsi", "nfs", "persistentVolumeClaim",
                    "photonPersistentDisk", "portworxVolume", "projected", "quobyte", "rbd", "scaleIO", "secret",
                    "storageos", "vsphereVolume")
# Sources of a projected volume (1.35) beyond the free ones: a trust bundle, a certificate, and a token for an
# audience of its own (one for the API server is the pod's own token: the ServiceAccount admission plugin adds
# that volume, kube-api-access-*, to every pod before this policy sees it).
OTHER_PROJECTED_SOURCES = ("clusterTrustBundle", "podCertificate")
# Lists are bounded before they are walked: an error (CEL's cost budget) would skip the policy, which fails open.
MOST_VOLUMES = 128  # a template has at most 64, and the operator adds one
MOST_ANNOTATIONS = 256
MOST_PORTS = 64
MOST_CONTAINERS = 16  # a runner pod has one; a mesh may inject more (each confined, as Pod Security restricted asks)

POD = "!variables.creates || variables.kind != 'pods' || "
SPEC = "object.spec"


def _list(path: str) -> str:
    return f"{path}.orValue([])"


def _not_loosened(sc: str) -> str:
    """What a pod's or a container's security context may not say (`sc` is an optional of it)."""
    return (f"{sc}.?runAsUser.orValue(1) != 0 && {sc}.?seccompProfile.?type.orValue('') != 'Unconfined' && "
            f"{sc}.?appArmorProfile.?type.orValue('') != 'Unconfined' && "
            f"{sc}.?seLinuxOptions.?type.orValue('') == '' && "
            f"!{sc}.?windowsOptions.?hostProcess.orValue(false)")


def _container_confined(c: str) -> str:
    sc = f"{c}.?securityContext"
    return (f"{sc}.?allowPrivilegeEscalation.orValue(true) == false && !{sc}.?privileged.orValue(false) && "
            f"size({_list(f'{sc}.?capabilities.?add')}) == 0 && 'ALL' in {_list(f'{sc}.?capabilities.?drop')} && "
            f"{sc}.?runAsNonRoot.orValue(true) && {sc}.?procMount.orValue('Default') == 'Default' && "
            f"{_not_loosened(sc)} && size({_list(f'{c}.?ports')}) <= {MOST_PORTS} && "
            f"{_list(f'{c}.?ports')}.all(p, p.?hostPort.orValue(0) == 0)")


def _refused_volume(v: str) -> str:
    """Whether volume `v` has a type no runner pod may have; a projected volume of free sources is free."""
    free_projection = (f"{_list(f'{v}.projected.?sources')}.all(s, " + " && ".join(
        f"!has(s.{t})" for t in OTHER_PROJECTED_SOURCES) + " && s.?serviceAccountToken.?audience.orValue('') == '')")
    checks = [f"(has({v}.{t}) && !({string(t)} in variables.volumeTypes))"
              for t in POD_VOLUME_TYPES if t not in FREE_VOLUME_TYPES and t != "projected"]
    checks.append(f"(has({v}.projected) && !({string('projected')} in variables.volumeTypes) && "
                  f"!({free_projection}))")
    return " || ".join(checks)


def pod_rules() -> list[dict[str, Any]]:
    containers, inits = _list(f"{SPEC}.?containers"), _list(f"{SPEC}.?initContainers")
    annotations = "object.metadata.?annotations.orValue({})"
    confinement = " || ".join(f"k.startsWith({string(p)})" for p in CONFINEMENT_ANNOTATION_PREFIXES)
    return [
        validation(POD + f"{SPEC}.?serviceAccountName.orValue('') == variables.account",
                   "the flux operator runs a runner pod as its execution's runner ServiceAccount only",
                   "'pod ' + variables.name + ' must run as ' + variables.account + ', the ServiceAccount of the "
                   "runner of Execution ' + variables.execution"),
        validation(POD + f"size({containers}) <= {MOST_CONTAINERS} && size({inits}) <= {MOST_CONTAINERS} && "
                   f"size({_list(f'{SPEC}.?ephemeralContainers')}) == 0 && "
                   f"{containers}.all(c, {_container_confined('c')}) && {inits}.all(c, {_container_confined('c')})",
                   "a runner pod's containers are confined",
                   "'pod ' + variables.name + ' is not confined as a runner pod is: every container (an injected "
                   "one too) with allowPrivilegeEscalation false, capabilities drop ALL and add none, not "
                   "privileged, not root, no Unconfined seccomp or AppArmor, no SELinux type, no hostProcess, "
                   "the default procMount, no hostPort'"),
        validation(POD + f"{SPEC}.?securityContext.?runAsNonRoot.orValue(false) && "
                   f"{SPEC}.?securityContext.?seccompProfile.?type.orValue('') in ['RuntimeDefault', 'Localhost'] && "
                   f"{_not_loosened(f'{SPEC}.?securityContext')} && "
                   f"size({_list(f'{SPEC}.?securityContext.?sysctls')}) == 0 && "
                   f"!{SPEC}.?hostPID.orValue(false) && !{SPEC}.?hostIPC.orValue(false) && "
                   f"!has({SPEC}.nodeName) && size({_list(f'{SPEC}.?resourceClaims')}) == 0",
                   "a runner pod runs as non-root, with a seccomp profile, in no host namespace but the network",
                   "'pod ' + variables.name + ' is not confined as a runner pod is: runAsNonRoot, a RuntimeDefault "
                   "or Localhost seccomp profile, not root, no Unconfined AppArmor, no SELinux type, no hostProcess, "
                   "no sysctls, no hostPID or hostIPC, no nodeName, no resourceClaims'"),
        validation(POD + f"object.metadata.?labels.orValue({{}})[?{string(EXECUTION_LABEL)}].orValue('') == "
                   "variables.execution",
                   "a runner pod carries its execution's label",
                   f"'pod ' + variables.name + ' must carry the label {EXECUTION_LABEL}=' + variables.execution"),
        validation(POD + f"size({annotations}) <= {MOST_ANNOTATIONS} && {annotations}.all(k, !({confinement}) || "
                   "k in params.spec.?allowedPodAnnotations.orValue([]))",
                   "a runner pod carries no AppArmor or seccomp annotation the platform does not list",
                   "'pod ' + variables.name + ': an AppArmor or seccomp annotation needs the platform\\'s "
                   "allowedPodAnnotations'"),
        validation(POD + f"size({_list(f'{SPEC}.?volumes')}) <= {MOST_VOLUMES} && "
                   f"!{_list(f'{SPEC}.?volumes')}.exists(v, {_refused_volume('v')})",
                   "a volume type no runner pod may have",
                   "'pod ' + variables.name + ': a runner pod may have volumes of the types ' + "
                   "variables.volumeTypes.join(', ') + ' only (a projected volume of ' + "
                   f"{string(', '.join(FREE_PROJECTED_SOURCES))} + ' sources and the pod\\'s own token is free)'"),
    ]

