"""``python -m arp_proxy`` runs the proxy, like the ``offload-arp-proxy`` script."""

import sys

from arp_proxy.cli import main

sys.exit(main())
