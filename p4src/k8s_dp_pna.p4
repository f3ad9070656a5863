/* k8s-offload data plane: PNA top level for P4-DPDK (p4c-dpdk --arch pna, IPDK infrap4d).
 *
 * The stages are the architecture-neutral controls of include/pipeline.p4, shared with the
 * v1model program k8s_dp.p4; include/arch.p4 (TARGET_DPDK_PNA) swaps the few constructs p4c-dpdk
 * cannot compile. What is PNA-specific lives here, written for what p4c-dpdk 1.2.4 and the DPDK
 * SWX pipeline do (docs/architectures.md):
 *  - the flow cache and the session-affinity memory are add_on_miss learner tables, not registers
 *    indexed by a hash: a lookup miss may add the entry, from the miss action only, with the key of
 *    that lookup and data known at that moment. A new flow's data (backend, frontend, masquerade
 *    address) is known only after the lookup, so the first packet of a flow that passes policy
 *    carries a commit record (hdr.ct_commit) into a second pass (recirculate()), where the learner
 *    tables are looked up again with the keys to commit and miss into add_entry;
 *  - the output port comes from a table action parameter (send_to_port() takes a directionless
 *    PortId_t, which p4c-dpdk accepts only from a constant or an action parameter): port_out maps
 *    the pipeline's port numbers to PNA ports; every path ends in send_to_port, drop_packet or
 *    recirculate explicitly (a packet that calls none leaves on port 0);
 *  - the selector uses pna_implementation; checksums are InternetChecksum updates over 16/64-bit
 *    fields and whole headers (p4c-dpdk pads sub-byte list elements one by one, and DPDK's ckadd
 *    takes fields of at most 64 bits or a whole header). */
#include <core.p4>
#include <dpdk/pna.p4>

#define TARGET_DPDK_PNA
#include "include/defines.p4"

/* A learner key: a flow's 5-tuple (ct_orig, ct_reply). Scratch, never emitted. */
header flow_key_t {
    bit<8>   proto;
    bit<128> src_addr;
    bit<128> dst_addr;
    bit<16>  sport;
    bit<16>  dport;
}

/* The session-affinity memory's key: (affinity domain, client address). Scratch. */
header aff_key_t {
    bit<24>  aff_id;
    bit<128> client;
}

/* What the first pass of a new, allowed flow hands to its second pass, emitted in front of the
 * Ethernet header and parsed back (state kept in a header, not in metadata: PNA does not promise
 * that user metadata survives recirculation). The packet behind it is already translated. */
header ct_commit_t {
    /* The original direction's 5-tuple, before translation: the ORIG entry's key. */
    bit<8>   proto;
    bit<128> src_addr;
    bit<128> dst_addr;
    bit<16>  sport;
    bit<16>  dport;
    /* ORIG data: the backend, and the source NAT address when masqueraded. */
    bit<128> be_addr;
    bit<32>  be_addr4;
    bit<16>  be_port;
    bit<64>  be_hi;        /* the backend's IPv6 address as words (affinity memory) */
    bit<64>  be_lo;
    bit<128> masq_addr;
    bit<32>  masq_addr4;
    /* REPLY data: the frontend, and the client's address when masqueraded. */
    bit<128> fe_addr;
    bit<32>  fe_addr4;
    bit<16>  fe_port;
    bit<128> client_addr;
    bit<32>  client_addr4;
    bit<32>  assoc;        /* digest of the REPLY data, to tell a retransmission from a collision */
    bit<24>  aff_id;
    bit<8>   flags;        /* CT_FLAG_* */
    bit<8>   expire;       /* the flow's expire-time profile */
    bit<8>   drop_reason;  /* DROP_NONE: forward to out_port */
    bit<16>  out_port;
}

/* ct_commit_t.flags and the flags argument of the learner actions. */
const bit<8> CT_FLAG_LB   = 0x01;
const bit<8> CT_FLAG_MASQ = 0x02;

