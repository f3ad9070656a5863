"""The collector pause of a sync (k8s_offload/gcpause.py) never outlives its users, even when they fail.

A collector left disabled would not be noticed until the process grows without bound; so every way
out of a pause (normal, exception, nested, threads, an application's own `gc.disable()`) is checked.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from k8s_offload import gcpause
from k8s_offload.compiler.contract import default_schema
from k8s_offload.loader.sync import Syncer


@pytest.fixture(autouse=True)
def _collector_restored() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


class Boom(Exception):
    pass


def test_pause_disables_inside_and_restores_after() -> None:
    with gcpause.paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_exception_inside_restores_the_collector_and_propagates() -> None:
    with pytest.raises(Boom), gcpause.paused():
        raise Boom
    assert gc.isenabled()


def test_base_exception_restores_the_collector() -> None:
    with pytest.raises(KeyboardInterrupt), gcpause.paused():
        raise KeyboardInterrupt
    assert gc.isenabled()


def test_nested_inner_failure_keeps_the_outer_pause_then_restores() -> None:
    with gcpause.paused():
        with pytest.raises(Boom), gcpause.paused():
            raise Boom
        assert not gc.isenabled()  # the outer user still holds the pause
    assert gc.isenabled()


def test_a_collector_the_application_disabled_stays_disabled() -> None:
    gc.disable()
    with pytest.raises(Boom), gcpause.paused():
        raise Boom
    assert not gc.isenabled()


def test_overlapping_threads_restore_when_the_last_ends_even_if_one_fails() -> None:
    inside = threading.Barrier(3)  # both users and this test
    release = threading.Event()
    failed: list[BaseException] = []

    def user(fail: bool) -> None:
        try:
            with gcpause.paused():
                inside.wait(timeout=10)
                release.wait(timeout=10)
                if fail:
                    raise Boom
        except Boom as err:
            failed.append(err)

    threads = [threading.Thread(target=user, args=(fail,)) for fail in (True, False)]
    for t in threads:
        t.start()
    inside.wait(timeout=10)  # both are inside their pause
    assert not gc.isenabled()
    release.set()
    for t in threads:
        t.join(timeout=10)
    assert len(failed) == 1
    assert gc.isenabled()


class _FailingClient:
    """A device whose read fails: the sync's pause must end with the error."""

    def read_all(self, p4info: object) -> object:
        assert not gc.isenabled()  # the read runs inside the sync's pause
        raise Boom("device unreachable")


def test_a_sync_that_raises_restores_the_collector() -> None:
    syncer = Syncer(_FailingClient(), default_schema(), batch_size=10, mode="continue")  # type: ignore[arg-type]
    with pytest.raises(Boom, match="device unreachable"):
        syncer.sync({})
    assert gc.isenabled()
