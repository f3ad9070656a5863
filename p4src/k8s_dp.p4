/* k8s-offload data plane: v1model top level.
 *
 * Everything architecture-specific lives here: the parser and deparser, the flow cache
 * (registers and hashes), backend selection (action_selector), drops and checksums.
 * The stages themselves are the architecture-neutral controls of include/pipeline.p4.
 * See p4src/README.md for the stage diagram and every table's meaning. */
#include <core.p4>
#include <v1model.p4>

#include "include/defines.p4"
#include "include/headers.p4"
#include "include/pipeline.p4"

parser K8sParser(packet_in packet, out headers_t hdr, inout local_metadata_t meta,
                 inout standard_metadata_t standard_metadata) {
    state start {
        transition select(standard_metadata.ingress_port) {
            CPU_PORT: parse_packet_out;
            default: parse_ethernet;
        }
    }
    state parse_packet_out {
        packet.extract(hdr.packet_out);
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
        /* L4 only for unfragmented datagrams without options: a fragment carries no ports
         * and NAT could not fix a checksum that covers other fragments. */
        transition select(hdr.ipv4.ihl, hdr.ipv4.flags[0:0], hdr.ipv4.frag_offset, hdr.ipv4.protocol) {
            (4w5, 1w0, 13w0, IP_PROTO_TCP): parse_tcp;
            (4w5, 1w0, 13w0, IP_PROTO_UDP): parse_udp;
            (4w5, 1w0, 13w0, IP_PROTO_SCTP): parse_sctp;
            (4w5, 1w0, 13w0, IP_PROTO_ICMP): parse_icmp;
            default: accept;
        }
    }
    state parse_ipv6 {
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

control K8sVerifyChecksum(inout headers_t hdr, inout local_metadata_t meta) {
    apply {
    }
}

control K8sIngress(inout headers_t hdr, inout local_metadata_t meta,
                   inout standard_metadata_t standard_metadata) {
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
    RejectReply() reject_reply;

    /* Flow cache: one slot per 5-tuple hash, holding a 32-bit tag of the tuple,
     * {last seen (32), kind (2), masquerade (1), closing (1), NAT (1), unused (11), port (16)}, the
     * NAT address (ct_nat: the backend of an ORIG slot, the frontend of a REPLY slot, with the port
     * in ct_value; NAT 0: not load-balanced) and, for masqueraded flows, an address: the source NAT
     * address (ORIG) or the client's address (REPLY). */
    @id(0x16000001)
    register<bit<32>>(CT_SLOTS) ct_tag;
    @id(0x16000002)
    register<bit<64>>(CT_SLOTS) ct_value;
    @id(0x16000003)
    register<bit<128>>(CT_SLOTS) ct_addr;
    @id(0x16000006)
    register<bit<128>>(CT_SLOTS) ct_nat;

    /* Session affinity memory: one slot per (affinity domain, client address) hash, holding a
     * 32-bit tag, {last new connection (32), unused (16), backend port (16)} and the backend's
     * address (aff_addr). */
    @id(0x16000004)
    register<bit<32>>(AFF_SLOTS) aff_tag;
    @id(0x16000005)
    register<bit<64>>(AFF_SLOTS) aff_value;
    @id(0x16000007)
    register<bit<128>>(AFF_SLOTS) aff_addr;

    @id(0x12000001)
    counter(DROP_REASON_COUNT, CounterType.packets_and_bytes) drop_reasons;

    @id(0x11000001) @max_group_size(512)
    action_selector(HashAlgorithm.crc16, SELECTOR_MEMBERS, 32w16) svc_selector;

    /* Members: a backend's address and port, which the flow is translated to (BackendNat). */
    @id(0x01000b05)
    action set_backend4(@format(IPV4_ADDRESS) ipv4_addr_t addr, bit<16> port) {
        meta.lb = true;
        meta.be_addr = (bit<128>)(IPV4_MAPPED_PREFIX32 ++ addr);
        meta.be_port = port;
    }
    @id(0x01000b06)
    action set_backend6(@format(IPV6_ADDRESS) ipv6_addr_t addr, bit<16> port) {
        meta.lb = true;
        meta.be_addr = addr;
        meta.be_port = port;
    }
    /* A new flow's frontend (VIP, protocol, port; fe_internal and fe_bucket from ServiceFrontend)
     * -> one selector group per distinct set of chosen backends (per bucket of a split one), or
     * the one member of a single backend; members hash on the client's address and port. A miss
     * is not a Service. No default action: bmv2 cannot hold one for a table with an action
     * selector (p4c warns, PI refuses to set it), so a miss runs nothing and leaves lb false. The
     * compiler never points an entry at an empty group (a Service port without a usable endpoint
     * gets reject_no_endpoint or drop_no_local_endpoint in svc_options instead); if a group is
     * emptied anyway, bmv2 treats the lookup as a hit that runs no action, and lb stays false. */
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
        implementation = svc_selector;
        size = FRONTEND_TABLE_SIZE;
    }

    bit<32> now;
    bit<32> timeout;
    bit<32> stored_tag;
    bit<64> stored_value;
    bit<32> reply_index;
    bit<32> reply_tag;
    bit<32> split_hash;
    addr_t stored_addr;
    addr_t stored_nat;
    bit<1> nat;
    bit<1> masq;
    bool same_frontend;
    bool tcp_syn;
    bool tcp_closing;

    apply {
        if (hdr.packet_out.isValid() && hdr.packet_out.submit_to_ingress == 0) {
            /* PacketOut from the controller goes straight to the port it names. */
            standard_metadata.egress_spec = hdr.packet_out.egress_port;
            hdr.packet_out.setInvalid();
        } else {
            /* A received frame, or a PacketOut submitted to ingress: it comes from the CPU port. */
            hdr.packet_out.setInvalid();
            meta.ingress_port = standard_metadata.ingress_port;
            meta.parse_failed = standard_metadata.parser_error != error.NoError;
            port_classify.apply(hdr, meta);
            if (!meta.drop) {
                flow_key.apply(hdr, meta);
            }
            if (meta.drop) {
                /* Dropped by classification. */
            } else if (meta.is_neigh_query) {
                neigh_steer.apply(hdr, meta);
            } else if (meta.is_ip && meta.is_nd) {
                forward.apply(hdr, meta);
            } else if (meta.is_ip) {
                /* Connection tracking lookup on this packet's own 5-tuple. */
                now = (bit<32>)(standard_metadata.ingress_global_timestamp >> 20);
                if (meta.l4_proto == IP_PROTO_TCP) {
                    timeout = CT_TIMEOUT_TCP;
                } else {
                    timeout = CT_TIMEOUT_OTHER;
                }
                hash(meta.ct_index, HashAlgorithm.crc16, 32w0,
                     { meta.l4_proto, meta.src_addr, meta.dst_addr, meta.sport, meta.dport }, CT_SLOTS);
                hash(meta.ct_tag, HashAlgorithm.crc32, 32w0,
                     { meta.l4_proto, meta.src_addr, meta.dst_addr, meta.sport, meta.dport }, 32w0xffffffff);
                meta.ct_tag = meta.ct_tag | 1;
                ct_tag.read(stored_tag, meta.ct_index);
                ct_value.read(stored_value, meta.ct_index);
                ct_nat.read(stored_nat, meta.ct_index);
                meta.ct_state = CT_STATE_NEW;
                /* A pure SYN opens a new connection even when its tuple's slot is still live (a
                 * client reusing a port): it is balanced and policy-checked afresh, and its commit
                 * takes the slot over. */
                tcp_syn = hdr.tcp.isValid() && (hdr.tcp.flags & (TCP_SYN | TCP_ACK)) == TCP_SYN;
                tcp_closing = hdr.tcp.isValid() && (hdr.tcp.flags & (TCP_FIN | TCP_RST)) != 0;
                if (stored_tag == meta.ct_tag && now - stored_value[63:32] <= timeout
                        && !(tcp_syn && stored_value[31:30] == CT_KIND_ORIG)) {
                    if (stored_value[27:27] == 1) {
                        /* Load-balanced: the backend (ORIG) or the frontend (REPLY). */
                        meta.lb = true;
                    }
                    if (stored_value[31:30] == CT_KIND_ORIG) {
                        meta.ct_state = CT_STATE_ESTABLISHED;
                        meta.be_addr = stored_nat;
                        meta.be_port = stored_value[15:0];
                    } else if (stored_value[31:30] == CT_KIND_REPLY) {
                        meta.ct_state = CT_STATE_REPLY;
                        meta.fe_addr = stored_nat;
                        meta.fe_port = stored_value[15:0];
                    }
                    if (stored_value[29:29] == CT_MASQ) {
                        meta.masq = true;
                        ct_addr.read(stored_addr, meta.ct_index);
                        meta.masq_addr = stored_addr;
                        meta.client_addr = stored_addr;
                    }
                    if (tcp_closing) {
                        /* Mark the slot closing and age it so that it frees CT_TIMEOUT_CLOSING from
                         * now; later packets of the closing connection no longer refresh it. */
                        ct_value.write(meta.ct_index, (now - timeout + CT_TIMEOUT_CLOSING)
                                       ++ stored_value[31:29] ++ 1w1 ++ stored_value[27:0]);
                    } else if (stored_value[28:28] == 0) {
                        ct_value.write(meta.ct_index, now ++ stored_value[31:0]);
                    }
                }

                if (meta.ct_state == CT_STATE_NEW) {
                    service_frontend.apply(hdr, meta);
                    if (!meta.drop && meta.aff_id != 0) {
                        /* The same client of the same affinity domain gets the backend it got
                         * last, if that was less than the timeout ago and it is still usable. */
                        hash(meta.aff_index, HashAlgorithm.crc16, 32w0, { meta.aff_id, meta.src_addr }, AFF_SLOTS);
                        hash(meta.aff_tag, HashAlgorithm.crc32, 32w0, { meta.aff_id, meta.src_addr }, 32w0xffffffff);
                        meta.aff_tag = meta.aff_tag | 1;
                        aff_tag.read(stored_tag, meta.aff_index);
                        aff_value.read(stored_value, meta.aff_index);
                        if (stored_tag == meta.aff_tag && now - stored_value[63:32] <= meta.aff_timeout) {
                            meta.lb = true;
                            aff_addr.read(meta.be_addr, meta.aff_index);
                            meta.be_port = stored_value[15:0];
                            affinity_check.apply(hdr, meta);
                        }
                    }
                    if (!meta.drop && !meta.lb) {
                        /* A split frontend: a second hash of the client (crc32, independent of
                         * the selector's crc16) picks the sub-group. */
                        if (meta.fe_split != 0) {
                            hash(split_hash, HashAlgorithm.crc32, 32w0,
                                 { meta.src_addr, meta.sport, meta.l4_proto }, 32w0xffffffff);
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
                    /* "When the pod is isolated for ingress, the only allowed connections into the
                     * pod are those from the pod's node and those allowed by the ingress list"
                     * (NetworkPolicy concept page): traffic from the host port skips ingress policy. */
                    if (!meta.drop && meta.port_kind != PORT_KIND_HOST) {
                        ingress_policy.apply(hdr, meta);
                    }
                    if (!meta.drop && meta.lb && meta.src_addr == meta.dst_addr) {
                        /* Hairpin: a pod reaching itself through a Service. Its kernel would drop
                         * a packet from its own address, so it is masqueraded like kube-proxy does. */
                        meta.masq = true;
                    }
                    if (!meta.drop && meta.masq) {
                        /* Policy saw the client; the source is rewritten after it. */
                        nat_source.apply(hdr, meta);
                    }
                    meta.client_addr = meta.src_addr;
                    if (!meta.drop && meta.masq) {
                        source_nat.apply(hdr, meta);
                    }
                    nat = 0;
                    if (meta.lb) {
                        nat = 1;
                    }
                    masq = 0;
                    if (meta.masq) {
                        masq = CT_MASQ;
                    }
                    if (!meta.drop) {
                        /* Commit every allowed flow, in both directions: the original slot pins
                         * the backend; the reply slot (keyed by the post-NAT tuple reversed)
                         * restores the frontend (and the client's address when masqueraded) and
                         * lets replies pass even when their receiver is isolated in the direction
                         * the reply travels. */
                        hash(reply_index, HashAlgorithm.crc16, 32w0,
                             { meta.l4_proto, meta.dst_addr, meta.src_addr, meta.dport, meta.sport }, CT_SLOTS);
                        hash(reply_tag, HashAlgorithm.crc32, 32w0,
                             { meta.l4_proto, meta.dst_addr, meta.src_addr, meta.dport, meta.sport }, 32w0xffffffff);
                        reply_tag = reply_tag | 1;
                        ct_tag.read(stored_tag, reply_index);
                        ct_value.read(stored_value, reply_index);
                        ct_addr.read(stored_addr, reply_index);
                        ct_nat.read(stored_nat, reply_index);
                        /* The slot's flow went to this same frontend (or neither was load-balanced). */
                        same_frontend = stored_value[27:27] == nat
                            && (nat == 0 || (stored_nat == meta.fe_addr && stored_value[15:0] == meta.fe_port));
                        /* Free, expired, or this very association again (a reused client port to the
                         * same frontend, whose closing slot must not expire under the new flow). */
                        if (stored_tag == 0 || now - stored_value[63:32] > timeout
                                || (stored_tag == reply_tag && same_frontend
                                    && (!meta.masq || stored_addr == meta.client_addr))) {
                            ct_tag.write(reply_index, reply_tag);
                            ct_value.write(reply_index, now ++ CT_KIND_REPLY ++ masq ++ 1w0 ++ nat ++ 11w0 ++ meta.fe_port);
                            ct_nat.write(reply_index, meta.fe_addr);
                            if (meta.masq) {
                                ct_addr.write(reply_index, meta.client_addr);
                            }
                        } else {
                            /* A flow whose replies would be given back wrongly is dropped: the same
                             * reply tuple already belongs to a flow to another frontend (one client
                             * port to two VIPs sharing a backend) or, when masqueraded, to another
                             * client (two clients, one source port, one backend) or the slot is
                             * another live flow's, so its replies could not be un-masqueraded. */
                            if (stored_tag == reply_tag && !same_frontend) {
                                meta.drop = true;
                                meta.drop_reason = DROP_NAT_COLLISION;
                            } else if (meta.masq && (stored_tag != reply_tag || stored_addr != meta.client_addr)) {
                                meta.drop = true;
                                meta.drop_reason = DROP_NAT_COLLISION;
                            }
                        }
                    }
                    if (!meta.drop) {
                        ct_tag.read(stored_tag, meta.ct_index);
                        ct_value.read(stored_value, meta.ct_index);
                        if (stored_tag == 0 || stored_tag == meta.ct_tag || now - stored_value[63:32] > timeout) {
                            ct_tag.write(meta.ct_index, meta.ct_tag);
                            ct_value.write(meta.ct_index, now ++ CT_KIND_ORIG ++ masq ++ 1w0 ++ nat ++ 11w0 ++ meta.be_port);
                            ct_nat.write(meta.ct_index, meta.be_addr);
                            if (meta.masq) {
                                ct_addr.write(meta.ct_index, meta.masq_addr);
                            }
                        }
                        if (meta.aff_id != 0 && meta.lb) {
                            aff_tag.write(meta.aff_index, meta.aff_tag);
                            aff_value.write(meta.aff_index, now ++ 16w0 ++ meta.be_port);
                            aff_addr.write(meta.aff_index, meta.be_addr);
                        }
                    }
                }
                if (!meta.drop) {
                    forward.apply(hdr, meta);
                }
            }
            if (meta.drop && meta.reject) {
                reject_reply.apply(hdr, meta);
            }
            if (meta.drop) {
                drop_reasons.count((bit<32>)meta.drop_reason);
            }
            if (meta.drop && meta.reject) {
                /* Rejected: the ICMP error goes back out of the ingress port; only the quoted IP
                 * header and 8 bytes of L4 are kept (bmv2 applies the length after deparsing). */
                standard_metadata.egress_spec = meta.out_port;
                if (hdr.err_ipv4.isValid()) {
                    truncate(REJECT4_FRAME_LEN);
                } else {
                    truncate(REJECT6_FRAME_LEN);
                }
            } else if (meta.drop) {
                mark_to_drop(standard_metadata);
            } else {
                standard_metadata.egress_spec = meta.out_port;
            }
        }
    }
}

control K8sEgress(inout headers_t hdr, inout local_metadata_t meta,
                  inout standard_metadata_t standard_metadata) {
    apply {
        if (standard_metadata.egress_port == CPU_PORT) {
            hdr.packet_in.setValid();
            hdr.packet_in.ingress_port = standard_metadata.ingress_port;
            hdr.packet_in._pad = 0;
        }
    }
}

/* Full recomputation after NAT. SCTP's CRC32c covers no address, so address translation
 * keeps it valid; the compiler never rewrites SCTP ports (v1model has no CRC32c, see README). */
control K8sComputeChecksum(inout headers_t hdr, inout local_metadata_t meta) {
    apply {
        /* An ICMP error built by RejectReply: its IP header, then the ICMP checksum over the ICMP
         * header (checksum field left out, i.e. zero) and the quoted IP header and 8 bytes of L4.
         * Only one of tcp/udp/sctp is valid; the fields of invalid headers add nothing to a field
         * list in bmv2. ICMPv6 adds the pseudo-header (RFC 4443 2.3): source, destination,
         * upper-layer length (32 bits), 24 zero bits, next header. No payload: the packet is
         * truncated to exactly these bytes. */
        update_checksum(hdr.err_ipv4.isValid(),
            { hdr.err_ipv4.version, hdr.err_ipv4.ihl, hdr.err_ipv4.dscp, hdr.err_ipv4.ecn,
              hdr.err_ipv4.total_len, hdr.err_ipv4.identification, hdr.err_ipv4.flags,
              hdr.err_ipv4.frag_offset, hdr.err_ipv4.ttl, hdr.err_ipv4.protocol,
              hdr.err_ipv4.src_addr, hdr.err_ipv4.dst_addr },
            hdr.err_ipv4.hdr_checksum, HashAlgorithm.csum16);
        update_checksum(hdr.err_ipv4.isValid() && hdr.err_icmp.isValid(),
            { hdr.err_icmp.icmp_type, hdr.err_icmp.icmp_code, hdr.err_icmp.unused,
              hdr.ipv4.version, hdr.ipv4.ihl, hdr.ipv4.dscp, hdr.ipv4.ecn, hdr.ipv4.total_len,
              hdr.ipv4.identification, hdr.ipv4.flags, hdr.ipv4.frag_offset, hdr.ipv4.ttl,
              hdr.ipv4.protocol, hdr.ipv4.hdr_checksum, hdr.ipv4.src_addr, hdr.ipv4.dst_addr,
              hdr.tcp.src_port, hdr.tcp.dst_port, hdr.tcp.seq_no,
              hdr.udp.src_port, hdr.udp.dst_port, hdr.udp.length, hdr.udp.checksum,
              hdr.sctp.src_port, hdr.sctp.dst_port, hdr.sctp.verif_tag },
            hdr.err_icmp.checksum, HashAlgorithm.csum16);
        update_checksum(hdr.err_ipv6.isValid() && hdr.err_icmp.isValid(),
            { hdr.err_ipv6.src_addr, hdr.err_ipv6.dst_addr, 16w0, hdr.err_ipv6.payload_len,
              24w0, hdr.err_ipv6.next_hdr,
              hdr.err_icmp.icmp_type, hdr.err_icmp.icmp_code, hdr.err_icmp.unused,
              hdr.ipv6.version, hdr.ipv6.traffic_class, hdr.ipv6.flow_label, hdr.ipv6.payload_len,
              hdr.ipv6.next_hdr, hdr.ipv6.hop_limit, hdr.ipv6.src_addr, hdr.ipv6.dst_addr,
              hdr.tcp.src_port, hdr.tcp.dst_port, hdr.tcp.seq_no,
              hdr.udp.src_port, hdr.udp.dst_port, hdr.udp.length, hdr.udp.checksum,
              hdr.sctp.src_port, hdr.sctp.dst_port, hdr.sctp.verif_tag },
            hdr.err_icmp.checksum, HashAlgorithm.csum16);
        update_checksum(hdr.ipv4.isValid() && meta.l4_rewritten,
            { hdr.ipv4.version, hdr.ipv4.ihl, hdr.ipv4.dscp, hdr.ipv4.ecn, hdr.ipv4.total_len,
              hdr.ipv4.identification, hdr.ipv4.flags, hdr.ipv4.frag_offset, hdr.ipv4.ttl,
              hdr.ipv4.protocol, hdr.ipv4.src_addr, hdr.ipv4.dst_addr },
            hdr.ipv4.hdr_checksum, HashAlgorithm.csum16);
        update_checksum_with_payload(hdr.ipv4.isValid() && hdr.tcp.isValid() && meta.l4_rewritten,
            { hdr.ipv4.src_addr, hdr.ipv4.dst_addr, 8w0, hdr.ipv4.protocol, meta.l4_len,
              hdr.tcp.src_port, hdr.tcp.dst_port, hdr.tcp.seq_no, hdr.tcp.ack_no,
              hdr.tcp.data_offset, hdr.tcp.res, hdr.tcp.flags, hdr.tcp.window, hdr.tcp.urgent_ptr },
            hdr.tcp.checksum, HashAlgorithm.csum16);
        /* An IPv4 UDP checksum of zero means "none" (RFC 768) and stays zero. */
        update_checksum_with_payload(hdr.ipv4.isValid() && hdr.udp.isValid() && meta.l4_rewritten
                                     && hdr.udp.checksum != 0,
            { hdr.ipv4.src_addr, hdr.ipv4.dst_addr, 8w0, hdr.ipv4.protocol, meta.l4_len,
              hdr.udp.src_port, hdr.udp.dst_port, hdr.udp.length },
            hdr.udp.checksum, HashAlgorithm.csum16);
        update_checksum_with_payload(hdr.ipv6.isValid() && hdr.tcp.isValid() && meta.l4_rewritten,
            { hdr.ipv6.src_addr, hdr.ipv6.dst_addr, 16w0, meta.l4_len, 24w0, hdr.ipv6.next_hdr,
              hdr.tcp.src_port, hdr.tcp.dst_port, hdr.tcp.seq_no, hdr.tcp.ack_no,
              hdr.tcp.data_offset, hdr.tcp.res, hdr.tcp.flags, hdr.tcp.window, hdr.tcp.urgent_ptr },
            hdr.tcp.checksum, HashAlgorithm.csum16);
        update_checksum_with_payload(hdr.ipv6.isValid() && hdr.udp.isValid() && meta.l4_rewritten,
            { hdr.ipv6.src_addr, hdr.ipv6.dst_addr, 16w0, meta.l4_len, 24w0, hdr.ipv6.next_hdr,
              hdr.udp.src_port, hdr.udp.dst_port, hdr.udp.length },
            hdr.udp.checksum, HashAlgorithm.csum16);
    }
}

control K8sDeparser(packet_out packet, in headers_t hdr) {
    apply {
        packet.emit(hdr.packet_in);
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

@pkginfo(name="k8s_dp", version="1.2.0")
V1Switch(K8sParser(), K8sVerifyChecksum(), K8sIngress(), K8sEgress(), K8sComputeChecksum(),
         K8sDeparser()) main;
