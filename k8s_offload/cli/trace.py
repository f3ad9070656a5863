"""`offload-compile trace`: NetworkPolicy and Service verdicts computed at packet level."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from k8s_offload.analysis.trace import OUTCOMES, Probe, Tracer, make_probe, parse_probes, render_text
from k8s_offload.compiler.bundle.schema import BundleError
from k8s_offload.compiler.driver import compile_sources
from k8s_offload.compiler.errors import Location, ManifestError, ManifestErrors
from k8s_offload.compiler.frontend.sources import SourceError, read_path
from k8s_offload.target.install import interpreter_with

EXAMPLES = """\
examples:
  offload-compile trace examples/shop/cluster --probes examples/shop/probes.yaml
  offload-compile trace examples/shop/cluster --from shop/cart-7f8b6-pqrst --to svc:data/redis --port 6379
  offload-compile trace cluster/ --node node.yaml --probes probes.yaml --format json
  offload-compile trace cluster/ --probes intent.yaml --expect denied   # a CI check of intent

A probes file is a YAML list of {from: NS/POD, to: NS/POD | svc:NS/NAME | IP | IP:PORT |
nodeport:NODE_IP:PORT, port: N (optional when `to` has one), protocol: TCP|UDP|SCTP,
expect: allowed|denied|rejected (optional)}. A probe is allowed when its first packet reaches
the destination pod's port and the reply reaches the source pod's port; denied covers rejected
too. Every verdict names the objects that decided it (docs/trace.md).

exit status: 0 every verdict as expected (or nothing expected); 1 some verdict differs from its
expectation, or the entries do not fit the device; 2 bad input (manifests, node facts, probes).
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "trace",
        help="trace probe connections through the compiled pipeline",
        description="Run probe connections through the interpreter with the compiled bundle installed.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("manifests", nargs="+", metavar="MANIFEST", help="files, directories or - for stdin")
    p.add_argument("--node", metavar="FILE", help="node facts (docs/node-facts.md)")
    p.add_argument("--probes", metavar="FILE", help="YAML list of probes")
    p.add_argument("--from", dest="source", metavar="NS/POD", help="one probe: the client pod")
    p.add_argument(
        "--to",
        dest="target",
        metavar="TARGET",
        help="one probe: NS/POD, svc:NS/NAME, IP, IP:PORT ([IPv6]:PORT) or nodeport:NODE_IP:PORT",
    )
    p.add_argument("--port", type=int, help="one probe: destination port (the service port for svc:)")
    p.add_argument("--protocol", default="TCP", help="one probe: TCP, UDP or SCTP (default TCP)")
    p.add_argument(
        "--expect",
        choices=OUTCOMES,
        help="the verdict every probe should get (a probe's own expect: wins); any other is exit 1",
    )
    p.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text for people, or JSON for tools (schema in docs/trace.md)",
    )
    p.set_defaults(func=run)


def _probes(args: argparse.Namespace) -> list[Probe]:
    if args.probes and args.source:
        raise ValueError("give either --probes or --from/--to/--port, not both")
    if args.probes:
        try:
            text = read_path(args.probes)
        except SourceError as exc:
            raise ManifestErrors([ManifestError(Location(args.probes), "", "", str(exc))]) from None
        return parse_probes(text, args.probes, args.expect)
    if not (args.source and args.target):
        raise ValueError("give --probes FILE, or --from, --to and --port (or a port in --to)")
    return [make_probe(args.source, args.target, args.port, args.protocol, args.expect)]


def run(args: argparse.Namespace) -> int:
    try:
        probes = _probes(args)
        result = compile_sources(args.manifests, args.node, stdin=sys.stdin)
        sim = interpreter_with(result.schema, result.lowered.bundle)
        tracer = Tracer(result.manifests, result.ir, result.schema, sim, result.lowered)
        verdicts = [tracer.run(p) for p in probes]
    except ManifestErrors as err:
        print(str(err), file=sys.stderr)
        return 2
    except (ValueError, OSError) as err:
        print(f"offload-compile trace: {err}", file=sys.stderr)
        return 2
    except BundleError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.format == "json":
        out = json.dumps([v.as_json() for v in verdicts], indent=2) + "\n"
    else:
        out = render_text(verdicts)
    sys.stdout.write(out)
    missed = sum(1 for v in verdicts if v.as_expected is False)
    if missed:
        print(
            f"offload-compile trace: {missed} of {len(verdicts)} verdicts differ from what was expected",
            file=sys.stderr,
        )
        return 1
    return 0
