/* The PNA flow-cache pattern of p4src/k8s_dp_pna.p4, reduced to one learner: a packet that misses
 * carries a commit record (a header emitted in front of Ethernet) into a second pass
 * (recirculate()), whose lookup misses again and adds the entry from the record; later packets
 * with the same key hit it. The record's data here is the frame's source MAC's low byte + 1, so a
 * hit shows which packet's data was learned (tests/dpdk/test_pna_constructs.py). */
#include <core.p4>
#include <dpdk/pna.p4>

header commit_t {
    bit<32> data;
}
header ethernet_t {
    bit<48> dst;
    bit<48> src;
    bit<16> etype;
}
header key_t {
    bit<48> src;
}
struct headers_t {
    commit_t commit;
    ethernet_t eth;
    key_t key;
}
/* DPDK's learn takes the new entry's data and its expire-time profile from metadata only. */
struct main_metadata_t {
    bit<32> data;
    bit<32> learned;
    bit<8> expire;
}

parser MainParserImpl(packet_in pkt, out headers_t hdr, inout main_metadata_t meta,
                      in pna_main_parser_input_metadata_t istd) {
    state start {
        transition select((bit<3>)istd.pass) {
            0: parse_ethernet;
            default: parse_commit;
        }
    }
    state parse_commit {
        pkt.extract(hdr.commit);
        transition parse_ethernet;
    }
    state parse_ethernet {
        pkt.extract(hdr.eth);
        transition accept;
    }
}

control PreControlImpl(in headers_t hdr, inout main_metadata_t meta,
                       in pna_pre_input_metadata_t istd, inout pna_pre_output_metadata_t ostd) {
    apply {
    }
}

control MainControlImpl(inout headers_t hdr, inout main_metadata_t meta,
                        in pna_main_input_metadata_t istd, inout pna_main_output_metadata_t ostd) {
    action known(bit<32> data) {
        meta.learned = data;
        restart_expire_timer();
    }
    action unknown() {
        if (hdr.commit.isValid()) {
            add_entry("known", meta.data, (ExpireTimeProfileId_t)meta.expire);
        }
        meta.learned = 0;
    }
    table flows {
        key = {
            hdr.key.src : exact;
        }
        actions = {
            known;
            @defaultonly unknown;
        }
        default_action = unknown();
        add_on_miss = true;
        idle_timeout_with_auto_delete = true;
        size = 1024;
    }
    action send(PortId_t port) {
        send_to_port(port);
    }
    action drop() {
        drop_packet();
    }
    table egress_port {
        key = {
            hdr.eth.dst : exact;
        }
        actions = {
            send;
            drop;
        }
        default_action = drop();
        size = 16;
    }
    apply {
        meta.expire = 3;
        meta.data = hdr.commit.data;
        hdr.key.setValid();
        hdr.key.src = hdr.eth.src;
        flows.apply();
        hdr.key.setInvalid();
        /* Which pass and what the lookup found, in the frame for the test to read. */
        hdr.eth.etype = (bit<16>)meta.learned;
        if (hdr.commit.isValid()) {
            hdr.commit.setInvalid();
            hdr.eth.dst[7:0] = 0xc2;
            egress_port.apply();
        } else if (meta.learned == 0) {
            hdr.commit.setValid();
            hdr.commit.data = (bit<32>)hdr.eth.src[7:0] + 1;
            recirculate();
        } else {
            egress_port.apply();
        }
    }
}

control MainDeparserImpl(packet_out pkt, in headers_t hdr, in main_metadata_t meta,
                         in pna_main_output_metadata_t ostd) {
    apply {
        pkt.emit(hdr.commit);
        pkt.emit(hdr.eth);
    }
}

PNA_NIC(MainParserImpl(), PreControlImpl(), MainControlImpl(), MainDeparserImpl()) main;
