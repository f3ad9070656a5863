"""`offload-switch`: the embedded P4Runtime target as a standalone server."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence

from .switch import EmbeddedSwitch


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="offload-switch", description="P4Runtime server backed by the k8s-offload behavioral model"
    )
    parser.add_argument("--listen", default="127.0.0.1:9559", help="address (default %(default)s)")
    parser.add_argument("--device-id", type=int, action="append", help="device id(s) served (default 1)")
    parser.add_argument(
        "--continue-on-error-only",
        action="store_true",
        help="answer UNIMPLEMENTED for ROLLBACK_ON_ERROR and DATAPLANE_ATOMIC, like bmv2/Stratum/infrap4d",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    switch = EmbeddedSwitch(
        args.listen, device_ids=args.device_id or (1,), continue_on_error_only=args.continue_on_error_only
    )
    try:
        switch.start()
    except OSError as err:
        print(f"offload-switch: {err}", file=sys.stderr)
        return 1
    print(f"offload-switch: serving P4Runtime on {switch.address}", file=sys.stderr, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: switch.stop())
    try:
        switch.wait()
    except KeyboardInterrupt:
        switch.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
