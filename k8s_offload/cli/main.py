"""`offload-compile`: the compiler's command line.

Dispatch: if the first argument names a subcommand (`p4info`, later `trace`, `verify`), that
subcommand runs; otherwise the arguments are a compile invocation (`offload-compile
[MANIFEST...] [--emit ir|entries|p4info] ...`, see k8s_offload/cli/compile.py). Exit codes:
0 ok, 1 the entries do not fit the device, 2 bad input (message on stderr, nothing on stdout).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from k8s_offload.console import finish_cli
from k8s_offload.p4.errors import P4FrontendError

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_CODES = {
    0: "ok",
    1: "the entries do not fit the device",
    2: "bad input or usage (message on stderr, nothing on stdout)",
    70: "internal error",
}
COMMAND_EXIT_CODES = {
    "p4info": {0: "ok", 2: "bad program or usage"},
    "verify": {0: "proved", 1: "the proof failed, or the entries do not fit", 2: "bad input or usage"},
    "trace": {0: "traced", 1: "the entries do not fit", 2: "bad input or usage"},
}

_EXAMPLES = """\
examples:
  offload-compile examples/shop/cluster --node examples/shop/node.yaml
                                                  entries for a cluster, one line each
  kubectl get pods,svc,endpointslices,netpol -A -o yaml | offload-compile - --format json
                                                  the live cluster's objects, as JSON
  offload-compile manifests/ --emit ir            the typed IR instead of entries
  offload-compile manifests/ --format p4rt-bin -o bundle.bin
                                                  a P4Runtime WriteRequest, binary
  offload-compile p4info                          P4Info of p4src/k8s_dp.p4, text format
  offload-compile p4info --format json -o x.json  as protobuf JSON, to a file
  offload-compile p4info --program my.p4          P4Info of another v1model program
"""


def serialize_p4info(message: Any, fmt: str) -> bytes:
    """Text as p4c writes it (with its two header comment lines), JSON, or binary."""
    if fmt == "binary":
        return bytes(message.SerializeToString(deterministic=True))
    if fmt == "json":
        from google.protobuf import json_format

        return (json_format.MessageToJson(message, indent=2, sort_keys=False) + "\n").encode()
    from google.protobuf import text_format

    header = (
        f"# proto-file: {message.DESCRIPTOR.file.name}\n# proto-message: {message.DESCRIPTOR.full_name}\n\n"
    )
    return (header + text_format.MessageToString(message)).encode()


def _write(data: bytes, output: str | None) -> None:
    if output is None or output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    Path(output).write_bytes(data)


def _cmd_p4info(args: argparse.Namespace) -> int:
    from k8s_offload.p4.p4info import load_p4info

    data = serialize_p4info(load_p4info(args.program), args.format)
    _write(data, args.output)
    return EXIT_OK


def _p4info_parser(sub: Any) -> None:
    p = sub.add_parser(
        "p4info",
        help="print the P4Info of the data-plane program",
        description="Print the P4Info of a v1model P4 program, as p4c 1.2.4 would generate it.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--format", choices=("text", "json", "binary"), default="text", help="output format")
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    p.add_argument("--program", metavar="P4FILE", help="P4 source (default: the shipped p4src/k8s_dp.p4)")
    p.set_defaults(func=_cmd_p4info)


# Subcommand name -> function that adds its parser. `trace` and `verify` plug in here.
def _trace_parser(sub: Any) -> None:
    from k8s_offload.cli import trace

    trace.add_parser(sub)


def _verify_parser(sub: Any) -> None:
    from k8s_offload.cli import verify

    verify.add_parser(sub)


SUBCOMMANDS: dict[str, Callable[[Any], None]] = {
    "p4info": _p4info_parser,
    "trace": _trace_parser,
    "verify": _verify_parser,
}


def build_compile_parser() -> argparse.ArgumentParser:
    from k8s_offload.cli import compile as compile_cmd

    parser = argparse.ArgumentParser(
        prog="offload-compile",
        description=(
            "Compile Kubernetes networking intent into P4 table entries for the SmartNIC. "
            f"Subcommands: {', '.join(SUBCOMMANDS)} (offload-compile COMMAND --help)."
        ),
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    compile_cmd.add_arguments(parser)
    parser.set_defaults(func=_cmd_compile)
    return parser


def _cmd_compile(args: argparse.Namespace) -> int:
    from k8s_offload.cli import compile as compile_cmd

    if args.emit == "p4info":
        fmt = {"json": "json", "p4rt-bin": "binary"}.get(args.format, "text")
        _write(serialize_p4info(load_p4info_default(), fmt), args.output)
        return EXIT_OK
    return compile_cmd.run(args)


def load_p4info_default() -> Any:
    from k8s_offload.p4.p4info import load_p4info

    return load_p4info(None)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="offload-compile",
        description="Compile Kubernetes networking intent into P4 table entries for the SmartNIC.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in SUBCOMMANDS.values():
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None, *, keep: list[object] | None = None) -> int:
    """`keep`: where a compile leaves its result instead of freeing it on return (`entry`)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    is_subcommand = bool(args_list) and args_list[0] in SUBCOMMANDS
    parser = finish_cli(
        build_parser() if is_subcommand else build_compile_parser(), EXIT_CODES, COMMAND_EXIT_CODES
    )
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # argparse: 0 for --help/--version, 2 for usage errors
        return int(exc.code) if isinstance(exc.code, int) else EXIT_BAD_INPUT
    args.keep = keep
    try:
        return int(args.func(args))
    except P4FrontendError as exc:
        print(f"offload-compile: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:
        print(f"offload-compile: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def entry() -> None:
    """The `offload-compile` console script: `main`, then, once the output is written and flushed,
    exit without freeing the compilation object by object (as mypy does): at size M that teardown
    alone cost about 0.7 CPU-s. An exception still unwinds and exits as usual."""
    keep: list[object] = []
    code = main(keep=keep)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # e.g. a closed pipe: leave it to the normal exit to report
        sys.exit(code)
    os._exit(code)


if __name__ == "__main__":
    entry()
