"""`offload-loader`: compile manifests and keep a P4Runtime device in sync with them."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from google.protobuf import text_format
from kubernetes.config.config_exception import ConfigException

from k8s_offload.cluster.watch import api_client
from k8s_offload.compiler.passes.pipeline import LB_MODES, PassConfig
from k8s_offload.compiler.passes.range_encoding import PROFILES
from k8s_offload.loader.daemon import Loader, LoaderConfig
from k8s_offload.loader.metrics import MetricsServer
from k8s_offload.p4rt.client import TlsOptions
from k8s_offload.p4rt.proto import p4info as p4i


class _JsonFormatter(logging.Formatter):
    """One JSON object per line: what log pipelines in a cluster ingest without parsing rules."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="offload-loader", description=__doc__)
    p.add_argument("manifests", nargs="*", metavar="MANIFEST", help="manifest files or directories")
    p.add_argument("--kubeconfig", help="follow the cluster of this kubeconfig instead of manifests")
    p.add_argument(
        "--in-cluster", action="store_true", help="follow the cluster of the pod's service account"
    )
    p.add_argument("--node-name", help="this node's name (overrides nodeName of the node facts)")
    p.add_argument("--node", help="node facts file (docs/node-facts.md)")
    p.add_argument("--target", default="embedded", help="P4Runtime server address, or 'embedded' (default)")
    p.add_argument("--once", action="store_true", help="sync once; exit 0 when the device matches")
    p.add_argument("--device-id", type=int, default=1)
    p.add_argument("--election-id", type=int, default=1)
    p.add_argument("--role", default="")
    p.add_argument("--target-profile", choices=PROFILES, default="bmv2", help="target the entries are for")
    p.add_argument(
        "--lb", choices=LB_MODES, default="hash", help="Service backend selection (docs/passes.md)"
    )
    p.add_argument("--batch-size", type=int, default=1000, help="updates per Write (staged mode)")
    p.add_argument(
        "--atomicity",
        choices=("auto", "dataplane", "rollback", "continue"),
        default="auto",
        help="auto: DATAPLANE_ATOMIC, falling back to staged CONTINUE_ON_ERROR writes",
    )
    p.add_argument("--p4info", type=Path, help="P4Info text file (default: the committed contract)")
    p.add_argument("--device-config", type=Path, help="target pipeline binary (e.g. bmv2 JSON)")
    p.add_argument("--tls-ca", help="CA certificate (PEM) that signed the server's; enables TLS")
    p.add_argument("--tls-cert", help="client certificate (PEM) for mutual TLS")
    p.add_argument("--tls-key", help="client private key (PEM) for mutual TLS")
    p.add_argument("--tls-server-name", help="expected server name, if not the target host")
    p.add_argument("--poll-interval", type=float, default=1.0, help="seconds between source checks")
    p.add_argument("--resync-interval", type=float, default=60.0, help="seconds between full reconciles")
    p.add_argument(
        "--max-delete-share",
        type=_share,
        default=0.5,
        metavar="FRACTION",
        help="a reload deleting more than this share of the entities waits for a second read to "
        "confirm it (default 0.5; 1 turns the guard off)",
    )
    p.add_argument("--metrics", default="127.0.0.1:9464", help="metrics/health listen address; '' disables")
    p.add_argument("--log-format", choices=("text", "json"), default="text")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, got {text!r}")
    return value


def _config(args: argparse.Namespace) -> LoaderConfig:
    info: Any = None
    if args.p4info is not None:
        info = p4i.P4Info()
        text_format.Parse(args.p4info.read_text(encoding="utf-8"), info)
    tls = None
    if args.tls_ca or args.tls_cert:
        tls = TlsOptions(args.tls_ca, args.tls_cert, args.tls_key, args.tls_server_name)
    return LoaderConfig(
        kubeconfig=args.kubeconfig,
        in_cluster=args.in_cluster,
        node_name=args.node_name,
        sources=args.manifests,
        node=args.node,
        target=args.target,
        device_id=args.device_id,
        election_id=args.election_id,
        role=args.role,
        batch_size=args.batch_size,
        atomicity=args.atomicity,
        p4info=info,
        device_config=args.device_config.read_bytes() if args.device_config else b"",
        tls=tls,
        poll_interval=args.poll_interval,
        resync_interval=args.resync_interval,
        max_delete_share=args.max_delete_share,
        passes=PassConfig(profile=args.target_profile, lb=args.lb),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if bool(args.manifests) == bool(args.kubeconfig or args.in_cluster):
        parser.error("give manifests, or --kubeconfig FILE / --in-cluster (not both)")
    handler = logging.StreamHandler()
    if args.log_format == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, handlers=[handler])
    try:
        loader = Loader(_config(args))
        if args.kubeconfig or args.in_cluster:
            # Fail at start, not in the watch thread: a pod without its service account mounted,
            # or a kubeconfig without a usable context, is a deployment error to report plainly.
            api_client(args.kubeconfig, service_account_dir=loader.config.service_account_dir)
    except (OSError, ValueError) as exc:
        print(f"offload-loader: {exc}", file=sys.stderr)
        return 2
    except ConfigException as exc:
        where = f"--kubeconfig {args.kubeconfig}" if args.kubeconfig else "--in-cluster"
        print(f"offload-loader: {where}: {exc}", file=sys.stderr)
        return 2
    if args.once:
        start = time.monotonic()
        code = loader.run_once()
        r = loader.last_result
        if r is not None:
            for err in r.errors:
                print(f"offload-loader: {err}", file=sys.stderr)
        if loader.compile_error:
            print(f"offload-loader: {loader.compile_error}", file=sys.stderr)
        state = "device matches" if code == 0 else "device does NOT match"
        print(f"offload-loader: {state} ({time.monotonic() - start:.2f}s)", file=sys.stderr)
        return code
    server = MetricsServer(loader.metrics, args.metrics).start() if args.metrics else None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        loader.run(stop)
    finally:
        if server is not None:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
