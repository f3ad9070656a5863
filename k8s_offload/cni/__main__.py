"""``python -m k8s_offload.cni`` runs the plugin, like the ``offload-cni`` script."""

import sys

from k8s_offload.cni.cli import main

sys.exit(main())
