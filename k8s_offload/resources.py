"""Files the commands read at run time, found inside the installed package.

`k8s_offload/p4src` and `k8s_offload/examples` are symbolic links to the repository's top-level
`p4src/` and `examples/`: in a checkout (editable install) they resolve to the real directories,
and setuptools copies the files they reach into wheels and sdists (package data in
pyproject.toml), so `importlib.resources` finds the same relative paths in every kind of install
and nothing looks for a repository root. docs/deploy.md, "Packaging", says why.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def package_path(*parts: str) -> Path:
    """A file or directory shipped in the package, as a real path (the P4 preprocessor and the
    lab need directories, so a zipped install is refused with a clear message)."""
    where = resources.files("k8s_offload").joinpath(*parts)
    if not isinstance(where, Path):
        raise RuntimeError(f"k8s-offload must be installed as files, not zipped: no {'/'.join(parts)}")
    return where


P4SRC = package_path("p4src")
"""The data-plane program: `k8s_dp.p4`, `include/`, and the committed P4Info in `build/`."""

EXAMPLES = package_path("examples")
"""The example clusters the demo and the lab use."""
