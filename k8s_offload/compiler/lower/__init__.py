"""Lowering: the IR to table entries for p4src/k8s_dp.p4, one module per pipeline concern."""
