"""`offload-lab`: an example cluster's local pods in network namespaces, forwarded by the software target."""
