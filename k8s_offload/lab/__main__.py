"""``python -m lab`` runs ``offload-lab``."""

from k8s_offload.lab.cli import main

raise SystemExit(main())
