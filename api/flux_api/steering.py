"""What decides which code a runner pod runs, besides its image and workflow: some environment variables and
some mount points. A template that sets them runs code of its writer's choosing (a module in a ConfigMap put on
PYTHONPATH, a library preloaded, a `flux-runner` found first on PATH, a mount over the image's own packages):
like an image of one's own, that needs `create pods` (policy_tenant, `flux-tenant-pod-settings`).

The interpreter's and the loader's channels only: a tool the workflow runs may honour variables of its own
(GIT_SSH_COMMAND), which only the workflow's author can know of. policy_tenant turns these into CEL;
tests/cluster/test_tenancy.py holds it to cases on the API server.
"""

# The program search path (the runtime finds `flux-runner` on it) and glibc's charset modules.
CODE_ENV_NAMES = ("PATH", "GCONV_PATH")
# Python's own (PYTHONPATH, PYTHONHOME, PYTHONUSERBASE, PYTHONPYCACHEPREFIX, PYTHONWARNINGS, ...), the dynamic
# loader's (LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT) and OpenSSL's (a config that loads a provider module).
CODE_ENV_PREFIXES = ("PYTHON", "LD_", "OPENSSL_")
# Where code and the loader's configuration live in the images runners use; a mount at, in or above one of
# them replaces it. `/` and `/etc` are above some: a data mount goes to its own directory (/data, /etc/app).
CODE_PATHS = ("/usr", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin", "/opt", "/etc/ld.so.preload",
              "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/ssl", "/etc/pki")

