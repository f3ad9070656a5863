"""Subcommands of `offload-compile`, one module each; `compiler.cli` dispatches to them."""
