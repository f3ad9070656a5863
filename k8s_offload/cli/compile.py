"""`offload-compile [MANIFEST...]`: the main job. Everything is computed before anything is
written, so a failing run leaves stdout (and `-o FILE`) untouched."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from k8s_offload.compiler.bundle.render import FORMATS, render
from k8s_offload.compiler.bundle.schema import BundleError
from k8s_offload.compiler.driver import CompileResult, compile_sources
from k8s_offload.compiler.errors import CompilerError, ManifestErrors
from k8s_offload.compiler.ir.dump import dump
from k8s_offload.compiler.ir.dump_rules import dump_rules
from k8s_offload.compiler.passes.pipeline import LB_MODES, PASS_NAMES, STEP_NAMES, PassConfig, list_pipeline
from k8s_offload.compiler.passes.range_encoding import PROFILES
from k8s_offload.console import Progress

EXIT_OK = 0
EXIT_DOES_NOT_FIT = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 70


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifests", nargs="*", metavar="MANIFEST", help="files, directories or - for stdin")
    parser.add_argument("--node", metavar="FILE", help="node facts (docs/node-facts.md)")
    parser.add_argument("--format", choices=FORMATS, default="text", help="output format of entries")
    parser.add_argument(
        "--emit", choices=("entries", "ir", "p4info"), default="entries", help="what to print"
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no summary line and no phase progress on stderr"
    )
    opt = parser.add_argument_group("optimization (docs/passes.md)")
    opt.add_argument("--passes", metavar="A,B", help=f"run only these passes, of: {','.join(PASS_NAMES)}")
    opt.add_argument("--no-opt", action="store_true", help="run no optimization pass")
    opt.add_argument("--target-profile", choices=PROFILES, default="bmv2", help="target the entries are for")
    opt.add_argument(
        "--lb",
        choices=LB_MODES,
        default="hash",
        help="Service backend selection: the selector's hash, or a Maglev table (consistent; costs members)",
    )
    opt.add_argument(
        "--dump-after", metavar="STEP", choices=STEP_NAMES, help="print a PIPELINE step's output on stderr"
    )
    opt.add_argument("--check-each", action="store_true", help="run every check step of the PIPELINE")
    opt.add_argument(
        "--list-passes", action="store_true", help="print the PIPELINE (stages, passes, checks, in order)"
    )


def _label(result: CompileResult, key: str) -> str:
    name, _, kind = key.partition(" (")
    if kind:
        return f"{result.schema.profile(name).alias} {kind.rstrip(')')}"
    return result.schema.table(name).alias


def summary(result: CompileResult) -> str:
    kinds = Counter(type(o).__name__ for o in result.manifests.objects)
    read = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    counts = result.lowered.bundle.counts()
    tables = ", ".join(f"{_label(result, k)} {n}" for k, n in sorted(counts.items()))
    return f"offload-compile: read {sum(kinds.values())} objects ({read}); entries: {tables or 'none'}"


def run(args: argparse.Namespace) -> int:
    if args.list_passes:
        try:
            config = PassConfig.parse(
                args.passes, args.no_opt, args.target_profile, None, args.lb, args.check_each
            )
        except ValueError as err:
            print(f"offload-compile: {err}", file=sys.stderr)
            return EXIT_BAD_INPUT
        sys.stdout.write(list_pipeline(config))
        return EXIT_OK
    if not args.manifests:
        print("offload-compile: no manifests given (use - for stdin); see --help", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        passes = PassConfig.parse(
            args.passes, args.no_opt, args.target_profile, args.dump_after, args.lb, args.check_each
        )
    except ValueError as err:
        print(f"offload-compile: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        progress = Progress("offload-compile", quiet=args.quiet)
        result = compile_sources(args.manifests, args.node, stdin=sys.stdin, passes=passes, progress=progress)
    except ManifestErrors as err:
        print(str(err), file=sys.stderr)
        return EXIT_BAD_INPUT
    except CompilerError as err:
        print(f"internal error: {err}", file=sys.stderr)
        return EXIT_INTERNAL
    except BundleError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_DOES_NOT_FIT
    for text in passes.dumps:
        print(f"--- after {args.dump_after}\n{text}", end="", file=sys.stderr)
    for note in result.manifests.notes:
        print(note, file=sys.stderr)
    for diag in result.diagnostics:
        print(str(diag), file=sys.stderr)
    if args.emit == "ir":
        data = (dump(result.ir) + dump_rules(result.lowered.policy)).encode()
    else:
        data = render(result.schema, result.lowered.bundle, args.format)
    progress("render", len(data), "bytes")
    if args.output:
        Path(args.output).write_bytes(data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    if not args.quiet:
        print(summary(result), file=sys.stderr)
    return EXIT_OK
