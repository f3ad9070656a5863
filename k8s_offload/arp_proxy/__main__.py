"""``python -m k8s_offload.arp_proxy`` runs the proxy, like the ``offload-arp-proxy`` script."""

import sys

from k8s_offload.arp_proxy.cli import main

sys.exit(main())
