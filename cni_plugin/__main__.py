"""``python -m cni_plugin`` runs the plugin, like the ``offload-cni`` script."""

import sys

from cni_plugin.cli import main

sys.exit(main())
