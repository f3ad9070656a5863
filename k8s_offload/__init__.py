"""k8s-offload: Kubernetes networking intent compiled into P4 table entries and kept on a P4Runtime device."""
