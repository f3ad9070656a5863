"""`render` pauses the cyclic GC only while it renders: the caller's GC state comes back as it was."""

from __future__ import annotations

import gc

import pytest

from k8s_offload.compiler.bundle.model import Bundle
from k8s_offload.compiler.bundle.render import FORMATS, render
from k8s_offload.compiler.contract import default_schema


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("enabled", [True, False])
def test_render_restores_the_callers_gc_state(fmt: str, enabled: bool) -> None:
    schema = default_schema()
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        render(schema, Bundle(), fmt)
        assert gc.isenabled() is enabled
        with pytest.raises(ValueError, match="unknown format"):
            render(schema, Bundle(), "yaml")
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
