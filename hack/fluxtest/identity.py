"""Who the test suite's operator is to the API server: the one place to change it.

The admission policies exempt exactly this user (the TenancyPolicy's spec.operators, written by
fluxtest.policies), and a tenant is anyone else. Today the suite's operator runs with the cluster admin's
credentials (hack/localcluster: `flux-admin`, group system:masters).
"""

OPERATOR_USER = "flux-admin"