/* Expire-time profiles of p4c-dpdk's learner tables ({10, 30, 60, 120, 300, 43200, 120, 120}
 * seconds, the p4c-dpdk defaults, in profile order). */
const bit<8> CT_PROFILE_CLOSING = 0;   /* 10 s: after a FIN or RST */
const bit<8> CT_PROFILE_OTHER   = 3;   /* 120 s: UDP, SCTP, ICMP */
const bit<8> CT_PROFILE_TCP     = 5;   /* 43,200 s: TCP (v1model: 7,200 units, about 2 h 6 min) */

/* The selector as the compiler's dpdk profile models it (k8s_offload/compiler/lower/ecmp.py):
 * p4c-dpdk reads the ActionSelector's size as the number of groups and 2^(output width) as the
 * slots of each group, and DPDK's selector table also rejects member ids at or above that, so
 * 2^16 is the number of distinct members too (memory: groups x slots x 4 bytes = 256 MiB). */
const bit<32> SELECTOR_GROUPS = 1024;
const bit<32> LEARNER_SIZE    = 65536;

#include "include/headers.p4"
#include "include/pipeline.p4"

parser K8sParser(packet_in packet, out headers_t hdr, inout local_metadata_t meta,
                 in pna_main_parser_input_metadata_t istd) {
    state start {
        transition select((bit<3>)istd.pass) {
            0: parse_ethernet;
            default: parse_commit;
        }
    }
    state parse_commit {
        packet.extract(hdr.ct_commit);
        transition parse_ethernet;
    }
    state parse_ethernet {
        packet.extract(hdr.ethernet);
        transition select(hdr.ethernet.ether_type) {
            ETHERTYPE_ARP: parse_arp;
            ETHERTYPE_IPV4: parse_ipv4;
            ETHERTYPE_IPV6: parse_ipv6;
            default: accept;
        }
    }
    state parse_arp {
        packet.extract(hdr.arp);
        transition accept;
    }
    state parse_ipv4 {
        packet.extract(hdr.ipv4);
        transition select(hdr.ipv4.ihl, hdr.ipv4.flags[0:0], hdr.ipv4.frag_offset, hdr.ipv4.protocol) {
            (4w5, 1w0, 13w0, IP_PROTO_TCP): parse_tcp;
            (4w5, 1w0, 13w0, IP_PROTO_UDP): parse_udp;
            (4w5, 1w0, 13w0, IP_PROTO_SCTP): parse_sctp;
            (4w5, 1w0, 13w0, IP_PROTO_ICMP): parse_icmp;
            default: accept;
        }
    }
    state parse_ipv6 {
        /* The same 40 bytes as 64-bit words first: the only way to test their upper bits here. */
        hdr.ipv6w = packet.lookahead<ipv6_words_t>();
        packet.extract(hdr.ipv6);
        transition select(hdr.ipv6.next_hdr) {
            IP_PROTO_TCP: parse_tcp;
            IP_PROTO_UDP: parse_udp;
            IP_PROTO_SCTP: parse_sctp;
            IP_PROTO_ICMPV6: parse_icmpv6;
            default: accept;
        }
    }
    state parse_tcp {
        packet.extract(hdr.tcp);
        transition accept;
    }
    state parse_udp {
        packet.extract(hdr.udp);
        transition accept;
    }
    state parse_sctp {
        packet.extract(hdr.sctp);
        transition accept;
    }
    state parse_icmp {
        packet.extract(hdr.icmp);
        transition accept;
    }
    state parse_icmpv6 {
        packet.extract(hdr.icmp);
        transition select(hdr.icmp.icmp_type) {
            ICMPV6_NEIGHBOR_SOLICIT: parse_ndp;
            ICMPV6_NEIGHBOR_ADVERT: parse_ndp;
            default: accept;
        }
    }
    state parse_ndp {
        packet.extract(hdr.ndp);
        transition accept;
    }
}

control K8sPreControl(in headers_t hdr, inout local_metadata_t meta,
                      in pna_pre_input_metadata_t istd, inout pna_pre_output_metadata_t ostd) {
    apply {
    }
}

