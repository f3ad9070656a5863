"""``python -m lab`` runs ``offload-lab``."""

from lab.cli import main

raise SystemExit(main())
