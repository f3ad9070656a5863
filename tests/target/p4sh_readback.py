"""Read a P4Runtime device with p4runtime-shell (a client not written here) and print it as JSON.

Runs in its own virtualenv (p4runtime-shell pins protobuf < 3.21; see tests/target/third_party.py),
so it imports nothing from this project. Every read is a wildcard read: each table (entries, then
its default entry), each action profile's members and groups, each counter, every multicast group
and clone session. Output: {"entities": [{"kind", "name", "entity"}], "errors": [...]}, the entities
as protobuf JSON.

    python p4sh_readback.py ADDRESS [--device-id N] [--election-id N]
"""

import argparse
import json

from google.protobuf import json_format
from p4runtime_sh import shell as sh
from p4runtime_sh.context import P4Type


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("address")
    p.add_argument("--device-id", type=int, default=1)
    p.add_argument("--election-id", type=int, default=1)
    args = p.parse_args()
    sh.setup(
        device_id=args.device_id, grpc_addr=args.address, election_id=(0, args.election_id), verbose=False
    )
    out = []
    errors = []

    def collect(kind, name, entity):
        msg = entity.msg()  # rebuilt from the parsed fields: what the shell understood
        out.append({"kind": kind, "name": name, "entity": json_format.MessageToDict(msg)})

    def wildcard(kind, name, make):
        try:
            for e in make().read():
                collect(kind, name, e)
        except Exception as exc:  # a read the server refused: report it, go on
            errors.append(f"{kind} {name}: {exc}")

    try:
        for name, info in sh.context.get_objs(P4Type.table):
            wildcard("table_entry", name, lambda n=name: sh.TableEntry(n))
            if info.implementation_id:
                continue  # indirect: no default entry to read (the shell itself refuses)

            def default(n=name):
                te = sh.TableEntry(n)
                te.is_default = True
                return te

            wildcard("default_entry", name, default)
        for name, _ in sh.context.get_objs(P4Type.action_profile):
            wildcard("action_profile_member", name, lambda n=name: sh.ActionProfileMember(n))
            wildcard("action_profile_group", name, lambda n=name: sh.ActionProfileGroup(n))
        for name, _ in sh.context.get_objs(P4Type.counter):
            wildcard("counter_entry", name, lambda n=name: sh.CounterEntry(n))
        wildcard("multicast_group_entry", "", sh.MulticastGroupEntry)
        wildcard("clone_session_entry", "", sh.CloneSessionEntry)
    finally:
        sh.teardown()
    print(json.dumps({"entities": out, "errors": errors}))


if __name__ == "__main__":
    main()
