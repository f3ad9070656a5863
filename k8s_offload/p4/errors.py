"""The one error type of the P4 front end."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # an annotation only: catching this error must not load the whole front end
    from k8s_offload.p4.ast import SourceLoc


class P4FrontendError(Exception):
    """An invalid or unsupported construct, located in the ORIGINAL source so a user can jump
    to it; the CLI prints it and exits 2."""

    def __init__(self, loc: SourceLoc | None, reason: str) -> None:
        self.loc = loc
        self.reason = reason
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.loc}: {self.reason}" if self.loc is not None else self.reason
