"""Read a P4Runtime device back with finsy (a client not written here) and print it as JSON.

Runs in its own virtualenv (finsy pins protobuf < 7; see tests/target/test_finsy.py), so it
imports nothing from this project. Output: {"primary": bool, "api_version": str, "entities":
[{"kind", "name", "entity"}]} where `entity` is the p4.v1.Entity finsy decoded against the
device's P4Info and encoded again, as protobuf JSON.

    python finsy_readback.py ADDRESS [--device-id N] [--election-id N] [--delete-all]

With --delete-all it first runs finsy's `Switch.delete_all()` (wildcard reads of table entries,
multicast groups and clone sessions, then deletes; defaults reset; members and groups deleted).
"""

import argparse
import asyncio
import json

import finsy as fy
from google.protobuf import json_format


async def read_back(address: str, device_id: int, election_id: int, delete_all: bool) -> dict:
    opts = fy.SwitchOptions(device_id=device_id, initial_election_id=election_id)
    async with fy.Switch("dut", address, opts) as sw:
        if delete_all:
            await sw.delete_all()
        wanted = [fy.P4TableEntry(), fy.P4ActionProfileMember(), fy.P4ActionProfileGroup()]
        wanted += [fy.P4TableEntry(t.alias, is_default_action=True) for t in sw.p4info.tables]
        entities = []
        async for ent in sw.read(wanted):
            if isinstance(ent, fy.P4TableEntry):
                kind, name = "table_entry", ent.table_id
            elif isinstance(ent, fy.P4ActionProfileMember):
                kind, name = "action_profile_member", ent.action_profile_id
            else:
                kind, name = "action_profile_group", ent.action_profile_id
            proto = json_format.MessageToDict(ent.encode(sw.p4info), preserving_proto_field_name=True)
            entities.append({"kind": kind, "name": name, "entity": proto})
        return {"primary": sw.is_primary, "api_version": str(sw.p4runtime_version), "entities": entities}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("address")
    p.add_argument("--device-id", type=int, default=1)
    p.add_argument("--election-id", type=int, default=10)
    p.add_argument("--delete-all", action="store_true")
    args = p.parse_args()
    result = asyncio.run(read_back(args.address, args.device_id, args.election_id, args.delete_all))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
