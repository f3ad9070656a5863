"""Controller packet metadata (P4Info `controller_packet_metadata`) to and from header bytes.

A PacketOut enters the pipeline on the CPU port with the `packet_out` header in front of the
payload, and a packet sent to the CPU port leaves with `packet_in` in front: what bmv2's PI does
(spec §"Packet I/O", §"ControllerPacketMetadata"). Fields are packed MSB first in P4Info order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from k8s_offload.p4rt.proto import p4runtime as p4r


class PacketMetadataError(ValueError):
    """Metadata that does not match the P4Info: the server drops the PacketOut (spec §"Packet I/O")."""


@dataclass(frozen=True, slots=True)
class ControllerHeader:
    name: str
    fields: tuple[tuple[int, str, int], ...]  # (metadata id, name, bitwidth), in header order

    @property
    def nbytes(self) -> int:
        return (sum(w for _, _, w in self.fields) + 7) // 8

    def pack(self, metadata: Iterable[Any]) -> bytes:
        given = {m.metadata_id: int.from_bytes(m.value, "big") for m in metadata}
        value = 0
        for mid, name, width in self.fields:
            if mid not in given:
                raise PacketMetadataError(f"{self.name}: metadata {name} (id {mid}) is missing")
            v = given.pop(mid)
            if v >= 1 << width:
                raise PacketMetadataError(f"{self.name}: metadata {name} does not fit in {width} bits")
            value = (value << width) | v
        if given:
            raise PacketMetadataError(f"{self.name}: unknown metadata id {sorted(given)[0]}")
        return value.to_bytes(self.nbytes, "big") if self.fields else b""

    def unpack(self, data: bytes) -> tuple[list[Any], bytes]:
        """Metadata messages for the header at the front of `data`, and the rest of the packet."""
        n = self.nbytes
        value = int.from_bytes(data[:n], "big")
        total = sum(w for _, _, w in self.fields)
        out: list[Any] = []
        shift = total
        for mid, _, width in self.fields:
            shift -= width
            v = (value >> shift) & ((1 << width) - 1)
            out.append(
                p4r.PacketMetadata(
                    metadata_id=mid, value=v.to_bytes(max(1, (v.bit_length() + 7) // 8), "big")
                )
            )
        return out, data[n:]


def controller_headers(p4info: Any) -> dict[str, ControllerHeader]:
    return {
        h.preamble.name: ControllerHeader(
            h.preamble.name, tuple((m.id, m.name, m.bitwidth) for m in h.metadata)
        )
        for h in p4info.controller_packet_metadata
    }
