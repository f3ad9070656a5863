"""`offload-compile [MANIFEST...]`: the main job. Everything is computed before anything is
written, so a failing run leaves stdout (and `-o FILE`) untouched."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from k8s_offload.compiler.bundle.p4rtctl import DEFAULT_BRIDGE
from k8s_offload.compiler.bundle.render import FORMATS, render
from k8s_offload.compiler.bundle.schema import BundleError
from k8s_offload.compiler.contract import default_schema
from k8s_offload.compiler.driver import CompileResult, compile_sources
from k8s_offload.compiler.errors import CompilerError, Location, ManifestError, ManifestErrors
from k8s_offload.compiler.frontend.loader import Manifests
from k8s_offload.compiler.frontend.sources import SourceError, read_stdin
from k8s_offload.compiler.ir.dump import dump
from k8s_offload.compiler.ir.dump_rules import dump_rules
from k8s_offload.compiler.ir.rules import PodIsolation, PolicyIR
from k8s_offload.compiler.lower.bundle import lower
from k8s_offload.compiler.passes.pipeline import LB_MODES, PASS_NAMES, STEP_NAMES, PassConfig, list_pipeline
from k8s_offload.compiler.passes.range_encoding import PROFILES
from k8s_offload.console import Progress

if TYPE_CHECKING:
    from k8s_offload.compiler.ir.parse import ParsedIR

EXIT_OK = 0
EXIT_DOES_NOT_FIT = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 70


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifests", nargs="*", metavar="MANIFEST", help="files, directories or - for stdin")
    parser.add_argument("--node", metavar="FILE", help="node facts (docs/node-facts.md)")
    parser.add_argument(
        "--from-ir",
        metavar="FILE",
        help="compile a textual IR (the output of --emit ir; - for stdin) instead of manifests and "
        "node facts; its policy rule lines, if any, must be what its policies resolve to (docs/ir.md)",
    )
    parser.add_argument("--format", choices=FORMATS, default="text", help="output format of entries")
    parser.add_argument(
        "--bridge",
        default=DEFAULT_BRIDGE,
        help="the bridge `--format p4rt-ctl` commands name (IPDK's infrap4d; default %(default)s)",
    )
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


def summary(result: CompileResult, from_ir: str | None = None) -> str:
    if from_ir is None:
        kinds = Counter(type(o).__name__ for o in result.manifests.objects)
        listed = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        read = f"{sum(kinds.values())} objects ({listed})"
    else:
        ir = result.ir
        read = (
            f"the IR in {from_ir} ({len(ir.pods)} pods, {len(ir.services)} services, "
            f"{len(ir.backend_sets)} backend sets, {len(ir.network_policies)} network policies)"
        )
    counts = result.lowered.bundle.counts()
    tables = ", ".join(f"{_label(result, k)} {n}" for k, n in sorted(counts.items()))
    return f"offload-compile: read {read}; entries: {tables or 'none'}"


def compile_ir(path: str, passes: PassConfig) -> CompileResult:
    """`--from-ir`: the cluster IR of the file lowered as `compile_sources` lowers one built from
    manifests. Rule lines are derived data: they must equal what the lowering resolves (with the
    same passes), so an edit there is reported rather than silently ignored."""
    from k8s_offload.compiler.ir.parse import load_ir  # lark: loaded only for --from-ir

    text = None
    if path == "-":
        try:
            text = read_stdin(sys.stdin)
        except SourceError as exc:
            raise ManifestErrors([ManifestError(Location("<stdin>"), "", "", str(exc))]) from None
    parsed = load_ir("<stdin>" if path == "-" else path, text)
    if parsed.cluster is None:
        raise ManifestErrors(
            [ManifestError(Location(path), "", "", "no cluster IR: it starts with a node line")]
        )
    lowered = lower(parsed.cluster, default_schema(), passes)
    if parsed.policy is not None:
        _check_rules(parsed, lowered.policy.isolations, path)
    empty = Manifests((), (), (), (), (), (), ())
    return CompileResult(empty, parsed.cluster, lowered, default_schema())


def _check_rules(parsed: ParsedIR, derived: tuple[PodIsolation, ...], path: str) -> None:
    """The first place where the file's rule lines differ from the derived ones, as an error there."""
    given = parsed.policy.isolations if parsed.policy is not None else ()
    for i in range(max(len(given), len(derived))):
        mine = given[i] if i < len(given) else None
        want = derived[i] if i < len(derived) else None
        if mine == want:
            continue
        want_lines = dump_rules(PolicyIR((want,))).splitlines() if want is not None else []
        mine_lines = dump_rules(PolicyIR((mine,))).splitlines() if mine is not None else []
        j = next(
            j
            for j in range(max(len(want_lines), len(mine_lines)))
            if want_lines[j : j + 1] != mine_lines[j : j + 1]
        )
        k = i if mine is not None else len(given) - 1  # the isolation in the file to point at
        rule_count = len(given[k].rule_set.rules) if given else 0
        lines = [parsed.lines.get(("isolations", k), 0)]
        lines += [parsed.lines.get((f"isolations[{k}].rules", r), 0) for r in range(rule_count)]
        here = mine is not None and j < len(lines)
        line = lines[j] if here else lines[-1]
        expected = want_lines[j].strip() if j < len(want_lines) else "no such line"
        raise ManifestErrors(
            [
                ManifestError(
                    Location(f"{path}:{line}:1"),
                    "",
                    "",
                    f"the rule IR differs from what the policy lines resolve to: expected {expected!r} "
                    f"{'here' if here else 'after this line'}; rule lines are derived "
                    "(with the passes the file was printed with): edit the policy lines, or delete "
                    "the isolation and rule lines",
                )
            ]
        )


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
    if args.from_ir and (args.manifests or args.node):
        print("offload-compile: --from-ir takes no manifests or --node (the IR holds both)", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not args.manifests and not args.from_ir:
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
        if args.from_ir:
            result = compile_ir(args.from_ir, passes)
        else:
            result = compile_sources(
                args.manifests, args.node, stdin=sys.stdin, passes=passes, progress=progress
            )
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
        try:
            data = render(result.schema, result.lowered.bundle, args.format, args.bridge)
        except BundleError as err:  # an entity the format cannot express (p4rt-ctl)
            print(f"error: {err}", file=sys.stderr)
            return EXIT_DOES_NOT_FIT
    progress("render", len(data), "bytes")
    if args.output:
        Path(args.output).write_bytes(data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    if not args.quiet:
        print(summary(result, args.from_ir), file=sys.stderr)
    keep = getattr(args, "keep", None)
    if keep is not None:  # the console script exits without freeing it (main.entry)
        keep += (result, data)
    return EXIT_OK
