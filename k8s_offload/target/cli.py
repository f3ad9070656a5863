"""`offload-switch`: the embedded P4Runtime target as a standalone server."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence

from k8s_offload.console import LOG_FORMATS, finish_cli, setup_logging
from k8s_offload.target.dataplane import PortIO, flush_flow_cache, parse_port_map
from k8s_offload.target.server import EmbeddedTarget, ServerTls

EXIT_CODES = {
    0: "stopped by SIGTERM or SIGINT",
    1: "cannot listen (address in use or not available) or cannot open a --port interface",
    2: "bad options (one line on stderr)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="offload-switch", description="P4Runtime server backed by the k8s-offload behavioral model"
    )
    parser.add_argument("--listen", default="127.0.0.1:9559", help="HOST:PORT to serve P4Runtime on")
    parser.add_argument(
        "--device-id", type=int, action="append", help="device id served (repeatable; default 1)"
    )
    parser.add_argument(
        "--continue-on-error-only",
        action="store_true",
        help="answer UNIMPLEMENTED for ROLLBACK_ON_ERROR and DATAPLANE_ATOMIC, like bmv2/Stratum/infrap4d",
    )
    parser.add_argument(
        "--port",
        action="append",
        default=[],
        metavar="PORT=IF",
        help="forward real frames between device port PORT and interface IF (repeatable; first device)",
    )
    parser.add_argument(
        "--tls-cert", help="server certificate (PEM); with --tls-key enables TLS (unset: plaintext)"
    )
    parser.add_argument("--tls-key", help="server private key (PEM)")
    parser.add_argument("--tls-client-ca", help="CA (PEM) that must have signed client certificates (mTLS)")
    parser.add_argument(
        "--log-format", choices=LOG_FORMATS, default="text", help="log lines: text or JSON objects"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return finish_cli(parser, EXIT_CODES)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key) or (args.tls_client_ca and not args.tls_cert):
        parser.error("--tls-cert and --tls-key go together, and --tls-client-ca needs them")
    tls = ServerTls(args.tls_cert, args.tls_key, args.tls_client_ca) if args.tls_cert else None
    setup_logging(args.log_format, args.verbose)
    switch = EmbeddedTarget(
        args.listen,
        device_ids=args.device_id or (1,),
        continue_on_error_only=args.continue_on_error_only,
        tls=tls,
    )
    try:
        ports = parse_port_map(args.port)
    except ValueError as err:
        parser.error(str(err))
    port_io: PortIO | None = None
    try:
        switch.start()
        if ports:
            port_io = PortIO(switch.device((args.device_id or [1])[0]), ports).start()
    except ValueError as err:  # TLS material that cannot be used: an option error
        switch.stop()
        print(f"offload-switch: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        switch.stop()
        print(f"offload-switch: {err}", file=sys.stderr)
        return 1
    print(f"offload-switch: serving P4Runtime on {switch.address}", file=sys.stderr, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: switch.stop())
    device = switch.device((args.device_id or [1])[0])
    signal.signal(  # SIGUSR1: forget all connections, like `conntrack -F`
        signal.SIGUSR1,
        lambda *_: logging.getLogger("k8s_offload.target.server").info(
            "flow cache flushed (%d register cells)", flush_flow_cache(device)
        ),
    )
    try:
        switch.wait()
    except KeyboardInterrupt:
        switch.stop()
    if port_io is not None:
        port_io.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
