"""`offload-compile verify`: prove the optimized bundle equivalent to the unoptimized one, and the
policy stages equal to the resolved NetworkPolicy rules (docs/verify.md).

Exit status: 0 proved; 1 a difference, an ambiguous bundle or a policy mismatch (with a
counterexample replayed in the interpreter); 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from k8s_offload.compiler.bundle.model import Bundle
from k8s_offload.compiler.bundle.schema import BundleError
from k8s_offload.compiler.driver import CompileResult, compile_sources
from k8s_offload.compiler.errors import ManifestErrors
from k8s_offload.compiler.lower.bundle import lower
from k8s_offload.compiler.passes.pipeline import NO_OPT, PassConfig

EXAMPLES = """\
examples:
  offload-compile verify examples/shop/cluster --node examples/shop/node.yaml
  offload-compile verify cluster/ --no-replay      BDD proof only, no interpreter replay
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "verify",
        help="prove the optimized bundle equivalent to the unoptimized one and to the policy rules",
        description=(
            "Compile with optional passes off and on, prove stage by stage on BDDs that both bundles "
            "give every packet the same outcome, and that the policy stages allow exactly what the "
            "resolved NetworkPolicy rules allow."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("manifests", nargs="+", metavar="MANIFEST", help="files, directories or - for stdin")
    p.add_argument("--node", metavar="FILE", help="node facts (docs/node-facts.md)")
    p.add_argument("--no-replay", action="store_true", help="BDD proof only: no interpreter replay")
    p.set_defaults(func=run)


def optimized(result: CompileResult) -> tuple[Bundle, str]:
    """The bundle with every optimization pass on (compiler/passes/pipeline.py), lowered again from
    the same IR as `result`, which was compiled with none."""
    return lower(result.ir, result.schema, PassConfig()).bundle, "passes on"


def compile_pair(args: argparse.Namespace) -> tuple[CompileResult, Bundle, Bundle, tuple[str, str]]:
    result = compile_sources(args.manifests, args.node, stdin=sys.stdin, passes=NO_OPT)
    on, label = optimized(result)
    return result, result.lowered.bundle, on, ("passes off", label)


def run(args: argparse.Namespace) -> int:
    from k8s_offload.analysis.verify import BackendMissing, Verifier, render_report

    try:
        result, off, on, labels = compile_pair(args)
        verifier = Verifier(result.schema, replay=not args.no_replay)
    except ManifestErrors as err:
        print(str(err), file=sys.stderr)
        return 2
    except BackendMissing as err:
        print(f"offload-compile verify: {err}", file=sys.stderr)
        return 2
    except BundleError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as err:
        print(f"offload-compile verify: {err}", file=sys.stderr)
        return 2
    equiv = verifier.compare(off, on, labels)
    sys.stdout.write(render_report(equiv, "equivalence"))
    reports = [equiv]
    for label, bundle in zip(labels, (off, on), strict=True):
        sem = verifier.semantics(bundle, result.lowered.policy, tiers=result.lowered.tiers)
        sem.labels = ("policy rules", label)
        sys.stdout.write(render_report(sem, "semantics"))
        reports.append(sem)
    ok = all(r.ok for r in reports)
    seconds = sum(r.seconds for r in reports)
    entries = f"{len(off.entries)} and {len(on.entries)} entries"
    verdict = "proved" if ok else "FAILED"
    print(f"verify: {verdict} ({entries}, {seconds:.2f} s, CUDD, {reports[-1].bdd_nodes} BDD nodes)")
    return 0 if ok else 1
