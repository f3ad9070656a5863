"""`offload-loader`: compile manifests and keep a P4Runtime device in sync with them."""

from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from google.protobuf import text_format
from kubernetes.config.config_exception import ConfigException

from k8s_offload.cluster.watch import api_client
from k8s_offload.compiler.passes.pipeline import LB_MODES, PassConfig
from k8s_offload.compiler.passes.range_encoding import PROFILES
from k8s_offload.console import LOG_FORMATS, Progress, finish_cli, setup_logging
from k8s_offload.httpserve import parse_listen
from k8s_offload.loader.daemon import Loader, LoaderConfig
from k8s_offload.loader.metrics import MetricsServer
from k8s_offload.p4rt.client import TlsOptions
from k8s_offload.p4rt.proto import p4info as p4i


def _int_in(name: str, low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer in [low, high] (checked at start: exit 2, not a later crash)."""

    def parse(text: str) -> int:
        try:
            value = int(text, 0)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside {low}..{high} ({name})")
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: a positive, finite number of seconds")
    return value


def _listen(text: str) -> str:
    if text:
        try:
            parse_listen(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
    return text


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="offload-loader", description=__doc__)
    p.add_argument("manifests", nargs="*", metavar="MANIFEST", help="manifest files or directories")
    p.add_argument("--kubeconfig", help="follow the cluster of this kubeconfig instead of manifests")
    p.add_argument(
        "--in-cluster", action="store_true", help="follow the cluster of the pod's service account"
    )
    p.add_argument("--node-name", help="this node's name (overrides nodeName of the node facts)")
    p.add_argument("--node", help="node facts file (docs/node-facts.md)")
    p.add_argument(
        "--target",
        default="embedded",
        help="P4Runtime server address, or 'embedded' (a target in this process)",
    )
    p.add_argument("--once", action="store_true", help="sync once; exit 0 when the device matches")
    p.add_argument(
        "--device-id",
        type=_int_in("uint64", 0, (1 << 64) - 1),
        default=1,
        help="P4Runtime device id",
    )
    p.add_argument(
        "--election-id",
        type=_int_in("uint128", 0, (1 << 128) - 1),
        default=1,
        help="election id for primary arbitration; the highest the device has seen is primary, so "
        "a higher id takes over (docs/runtime.md, Arbitration)",
    )
    p.add_argument("--role", default="", help="P4Runtime role name ('': the default role)")
    p.add_argument("--target-profile", choices=PROFILES, default="bmv2", help="target the entries are for")
    p.add_argument(
        "--lb", choices=LB_MODES, default="hash", help="Service backend selection (docs/passes.md)"
    )
    p.add_argument(
        "--batch-size",
        type=_int_in("at least 1", 1, 1 << 24),
        default=1000,
        help="updates per Write (staged mode)",
    )
    p.add_argument(
        "--atomicity",
        choices=("auto", "dataplane", "rollback", "continue"),
        default="auto",
        help="auto: DATAPLANE_ATOMIC, falling back to staged CONTINUE_ON_ERROR writes",
    )
    p.add_argument("--p4info", type=Path, help="P4Info text file (unset: the committed contract)")
    p.add_argument("--device-config", type=Path, help="target pipeline binary (e.g. bmv2 JSON); unset: none")
    p.add_argument(
        "--pipeline-check",
        choices=("probe", "cookie"),
        default="probe",
        help="how the pipeline is shown to forward: a PacketOut probe through the data plane (needs "
        "packet I/O; bmv2: --cpu-port 510), or the cookie read-back alone (docs/runtime.md)",
    )
    p.add_argument(
        "--tls-ca", help="CA certificate (PEM) that signed the server's; enables TLS (unset: plaintext)"
    )
    p.add_argument("--tls-cert", help="client certificate (PEM) for mutual TLS; needs --tls-key")
    p.add_argument("--tls-key", help="client private key (PEM) for mutual TLS; needs --tls-cert")
    p.add_argument("--tls-server-name", help="expected server name (unset: the target's host)")
    p.add_argument("--poll-interval", type=_seconds, default=1.0, help="seconds between source checks")
    p.add_argument("--resync-interval", type=_seconds, default=60.0, help="seconds between full reconciles")
    p.add_argument(
        "--max-delete-share",
        type=_share,
        default=0.5,
        metavar="FRACTION",
        help="a reload deleting more than this share of the entities waits for a second read to "
        "confirm it (default 0.5; 1 turns the guard off)",
    )
    p.add_argument(
        "--metrics",
        type=_listen,
        default="127.0.0.1:9464",
        help="metrics/health listen address, HOST:PORT or [IPv6]:PORT; '' disables",
    )
    p.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="text",
        help="log lines: text or one JSON object per line",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="--once: no phase progress on stderr")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return finish_cli(p, EXIT_CODES)


EXIT_CODES = {
    0: "--once: the device matches the sources; daemon: stopped by SIGTERM or SIGINT",
    1: "--once: the device does not match (sync failed, not primary, target unreachable)",
    2: "bad options or sources (one line on stderr), or --once could not compile them",
}


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
        try:
            text_format.Parse(args.p4info.read_text(encoding="utf-8"), info)
        except text_format.ParseError as err:
            raise ValueError(f"--p4info {args.p4info}: not a P4Info text file: {err}") from None
    tls = None
    if args.tls_ca or args.tls_cert or args.tls_key:
        tls = TlsOptions(args.tls_ca, args.tls_cert, args.tls_key, args.tls_server_name)
        tls.check()
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
        pipeline_check=args.pipeline_check,
        progress=Progress("offload-loader", quiet=args.quiet) if args.once else None,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if bool(args.manifests) == bool(args.kubeconfig or args.in_cluster):
        parser.error("give manifests, or --kubeconfig FILE / --in-cluster (not both)")
    setup_logging(args.log_format, args.verbose)
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
    try:
        server = MetricsServer(loader.metrics, args.metrics).start() if args.metrics else None
    except (OSError, ValueError) as exc:
        loader.close()
        print(f"offload-loader: --metrics {args.metrics}: {exc}", file=sys.stderr)
        return 2
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