control K8sIngress(inout headers_t hdr, inout local_metadata_t meta,
                   in pna_main_input_metadata_t istd, inout pna_main_output_metadata_t ostd) {
    PortClassify() port_classify;
    FlowKey() flow_key;
    NeighSteer() neigh_steer;
    ServiceFrontend() service_frontend;
    BackendNat() backend_nat;
    ReverseNat() reverse_nat;
    AffinityCheck() affinity_check;
    NatSource() nat_source;
    SourceNat() source_nat;
    RestoreClient() restore_client;
    EgressPolicy() egress_policy;
    IngressPolicy() ingress_policy;
    Forward() forward;

    @id(0x12000001)
    Counter<bit<64>, bit<32>>(DROP_REASON_COUNT, PNA_CounterType_t.PACKETS) drop_reasons;

    @id(0x11000001) @max_group_size(512)
    ActionSelector(PNA_HashAlgorithm_t.CRC16, SELECTOR_GROUPS, 32w16) svc_selector;

    Hash<bit<32>>(PNA_HashAlgorithm_t.CRC32) split_hasher;
    Hash<bit<32>>(PNA_HashAlgorithm_t.CRC32) assoc_hasher;
    InternetChecksum() ck;

    bool tcp_closing;
    bit<8> ct_flags;
    bit<8> ct_expire;
    bit<32> split_hash;
    /* The addresses and ports as received, for the incremental L4 checksum update. */
    ipv4_addr_t old_src4;
    ipv4_addr_t old_dst4;
    bit<16> old_sport;
    bit<16> old_dport;
    /* The chosen backend's IPv6 address as 64-bit words (hairpin test: no 128-bit comparison). */
    bit<64> be_hi;
    bit<64> be_lo;
    /* A 32-bit digest of a flow's REPLY data (frontend, client, flags): a second pass that finds
     * the reply tuple taken compares digests (no 128-bit comparison). */
    bit<32> assoc;
    bit<32> stored_assoc;
    bool l4_update;
    bit<16> l4_checksum;

    @id(0x01000b05)
    action set_backend4(@format(IPV4_ADDRESS) ipv4_addr_t addr, bit<16> port) {
        meta.lb = true;
        meta.be_addr = (bit<128>)(IPV4_MAPPED_PREFIX32 ++ addr);
        meta.be_addr4 = addr;
        meta.be_port = port;
        be_hi = 0;
        be_lo = 0;
    }
    @id(0x01000b06)
    action set_backend6(@format(IPV6_ADDRESS) ipv6_addr_t addr, bit<16> port, bit<64> addr_hi,
                        bit<64> addr_lo) {
        meta.lb = true;
        meta.be_addr = addr;
        meta.be_port = port;
        be_hi = addr_hi;
        be_lo = addr_lo;
    }
    /* As in k8s_dp.p4; no default action (a miss is not a Service). */
    @id(0x02000501)
    table svc_frontend {
        key = {
            meta.dst_addr    : exact @format(IPV6_ADDRESS);
            meta.l4_proto    : exact;
            meta.dport       : exact;
            meta.fe_internal : exact;
            meta.fe_bucket   : exact;
            meta.src_addr    : selector;
            meta.sport       : selector;
            meta.l4_proto    : selector;
        }
        actions = {
            set_backend4;
            set_backend6;
        }
        pna_implementation = svc_selector;
        size = FRONTEND_TABLE_SIZE;
    }

    /* The flow cache. ct_orig: a flow's original 5-tuple -> its backend (ESTABLISHED). ct_reply:
     * the reply direction's 5-tuple (after translation) -> the frontend (REPLY). An entry expires
     * after its profile's idle time; every hit restarts it, and a FIN or RST switches the entry
     * to CT_PROFILE_CLOSING. Added only in a commit pass (ct_miss). */
    @id(0x01000e01)
    action ct_established(bit<8> flags, bit<32> be_addr4, bit<16> be_port, bit<32> masq_addr4,
                          bit<128> be_addr, bit<128> masq_addr) {
        meta.ct_state = CT_STATE_ESTABLISHED;
        meta.lb = (flags & CT_FLAG_LB) != 0;
        meta.masq = (flags & CT_FLAG_MASQ) != 0;
        meta.be_addr = be_addr;
        meta.be_addr4 = be_addr4;
        meta.be_port = be_port;
        meta.masq_addr = masq_addr;
        meta.masq_addr4 = masq_addr4;
        if (tcp_closing) {
            set_entry_expire_time((ExpireTimeProfileId_t)CT_PROFILE_CLOSING);
        } else {
            restart_expire_timer();
        }
    }
    @id(0x01000e02)
    action ct_orig_miss() {
        if (hdr.ct_commit.isValid()) {
            add_entry("ct_established",
                      { hdr.ct_commit.flags, hdr.ct_commit.be_addr4, hdr.ct_commit.be_port,
                        hdr.ct_commit.masq_addr4, hdr.ct_commit.be_addr, hdr.ct_commit.masq_addr },
                      (ExpireTimeProfileId_t)ct_expire);
        }
    }
    @id(0x02000e01)
    table ct_orig {
        key = {
            hdr.ct_okey.proto    : exact;
            hdr.ct_okey.src_addr : exact;
            hdr.ct_okey.dst_addr : exact;
            hdr.ct_okey.sport    : exact;
            hdr.ct_okey.dport    : exact;
        }
        actions = {
            ct_established;
            @defaultonly ct_orig_miss;
        }
        default_action = ct_orig_miss();
        add_on_miss = true;
        idle_timeout_with_auto_delete = true;
        size = LEARNER_SIZE;
    }
    @id(0x01000e03)
    action ct_replied(bit<8> flags, bit<32> digest, bit<32> fe_addr4, bit<16> fe_port,
                      bit<32> client_addr4, bit<128> fe_addr, bit<128> client_addr) {
        stored_assoc = digest;
        meta.ct_state = CT_STATE_REPLY;
        meta.lb = (flags & CT_FLAG_LB) != 0;
        meta.masq = (flags & CT_FLAG_MASQ) != 0;
        meta.fe_addr = fe_addr;
        meta.fe_addr4 = fe_addr4;
        meta.fe_port = fe_port;
        meta.client_addr = client_addr;
        meta.client_addr4 = client_addr4;
        if (tcp_closing) {
            set_entry_expire_time((ExpireTimeProfileId_t)CT_PROFILE_CLOSING);
        } else {
            restart_expire_timer();
        }
    }
    @id(0x01000e04)
    action ct_reply_miss() {
        if (hdr.ct_commit.isValid()) {
            add_entry("ct_replied",
                      { hdr.ct_commit.flags, hdr.ct_commit.assoc, hdr.ct_commit.fe_addr4,
                        hdr.ct_commit.fe_port, hdr.ct_commit.client_addr4, hdr.ct_commit.fe_addr,
                        hdr.ct_commit.client_addr },
                      (ExpireTimeProfileId_t)ct_expire);
        }
    }
    @id(0x02000e02)
    table ct_reply {
        key = {
            hdr.ct_rkey.proto    : exact;
            hdr.ct_rkey.src_addr : exact;
            hdr.ct_rkey.dst_addr : exact;
            hdr.ct_rkey.sport    : exact;
            hdr.ct_rkey.dport    : exact;
        }
        actions = {
            ct_replied;
            @defaultonly ct_reply_miss;
        }
        default_action = ct_reply_miss();
        add_on_miss = true;
        idle_timeout_with_auto_delete = true;
        size = LEARNER_SIZE;
    }

    /* Session affinity memory: (domain, client) -> the backend of the connection that added the
     * entry. The per-Service timeout is not applied: the entry lives CT_PROFILE_TCP's idle time,
     * restarted by each new connection that uses it (docs/architectures.md). */
    @id(0x01000e05)
    action aff_remembered(bit<32> be_addr4, bit<16> be_port, bit<64> addr_hi, bit<64> addr_lo,
                          bit<128> be_addr) {
        meta.lb = true;
        be_hi = addr_hi;
        be_lo = addr_lo;
        meta.be_addr = be_addr;
        meta.be_addr4 = be_addr4;
        meta.be_port = be_port;
        restart_expire_timer();
    }
    @id(0x01000e06)
    action aff_miss() {
        if (hdr.ct_commit.isValid()) {
            add_entry("aff_remembered",
                      { hdr.ct_commit.be_addr4, hdr.ct_commit.be_port, hdr.ct_commit.be_hi,
                        hdr.ct_commit.be_lo, hdr.ct_commit.be_addr },
                      (ExpireTimeProfileId_t)CT_PROFILE_TCP);
        }
    }
    @id(0x02000e03)
    table aff_mem {
        key = {
            hdr.aff_key.aff_id : exact;
            hdr.aff_key.client : exact;
        }
        actions = {
            aff_remembered;
            @defaultonly aff_miss;
        }
        default_action = aff_miss();
        add_on_miss = true;
        idle_timeout_with_auto_delete = true;
        size = LEARNER_SIZE;
    }

    /* The pipeline's port numbers (bit<9>, as in every table) to PNA ports: send_to_port() takes
     * its port only from an action parameter. The control plane lists every port it uses. */
    @id(0x01000f01)
    action send(PortId_t port) {
        send_to_port(port);
    }
    @id(0x01000f02)
    action unknown_out_port() {
        drop_packet();
    }
    @id(0x02000f01)
    table port_out {
        key = {
            meta.out_port : exact;
        }
        actions = {
            send;
            @defaultonly unknown_out_port;
        }
        default_action = unknown_out_port();
        size = PORT_TABLE_SIZE;
    }

    apply {
        /* PNA leaves user metadata undefined at the start of a pass (the SWX pipeline keeps the
         * previous packet's), where the stages expect v1model's zeroes: what some path reads
         * before writing starts explicitly. */
        meta.drop = false;
        meta.drop_reason = DROP_NONE;
        meta.reject = false;
        meta.is_ip = false;
        meta.is_nd = false;
        meta.is_neigh_query = false;
        meta.sport = 0;
        meta.dport = 0;
        meta.ct_state = CT_STATE_NEW;
        meta.masq = false;
        meta.aff_id = 0;
        meta.fe_internal = 0;
        meta.fe_split = 0;
        meta.fe_bucket = 0;
        meta.lb = false;
        meta.l4_rewritten = false;
        meta.ingress_port = (bit<9>)(bit<32>)istd.input_port;
        /* p4c-dpdk 1.2.4 reads istd.parser_error from a metadata field nothing writes (SWX's
         * extract checks no length): a frame cut short is not detected on PNA. */
        meta.parse_failed = false;
        tcp_closing = false;
        port_classify.apply(hdr, meta);
        if (!meta.drop) {
            flow_key.apply(hdr, meta);
        }
        if (hdr.ct_commit.isValid()) {
            /* Second pass of a new flow: commit its ORIG entry (key: the original tuple), its
             * REPLY entry (key: the translated tuple reversed, from the packet as translated) and
             * its affinity memory, then send it where the first pass decided. */
            hdr.ct_okey.setValid();
            hdr.ct_okey.proto = hdr.ct_commit.proto;
            hdr.ct_okey.src_addr = hdr.ct_commit.src_addr;
            hdr.ct_okey.dst_addr = hdr.ct_commit.dst_addr;
            hdr.ct_okey.sport = hdr.ct_commit.sport;
            hdr.ct_okey.dport = hdr.ct_commit.dport;
            hdr.ct_rkey.setValid();
            hdr.ct_rkey.proto = hdr.ct_commit.proto;
            hdr.ct_rkey.src_addr = meta.dst_addr;
            hdr.ct_rkey.dst_addr = meta.src_addr;
            hdr.ct_rkey.sport = meta.dport;
            hdr.ct_rkey.dport = meta.sport;
            /* DPDK's learn takes the expire-time profile from metadata only. */
            ct_expire = hdr.ct_commit.expire;
            ct_orig.apply();
            stored_assoc = 0;
            if (ct_reply.apply().hit) {
                /* The reply tuple is already a live flow's: fine if it is this same association
                 * (a retransmitted first packet), a collision otherwise (as k8s_dp.p4). */
                if (stored_assoc != hdr.ct_commit.assoc) {
                    meta.drop = true;
                    meta.drop_reason = DROP_NAT_COLLISION;
                }
            }
            if (hdr.ct_commit.aff_id != 0 && (hdr.ct_commit.flags & CT_FLAG_LB) != 0) {
                hdr.aff_key.setValid();
                hdr.aff_key.aff_id = hdr.ct_commit.aff_id;
                hdr.aff_key.client = hdr.ct_commit.src_addr;
                aff_mem.apply();
            }
            if (hdr.ct_commit.drop_reason != DROP_NONE) {
                meta.drop = true;
                meta.drop_reason = hdr.ct_commit.drop_reason;
            }
            meta.out_port = (bit<9>)hdr.ct_commit.out_port;
            hdr.ct_commit.setInvalid();
            hdr.ct_okey.setInvalid();
            hdr.ct_rkey.setInvalid();
            hdr.aff_key.setInvalid();
            if (meta.drop) {
                drop_reasons.count((bit<32>)meta.drop_reason);
                drop_packet();
            } else {
                port_out.apply();
            }
        } else {
            old_src4 = hdr.ipv4.src_addr;
            old_dst4 = hdr.ipv4.dst_addr;
            old_sport = meta.sport;
            old_dport = meta.dport;
            if (meta.drop) {
                /* Dropped by classification. */
            } else if (meta.is_neigh_query) {
                neigh_steer.apply(hdr, meta);
            } else if (meta.is_ip && meta.is_nd) {
                forward.apply(hdr, meta);
            } else if (meta.is_ip) {
                be_hi = 0;
                be_lo = 0;
                tcp_closing = hdr.tcp.isValid() && (hdr.tcp.flags & (TCP_FIN | TCP_RST)) != 0;
                hdr.ct_okey.setValid();
                hdr.ct_okey.proto = meta.l4_proto;
                hdr.ct_okey.src_addr = meta.src_addr;
                hdr.ct_okey.dst_addr = meta.dst_addr;
                hdr.ct_okey.sport = meta.sport;
                hdr.ct_okey.dport = meta.dport;
                if (!ct_orig.apply().hit) {
                    hdr.ct_rkey.setValid();
                    /* From ct_okey, not meta: p4c-dpdk would propagate the metadata into the key
                     * and copy all of it to metadata (37 bytes inside the operand window). */
                    hdr.ct_rkey.proto = hdr.ct_okey.proto;
                    hdr.ct_rkey.src_addr = hdr.ct_okey.src_addr;
                    hdr.ct_rkey.dst_addr = hdr.ct_okey.dst_addr;
                    hdr.ct_rkey.sport = hdr.ct_okey.sport;
                    hdr.ct_rkey.dport = hdr.ct_okey.dport;
                    ct_reply.apply();
                }

                if (meta.ct_state == CT_STATE_NEW) {
                    service_frontend.apply(hdr, meta);
                    if (!meta.drop && meta.aff_id != 0) {
                        hdr.aff_key.setValid();
                        hdr.aff_key.aff_id = meta.aff_id;
                        hdr.aff_key.client = meta.src_addr;
                        if (aff_mem.apply().hit) {
                            affinity_check.apply(hdr, meta);
                        }
                    }
                    if (!meta.drop && !meta.lb) {
                        if (meta.fe_split != 0) {
                            split_hash = split_hasher.get_hash({ meta.src_addr, meta.sport, meta.l4_proto });
                            meta.fe_bucket = split_hash[31:24] & meta.fe_split;
                        }
                        svc_frontend.apply();
                    }
                }
                if (!meta.drop && meta.lb && meta.ct_state != CT_STATE_REPLY) {
                    backend_nat.apply(hdr, meta);
                }
                if (meta.ct_state == CT_STATE_REPLY && meta.lb) {
                    reverse_nat.apply(hdr, meta);
                }
                if (meta.ct_state == CT_STATE_REPLY && meta.masq) {
                    restore_client.apply(hdr, meta);
                }
                if (meta.ct_state == CT_STATE_ESTABLISHED && meta.masq) {
                    source_nat.apply(hdr, meta);
                }
                if (meta.ct_state == CT_STATE_NEW && !meta.drop) {
                    egress_policy.apply(hdr, meta);
                    if (!meta.drop && meta.port_kind != PORT_KIND_HOST) {
                        ingress_policy.apply(hdr, meta);
                    }
                    if (!meta.drop && meta.lb && ((hdr.ipv4.isValid() && hdr.ipv4.src_addr == meta.be_addr4)
                            || (hdr.ipv6.isValid() && hdr.ipv6w.src_hi == be_hi && hdr.ipv6w.src_lo == be_lo))) {
                        meta.masq = true;
                    }
                    if (!meta.drop && meta.masq) {
                        nat_source.apply(hdr, meta);
                    }
                    meta.client_addr = meta.src_addr;
                    meta.client_addr4 = hdr.ipv4.src_addr;
                    if (!meta.drop && meta.masq) {
                        source_nat.apply(hdr, meta);
                    }
                    if (!meta.drop) {
                        /* Allowed: the second pass commits it (the record holds the original
                         * tuple, still in ct_okey). */
                        ct_flags = 0;
                        if (meta.lb) {
                            ct_flags = ct_flags | CT_FLAG_LB;
                        }
                        if (meta.masq) {
                            ct_flags = ct_flags | CT_FLAG_MASQ;
                        }
                        ct_expire = CT_PROFILE_OTHER;
                        if (meta.l4_proto == IP_PROTO_TCP) {
                            ct_expire = CT_PROFILE_TCP;
                        }
                        hdr.ct_commit.setValid();
                        hdr.ct_commit.proto = hdr.ct_okey.proto;
                        hdr.ct_commit.src_addr = hdr.ct_okey.src_addr;
                        hdr.ct_commit.dst_addr = hdr.ct_okey.dst_addr;
                        hdr.ct_commit.sport = hdr.ct_okey.sport;
                        hdr.ct_commit.dport = hdr.ct_okey.dport;
                        hdr.ct_commit.be_addr = meta.be_addr;
                        hdr.ct_commit.be_addr4 = meta.be_addr4;
                        hdr.ct_commit.be_port = meta.be_port;
                        hdr.ct_commit.masq_addr = meta.masq_addr;
                        hdr.ct_commit.masq_addr4 = meta.masq_addr4;
                        hdr.ct_commit.fe_addr = meta.fe_addr;
                        hdr.ct_commit.fe_addr4 = meta.fe_addr4;
                        hdr.ct_commit.fe_port = meta.fe_port;
                        hdr.ct_commit.client_addr = meta.client_addr;
                        hdr.ct_commit.client_addr4 = meta.client_addr4;
                        hdr.ct_commit.aff_id = meta.aff_id;
                        hdr.ct_commit.flags = ct_flags;
                        hdr.ct_commit.expire = ct_expire;
                        hdr.ct_commit.be_hi = be_hi;
                        hdr.ct_commit.be_lo = be_lo;
                        /* DPDK's hash writes metadata only. */
                        assoc = assoc_hasher.get_hash({ meta.fe_addr, meta.fe_port, meta.client_addr, ct_flags });
                        hdr.ct_commit.assoc = assoc;
                    }
                }
                if (!meta.drop) {
                    forward.apply(hdr, meta);
                }
            }
            hdr.ct_okey.setInvalid();
            hdr.ct_rkey.setInvalid();
            hdr.aff_key.setInvalid();
            if (meta.l4_rewritten) {
                /* Incremental updates (RFC 1624): the checksum, minus the addresses and ports as
                 * received, plus the ones leaving, one field per call (p4c-dpdk copies a list's
                 * elements into a pseudo-header through metadata). IPv6 addresses enter as 64-bit
                 * words: the received ones from hdr.ipv6w, the new ones with the whole IPv6 header
                 * (DPDK's ckadd takes a header), whose other fields hdr.ipv6w.first cancels. */
                if (hdr.ipv4.isValid()) {
                    ck.clear();
                    ck.subtract(hdr.ipv4.hdr_checksum);
                    ck.subtract(old_src4);
                    ck.subtract(old_dst4);
                    ck.add(hdr.ipv4.src_addr);
                    ck.add(hdr.ipv4.dst_addr);
                    hdr.ipv4.hdr_checksum = ck.get();
                }
                l4_update = false;
                ck.clear();
                if (hdr.tcp.isValid()) {
                    l4_update = true;
                    ck.subtract(hdr.tcp.checksum);
                    ck.add(hdr.tcp.src_port);
                    ck.add(hdr.tcp.dst_port);
                } else if (hdr.udp.isValid() && (hdr.ipv6.isValid() || hdr.udp.checksum != 0)) {
                    /* An IPv4 UDP checksum of zero means "none" (RFC 768) and stays zero. */
                    l4_update = true;
                    ck.subtract(hdr.udp.checksum);
                    ck.add(hdr.udp.src_port);
                    ck.add(hdr.udp.dst_port);
                }
                if (l4_update) {
                    ck.subtract(old_sport);
                    ck.subtract(old_dport);
                    if (hdr.ipv4.isValid()) {
                        ck.subtract(old_src4);
                        ck.subtract(old_dst4);
                        ck.add(hdr.ipv4.src_addr);
                        ck.add(hdr.ipv4.dst_addr);
                    } else {
                        ck.subtract(hdr.ipv6w.first);
                        ck.subtract(hdr.ipv6w.src_hi);
                        ck.subtract(hdr.ipv6w.src_lo);
                        ck.subtract(hdr.ipv6w.dst_hi);
                        ck.subtract(hdr.ipv6w.dst_lo);
                        ck.add(hdr.ipv6);
                    }
                    l4_checksum = ck.get();
                    if (hdr.tcp.isValid()) {
                        hdr.tcp.checksum = l4_checksum;
                    } else {
                        hdr.udp.checksum = l4_checksum;
                    }
                }
            }
            if (meta.drop && !hdr.ct_commit.isValid()) {
                /* A flow committed and then dropped (no route) is counted in its second pass. */
                drop_reasons.count((bit<32>)meta.drop_reason);
            }
            if (hdr.ct_commit.isValid()) {
                hdr.ct_commit.drop_reason = meta.drop_reason;
                if (!meta.drop) {
                    hdr.ct_commit.drop_reason = DROP_NONE;
                }
                hdr.ct_commit.out_port = (bit<16>)meta.out_port;
                recirculate();
            } else if (meta.drop) {
                /* Also a rejected flow (meta.reject): PNA does not answer it with an ICMP error
                 * yet (RejectReply's checksums and truncation, docs/architectures.md). */
                drop_packet();
            } else {
                port_out.apply();
            }
        }
    }
}

control K8sDeparser(packet_out packet, in headers_t hdr, in local_metadata_t meta,
                    in pna_main_output_metadata_t ostd) {
    apply {
        packet.emit(hdr.ct_commit);
        packet.emit(hdr.ethernet);
        packet.emit(hdr.arp);
        packet.emit(hdr.err_ipv4);
        packet.emit(hdr.err_ipv6);
        packet.emit(hdr.err_icmp);
        packet.emit(hdr.ipv4);
        packet.emit(hdr.ipv6);
        packet.emit(hdr.icmp);
        packet.emit(hdr.ndp);
        packet.emit(hdr.tcp);
        packet.emit(hdr.udp);
        packet.emit(hdr.sctp);
    }
}

@pkginfo(name="k8s_dp_pna", version="0.1.0")
PNA_NIC(K8sParser(), K8sPreControl(), K8sIngress(), K8sDeparser()) main;
