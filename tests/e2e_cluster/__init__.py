"""The operator's end-to-end scenarios against a real cluster (KPROF_E2E_KUBECONFIG); see
docs/OPERATOR.md for how to run them with kind."""
