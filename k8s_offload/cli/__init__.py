"""Subcommands of `offload-compile`, one module each; `k8s_offload.cli.main` dispatches to them."""
