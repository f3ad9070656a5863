/* The architecture-neutral stages of the k8s-offload pipeline.
 * Each control reads and writes only headers_t and local_metadata_t: no extern, no
 * architecture metadata. Drops are requested through meta.drop/meta.drop_reason and the
 * output port through meta.out_port; the architecture's top level acts on them. */
#ifndef K8S_DP_PIPELINE_P4
#define K8S_DP_PIPELINE_P4

/* Stage 1: what is behind the ingress port. Unknown ports are dropped. */
control PortClassify(inout headers_t hdr, inout local_metadata_t meta) {
    @id(0x01000101)
    action set_port_kind(bit<3> kind) {
        meta.port_kind = kind;
    }
    @id(0x01000102)
    action unknown_port() {
        meta.port_kind = PORT_KIND_UNKNOWN;
        meta.drop = true;
        meta.drop_reason = DROP_UNKNOWN_PORT;
    }
    @id(0x02000101)
    table port_class {
        key = {
            meta.ingress_port : exact;
        }
        actions = {
            set_port_kind;
            @defaultonly unknown_port;
        }
        default_action = unknown_port();
        size = PORT_TABLE_SIZE;
    }
    apply {
        port_class.apply();
    }
}

/* Stage 2 (no tables): the family-neutral flow key used by every later stage. What the parser
 * did not understand is dropped and counted, never forwarded: a frame cut short inside a header
 * (the architecture sets meta.parse_failed from its parser error) and any ethertype other than
 * ARP, IPv4 and IPv6, 802.1Q tags included. IP packets whose L4 was not parsed (fragments, IPv4
 * options, other protocols) are deliberate: forwarded by address, never NATed. */
control FlowKey(inout headers_t hdr, inout local_metadata_t meta) {
    apply {
        if (meta.parse_failed) {
            meta.drop = true;
            meta.drop_reason = DROP_PARSER_ERROR;
        } else if (hdr.arp.isValid()) {
            meta.is_neigh_query = true;
            meta.neigh_target = (bit<128>)(IPV4_MAPPED_PREFIX32 ++ hdr.arp.tpa);
        } else if (hdr.ipv4.isValid()) {
            meta.is_ip = true;
            meta.src_addr = (bit<128>)(IPV4_MAPPED_PREFIX32 ++ hdr.ipv4.src_addr);
            meta.dst_addr = (bit<128>)(IPV4_MAPPED_PREFIX32 ++ hdr.ipv4.dst_addr);
            meta.l4_proto = hdr.ipv4.protocol;
            meta.l4_len = hdr.ipv4.total_len - 16w20;
        } else if (hdr.ipv6.isValid()) {
            if (IPV6_HAS_MAPPED_ADDRESS) {
                /* Mapped addresses never appear on the wire (RFC 4291 2.5.5.2); they would alias IPv4 entries. */
                meta.drop = true;
                meta.drop_reason = DROP_MAPPED_ADDRESS;
            } else if (hdr.ndp.isValid() && hdr.icmp.icmp_type == ICMPV6_NEIGHBOR_SOLICIT) {
                meta.is_neigh_query = true;
                meta.neigh_target = hdr.ndp.target_addr;
            } else {
                meta.is_ip = true;
                meta.src_addr = hdr.ipv6.src_addr;
                meta.dst_addr = hdr.ipv6.dst_addr;
                meta.l4_proto = hdr.ipv6.next_hdr;
                meta.l4_len = hdr.ipv6.payload_len;
                if (hdr.icmp.isValid() && hdr.icmp.icmp_type >= ICMPV6_ROUTER_SOLICIT
                        && hdr.icmp.icmp_type <= ICMPV6_REDIRECT) {
                    meta.is_nd = true;
                }
            }
        } else {
            meta.drop = true;
            meta.drop_reason = DROP_UNPARSED;
        }
        if (hdr.tcp.isValid()) {
            meta.sport = hdr.tcp.src_port;
            meta.dport = hdr.tcp.dst_port;
        } else if (hdr.udp.isValid()) {
            meta.sport = hdr.udp.src_port;
            meta.dport = hdr.udp.dst_port;
        } else if (hdr.sctp.isValid()) {
            meta.sport = hdr.sctp.src_port;
            meta.dport = hdr.sctp.dst_port;
        }
    }
}

/* Stage 3: ARP requests and IPv6 Neighbor Solicitations go to whoever owns the target
 * address: the ARP/NDP proxy for the gateway, a pod's port for a pod address. */
control NeighSteer(inout headers_t hdr, inout local_metadata_t meta) {
    @id(0x01000301)
    action steer_to_port(bit<9> port) {
        meta.out_port = port;
    }
    @id(0x01000302)
    action neigh_miss() {
        meta.drop = true;
        meta.drop_reason = DROP_NEIGH_MISS;
    }
    @id(0x02000301)
    table neigh_steer {
        key = {
            meta.neigh_target : exact @format(IPV6_ADDRESS);
        }
        actions = {
            steer_to_port;
            neigh_miss;
        }
        default_action = neigh_miss();
        size = NEIGH_TABLE_SIZE;
    }
    apply {
        neigh_steer.apply();
    }
}

/* Stage 5: what a new flow to a Service frontend (VIP, protocol, port) needs before its backend is
 * chosen. The frontend's backends themselves are the entries of the architecture's selector table
 * svc_frontend, keyed by the same (VIP, protocol, port) plus fe_internal and fe_bucket, whose
 * members carry the backend's address and port (k8s_dp.p4); a frontend that needs nothing else
 * costs that one entry.
 *  - svc_frontend_internal, looked up for traffic that did not come from the uplink, lists the
 *    external frontends of externalTrafficPolicy Local Services: kube-proxy sends pod and host
 *    traffic to those over all cluster endpoints, so they have a second set of entries with
 *    fe_internal = 1 (the local endpoints are under fe_internal = 0, for the uplink).
 *  - svc_options, by frontend and fe_internal, holds what only some frontends need: masquerade
 *    (externalTrafficPolicy Cluster), the split mask of a frontend whose backends span several
 *    selector groups, the session-affinity domain and timeout, or the verdict for a Service port
 *    with no usable endpoint (reject, or drop when a Local traffic policy leaves none here). */
control ServiceFrontend(inout headers_t hdr, inout local_metadata_t meta) {
    @id(0x01000506)
    action use_internal() {
        meta.fe_internal = 1;
    }
    @id(0x01000507)
    action not_internal() {
        meta.fe_internal = 0;
    }
    @id(0x02000502)
    table svc_frontend_internal {
        key = {
            meta.dst_addr : exact @format(IPV6_ADDRESS);
            meta.l4_proto : exact;
            meta.dport    : exact;
        }
        actions = {
            use_internal;
            @defaultonly not_internal;
        }
        default_action = not_internal();
        size = FRONTEND_TABLE_SIZE;
    }
    /* masq: externalTrafficPolicy Cluster, the source is masqueraded so replies come back here.
     * split: mask of the flow-hash bits that pick the sub-group (docs/passes.md, "ECMP packing").
     * aff_id, aff_timeout: sessionAffinity ClientIP, the affinity domain (a Service port and its
     * endpoint selection) and its timeout in 2^20 us units; aff_id 0 = no affinity. */
    @id(0x01000508)
    action set_options(bit<1> masq, bit<8> split, bit<24> aff_id, bit<32> aff_timeout) {
        meta.masq = masq == 1;
        meta.fe_split = split;
        meta.aff_id = aff_id;
        meta.aff_timeout = aff_timeout;
    }
    /* A Service port with no usable endpoint on any node: kube-proxy REJECTs, so the client gets
     * ICMP port unreachable ("connection refused") from RejectReply. */
    @id(0x01000502)
    action reject_no_endpoint() {
        meta.drop = true;
        meta.drop_reason = DROP_NO_ENDPOINT;
        meta.reject = true;
    }
    /* internalTrafficPolicy or externalTrafficPolicy Local with endpoints, but none on this node:
     * kube-proxy DROPs. */
    @id(0x01000505)
    action drop_no_local_endpoint() {
        meta.drop = true;
        meta.drop_reason = DROP_NO_LOCAL_ENDPOINT;
    }
    @id(0x01000509)
    action no_options() {
        meta.fe_split = 0;
        meta.aff_id = 0;
    }
    @id(0x02000503)
    table svc_options {
        key = {
            meta.dst_addr    : exact @format(IPV6_ADDRESS);
            meta.l4_proto    : exact;
            meta.dport       : exact;
            meta.fe_internal : exact;
        }
        actions = {
            set_options;
            reject_no_endpoint;
            drop_no_local_endpoint;
            @defaultonly no_options;
        }
        default_action = no_options();
        size = FRONTEND_TABLE_SIZE;
    }
    apply {
        meta.fe_internal = 0;
        if (meta.port_kind != PORT_KIND_UPLINK) {
            svc_frontend_internal.apply();
        }
        svc_options.apply();
    }
}

/* Stage 5b: sessionAffinity ClientIP. The architecture keeps the (domain, client) -> backend
 * memory; aff_backend confirms that a remembered backend (address and port) still takes new
 * connections in that domain; otherwise the flow is balanced afresh. */
control AffinityCheck(inout headers_t hdr, inout local_metadata_t meta) {
    @id(0x01000c03)
    action affinity_ok() {
    }
    @id(0x01000c04)
    action affinity_stale() {
        meta.lb = false;
    }
    @id(0x02000c02)
    table aff_backend {
        key = {
            meta.aff_id  : exact;
            meta.be_addr : exact @format(IPV6_ADDRESS);
            meta.be_port : exact;
        }
        actions = {
            affinity_ok;
            @defaultonly affinity_stale;
        }
        default_action = affinity_stale();
        size = AFFINITY_MEMBERS;
    }
    apply {
        aff_backend.apply();
    }
}

/* Stage 6b (no tables): destination NAT to the chosen backend, for new flows (from the selector
 * member or the affinity memory) and established ones (from the flow cache) alike. The frontend is
 * kept first: a new flow's reply slot restores it. */
control BackendNat(inout headers_t hdr, inout local_metadata_t meta) {
    apply {
        meta.fe_addr = meta.dst_addr;
        SAVE_FE_ADDR4
        meta.fe_port = meta.dport;
        if (hdr.ipv4.isValid()) {
            hdr.ipv4.dst_addr = BE_ADDR4;
        } else if (hdr.ipv6.isValid()) {
            hdr.ipv6.dst_addr = meta.be_addr;
        }
        meta.dst_addr = meta.be_addr;
        meta.dport = meta.be_port;
        meta.l4_rewritten = true;
        if (hdr.tcp.isValid()) {
            hdr.tcp.dst_port = meta.dport;
        } else if (hdr.udp.isValid()) {
            hdr.udp.dst_port = meta.dport;
        } else if (hdr.sctp.isValid()) {
            hdr.sctp.dst_port = meta.dport;
        }
    }
}

/* Stage 6c (no tables): replies of a load-balanced flow leave with the frontend (address and
 * port, from the flow cache's reply slot) as their source. */
control ReverseNat(inout headers_t hdr, inout local_metadata_t meta) {
    apply {
        if (hdr.ipv4.isValid()) {
            hdr.ipv4.src_addr = FE_ADDR4;
        } else if (hdr.ipv6.isValid()) {
            hdr.ipv6.src_addr = meta.fe_addr;
        }
        meta.src_addr = meta.fe_addr;
        meta.sport = meta.fe_port;
        meta.l4_rewritten = true;
        if (hdr.tcp.isValid()) {
            hdr.tcp.src_port = meta.sport;
        } else if (hdr.udp.isValid()) {
            hdr.udp.src_port = meta.sport;
        } else if (hdr.sctp.isValid()) {
            hdr.sctp.src_port = meta.sport;
        }
    }
}

/* Stage 6d: the source address a masqueraded flow leaves with, chosen by its (post-DNAT)
 * destination the way a route's preferred source is: the gateway address towards local pods (this
 * also makes hairpin traffic, a pod reaching itself through a Service, arrive from an address that
 * is not its own), a node IP towards everything else. No entry: the flow keeps its source. */
control NatSource(inout headers_t hdr, inout local_metadata_t meta) {
    @id(0x01000d01)
    action set_nat_source(@format(IPV6_ADDRESS) addr_t addr NAT_SOURCE_ADDR4_PARAM) {
        meta.masq_addr = addr;
        SET_MASQ_ADDR4
    }
    @id(0x01000d02)
    action no_nat_source() {
        meta.masq = false;
    }
    @id(0x02000d01)
    table nat_source {
        key = {
            meta.dst_addr : lpm @format(IPV6_ADDRESS);
        }
        actions = {
            set_nat_source;
            no_nat_source;
        }
        default_action = no_nat_source();
        size = NAT_SOURCE_SIZE;
    }
    apply {
        nat_source.apply();
    }
}

/* Stage 6e (no tables): source NAT of the original direction; the port is kept. */
control SourceNat(inout headers_t hdr, inout local_metadata_t meta) {
    apply {
        if (hdr.ipv4.isValid()) {
            hdr.ipv4.src_addr = MASQ_ADDR4;
        } else if (hdr.ipv6.isValid()) {
            hdr.ipv6.src_addr = meta.masq_addr;
        }
        meta.src_addr = meta.masq_addr;
        meta.l4_rewritten = true;
    }
}

/* Stage 6f (no tables): replies of a masqueraded flow go back to the client's own address. */
control RestoreClient(inout headers_t hdr, inout local_metadata_t meta) {
    apply {
        if (hdr.ipv4.isValid()) {
            hdr.ipv4.dst_addr = CLIENT_ADDR4;
        } else if (hdr.ipv6.isValid()) {
            hdr.ipv6.dst_addr = meta.client_addr;
        }
        meta.dst_addr = meta.client_addr;
        meta.l4_rewritten = true;
    }
}

/* Stage 7: egress policy of the local pod that sent a new flow (after DNAT): its admin tier,
 * then NetworkPolicy (isolated and allowed / isolated and not allowed / not isolated), then, for
 * a pod no NetworkPolicy isolates, its baseline tier; nothing decided: allowed.
 * A rule is one bit: the flow is allowed when some rule matches both its peer and its port.
 * Entries grow with peers + ports, not peers x ports (see README, "Policy classification"). */
control EgressPolicy(inout headers_t hdr, inout local_metadata_t meta) {
    @id(0x01000801)
    action eg_isolate(bit<16> set_id, bit<64> any_peer_rules, bit<64> any_port_rules) {
        meta.eg_set = set_id;
        meta.eg_any_peer_rules = any_peer_rules;
        meta.eg_any_port_rules = any_port_rules;
    }
    @id(0x01000802)
    action eg_not_isolated() {
    }
    @id(0x02000801)
    table eg_pod {
        key = {
            meta.src_addr : exact @format(IPV6_ADDRESS);
        }
        actions = {
            eg_isolate;
            @defaultonly eg_not_isolated;
        }
        default_action = eg_not_isolated();
        size = POLICY_POD_SIZE;
    }
    @id(0x01000803)
    action eg_set_peer_class(bit<16> peer_class) {
        meta.eg_peer_class = peer_class;
    }
    @id(0x01000804)
    action eg_no_peer_class() {
        meta.eg_peer_class = 0;
    }
    /* Peers that are one address (or a pair: an IPv4 /31, IPv6 /127) by exact match, looked up
     * before the LPM: a host costs no TCAM entry, and the LPM is free to answer anything for the
     * addresses this table holds (see README, "Policy classification"). */
    @id(0x02000805)
    table eg_peer_host {
        key = {
            meta.dst_addr : exact @format(IPV6_ADDRESS);
        }
        actions = {
            eg_set_peer_class;
            @defaultonly eg_no_peer_class;
        }
        default_action = eg_no_peer_class();
        size = POLICY_PEER_HOST_SIZE;
    }
    @id(0x02000802)
    table eg_peer_class {
        key = {
            meta.dst_addr : lpm @format(IPV6_ADDRESS);
        }
        actions = {
            eg_set_peer_class;
            @defaultonly eg_no_peer_class;
        }
        default_action = eg_no_peer_class();
        size = POLICY_PEER_SIZE;
    }
    @id(0x01000805)
    action eg_set_peer_rules(bit<64> rules) {
        meta.eg_peer_rules = rules;
    }
    @id(0x01000806)
    action eg_no_peer_rules() {
        meta.eg_peer_rules = 0;
    }
    @id(0x02000803)
    table eg_peer_rules {
        key = {
            meta.eg_set        : exact;
            meta.eg_peer_class : exact;
        }
        actions = {
            eg_set_peer_rules;
            @defaultonly eg_no_peer_rules;
        }
        default_action = eg_no_peer_rules();
        size = POLICY_RULE_SIZE;
    }
    @id(0x01000807)
    action eg_set_port_rules(bit<64> rules) {
        meta.eg_port_rules = rules;
    }
    @id(0x01000808)
    action eg_no_port_rules() {
        meta.eg_port_rules = 0;
    }
    @id(0x02000804)
    table eg_port_rules {
        key = {
            meta.eg_set   : exact;
            meta.l4_proto : exact;
            meta.dport    : range;
        }
        actions = {
            eg_set_port_rules;
            @defaultonly eg_no_port_rules;
        }
        default_action = eg_no_port_rules();
        size = POLICY_PORT_SIZE;
    }
    /* Cluster policy tiers (p4src/README.md, "Policy tiers"): the pod's tier set, the rules
     * its peer and port match (with the NetworkPolicy stage's machinery and fields), then the first
     * matching rule of the admin tier (eg_admin) or, after NetworkPolicy, of the baseline tier. */
    @id(0x01001001)
    action eg_tier_subject(bit<16> set_id, bit<64> any_peer_rules, bit<64> any_port_rules) {
        meta.eg_tier_set = set_id;
        meta.eg_any_peer_rules = any_peer_rules;
        meta.eg_any_port_rules = any_port_rules;
    }
    @id(0x01001002)
    action eg_tier_none() {
        meta.eg_tier_set = 0;
    }
    @id(0x02001001)
    table eg_tier_pod {
        key = {
            meta.src_addr : exact @format(IPV6_ADDRESS);
        }
        actions = {
            eg_tier_subject;
            @defaultonly eg_tier_none;
        }
        default_action = eg_tier_none();
        size = TIER_POD_SIZE;
    }
    @id(0x01001003)
    action eg_tier_set_peer_class(bit<16> peer_class) {
        meta.eg_peer_class = peer_class;
    }
    @id(0x01001004)
    action eg_tier_no_peer_class() {
        meta.eg_peer_class = 0;
    }
    @id(0x02001002)
    table eg_tier_peer_host {
        key = {
            meta.dst_addr : exact @format(IPV6_ADDRESS);
        }
        actions = {
            eg_tier_set_peer_class;
            @defaultonly eg_tier_no_peer_class;
        }
        default_action = eg_tier_no_peer_class();
        size = TIER_PEER_SIZE;
    }
    @id(0x02001003)
    table eg_tier_peer_class {
        key = {
            meta.dst_addr : lpm @format(IPV6_ADDRESS);
        }
        actions = {
            eg_tier_set_peer_class;
            @defaultonly eg_tier_no_peer_class;
        }
        default_action = eg_tier_no_peer_class();
        size = TIER_PEER_SIZE;
    }
    @id(0x01001005)
    action eg_tier_set_peer_rules(bit<64> rules) {
        meta.eg_peer_rules = rules;
    }
    @id(0x01001006)
    action eg_tier_no_peer_rules() {
        meta.eg_peer_rules = 0;
    }
    @id(0x02001004)
    table eg_tier_peer_rules {
        key = {
            meta.eg_tier_set   : exact;
            meta.eg_peer_class : exact;
        }
        actions = {
            eg_tier_set_peer_rules;
            @defaultonly eg_tier_no_peer_rules;
        }
        default_action = eg_tier_no_peer_rules();
        size = TIER_RULE_SIZE;
    }
    @id(0x01001007)
    action eg_tier_set_port_rules(bit<64> rules) {
        meta.eg_port_rules = rules;
    }
    @id(0x01001008)
    action eg_tier_no_port_rules() {
        meta.eg_port_rules = 0;
    }
    @id(0x02001005)
    table eg_tier_port_rules {
        key = {
            meta.eg_tier_set : exact;
            meta.l4_proto     : exact;
            meta.dport        : range;
        }
        actions = {
            eg_tier_set_port_rules;
            @defaultonly eg_tier_no_port_rules;
        }
        default_action = eg_tier_no_port_rules();
        size = TIER_PORT_SIZE;
    }
    @id(0x01001009)
    action eg_tier_allow() {
        meta.eg_tier = TIER_ALLOW;
    }
    @id(0x0100100a)
    action eg_tier_deny() {
        meta.eg_tier = TIER_DENY;
    }
    @id(0x0100100b)
    action eg_tier_pass() {
        meta.eg_tier = TIER_PASS;
    }
    @id(0x0100100c)
    action eg_tier_no_match() {
        meta.eg_tier = TIER_NONE;
    }
    @id(0x02001006)
    table eg_admin {
        key = {
            meta.eg_tier_set  : exact;
            meta.eg_tier_hits : ternary;
        }
        actions = {
            eg_tier_allow;
            eg_tier_deny;
            eg_tier_pass;
            @defaultonly eg_tier_no_match;
        }
        default_action = eg_tier_no_match();
        size = TIER_DECIDE_SIZE;
    }
    @id(0x02001007)
    table eg_baseline {
        key = {
            meta.eg_tier_set  : exact;
            meta.eg_tier_hits : ternary;
        }
        actions = {
            eg_tier_allow;
            eg_tier_deny;
            eg_tier_pass;
            @defaultonly eg_tier_no_match;
        }
        default_action = eg_tier_no_match();
        size = TIER_DECIDE_SIZE;
    }
    apply {
        meta.eg_tier = TIER_NONE;
        bool tiered = eg_tier_pod.apply().hit;
        if (tiered) {
            if (!eg_tier_peer_host.apply().hit) {
                eg_tier_peer_class.apply();
            }
            eg_tier_peer_rules.apply();
            eg_tier_port_rules.apply();
            meta.eg_tier_hits = (meta.eg_peer_rules | meta.eg_any_peer_rules)
                & (meta.eg_port_rules | meta.eg_any_port_rules);
            eg_admin.apply();
        }
        if (meta.eg_tier == TIER_DENY) {
            meta.drop = true;
            meta.drop_reason = DROP_EGRESS_TIER;
        } else if (meta.eg_tier != TIER_ALLOW) {
            if (eg_pod.apply().hit) {
                if (!eg_peer_host.apply().hit) {
                    eg_peer_class.apply();
                }
                eg_peer_rules.apply();
                eg_port_rules.apply();
                if (((meta.eg_peer_rules | meta.eg_any_peer_rules)
                        & (meta.eg_port_rules | meta.eg_any_port_rules)) == 0) {
                    meta.drop = true;
                    meta.drop_reason = DROP_EGRESS_POLICY;
                }
            } else if (tiered) {
                eg_baseline.apply();
                if (meta.eg_tier == TIER_DENY) {
                    meta.drop = true;
                    meta.drop_reason = DROP_EGRESS_TIER;
                }
            }
        }
    }
}

/* Stage 8: ingress policy of the local pod a new flow is addressed to (after DNAT), in the
 * same three tiers as stage 7. */
control IngressPolicy(inout headers_t hdr, inout local_metadata_t meta) {
    @id(0x01000901)
    action in_isolate(bit<16> set_id, bit<64> any_peer_rules, bit<64> any_port_rules) {
        meta.in_set = set_id;
        meta.in_any_peer_rules = any_peer_rules;
        meta.in_any_port_rules = any_port_rules;
    }
    @id(0x01000902)
    action in_not_isolated() {
    }
    @id(0x02000901)
    table in_pod {
        key = {
            meta.dst_addr : exact @format(IPV6_ADDRESS);
        }
        actions = {
            in_isolate;
            @defaultonly in_not_isolated;
        }
        default_action = in_not_isolated();
        size = POLICY_POD_SIZE;
    }
    @id(0x01000903)
    action in_set_peer_class(bit<16> peer_class) {
        meta.in_peer_class = peer_class;
    }
    @id(0x01000904)
    action in_no_peer_class() {
        meta.in_peer_class = 0;
    }
    /* Peers that are one address (or a pair: an IPv4 /31, IPv6 /127) by exact match, looked up
     * before the LPM: a host costs no TCAM entry, and the LPM is free to answer anything for the
     * addresses this table holds (see README, "Policy classification"). */
    @id(0x02000905)
    table in_peer_host {
        key = {
            meta.src_addr : exact @format(IPV6_ADDRESS);
        }
        actions = {
            in_set_peer_class;
            @defaultonly in_no_peer_class;
        }
        default_action = in_no_peer_class();
        size = POLICY_PEER_HOST_SIZE;
    }
    @id(0x02000902)
    table in_peer_class {
        key = {
            meta.src_addr : lpm @format(IPV6_ADDRESS);
        }
        actions = {
            in_set_peer_class;
            @defaultonly in_no_peer_class;
        }
        default_action = in_no_peer_class();
        size = POLICY_PEER_SIZE;
    }
    @id(0x01000905)
    action in_set_peer_rules(bit<64> rules) {
        meta.in_peer_rules = rules;
    }
    @id(0x01000906)
    action in_no_peer_rules() {
        meta.in_peer_rules = 0;
    }
    @id(0x02000903)
    table in_peer_rules {
        key = {
            meta.in_set        : exact;
            meta.in_peer_class : exact;
        }
        actions = {
            in_set_peer_rules;
            @defaultonly in_no_peer_rules;
        }
        default_action = in_no_peer_rules();
        size = POLICY_RULE_SIZE;
    }
    @id(0x01000907)
    action in_set_port_rules(bit<64> rules) {
        meta.in_port_rules = rules;
    }
    @id(0x01000908)
    action in_no_port_rules() {
        meta.in_port_rules = 0;
    }
    @id(0x02000904)
    table in_port_rules {
        key = {
            meta.in_set   : exact;
            meta.l4_proto : exact;
            meta.dport    : range;
        }
        actions = {
            in_set_port_rules;
            @defaultonly in_no_port_rules;
        }
        default_action = in_no_port_rules();
        size = POLICY_PORT_SIZE;
    }
    /* Cluster policy tiers (p4src/README.md, "Policy tiers"): the pod's tier set, the rules
     * its peer and port match (with the NetworkPolicy stage's machinery and fields), then the first
     * matching rule of the admin tier (in_admin) or, after NetworkPolicy, of the baseline tier. */
    @id(0x01001101)
    action in_tier_subject(bit<16> set_id, bit<64> any_peer_rules, bit<64> any_port_rules) {
        meta.in_tier_set = set_id;
        meta.in_any_peer_rules = any_peer_rules;
        meta.in_any_port_rules = any_port_rules;
    }
    @id(0x01001102)
    action in_tier_none() {
        meta.in_tier_set = 0;
    }
    @id(0x02001101)
    table in_tier_pod {
        key = {
            meta.dst_addr : exact @format(IPV6_ADDRESS);
        }
        actions = {
            in_tier_subject;
            @defaultonly in_tier_none;
        }
        default_action = in_tier_none();
        size = TIER_POD_SIZE;
    }
    @id(0x01001103)
    action in_tier_set_peer_class(bit<16> peer_class) {
        meta.in_peer_class = peer_class;
    }
    @id(0x01001104)
    action in_tier_no_peer_class() {
        meta.in_peer_class = 0;
    }
    @id(0x02001102)
    table in_tier_peer_host {
        key = {
            meta.src_addr : exact @format(IPV6_ADDRESS);
        }
        actions = {
            in_tier_set_peer_class;
            @defaultonly in_tier_no_peer_class;
        }
        default_action = in_tier_no_peer_class();
        size = TIER_PEER_SIZE;
    }
    @id(0x02001103)
    table in_tier_peer_class {
        key = {
            meta.src_addr : lpm @format(IPV6_ADDRESS);
        }
        actions = {
            in_tier_set_peer_class;
            @defaultonly in_tier_no_peer_class;
        }
        default_action = in_tier_no_peer_class();
        size = TIER_PEER_SIZE;
    }
    @id(0x01001105)
    action in_tier_set_peer_rules(bit<64> rules) {
        meta.in_peer_rules = rules;
    }
    @id(0x01001106)
    action in_tier_no_peer_rules() {
        meta.in_peer_rules = 0;
    }
    @id(0x02001104)
    table in_tier_peer_rules {
        key = {
            meta.in_tier_set   : exact;
            meta.in_peer_class : exact;
        }
        actions = {
            in_tier_set_peer_rules;
            @defaultonly in_tier_no_peer_rules;
        }
        default_action = in_tier_no_peer_rules();
        size = TIER_RULE_SIZE;
    }
    @id(0x01001107)
    action in_tier_set_port_rules(bit<64> rules) {
        meta.in_port_rules = rules;
    }
    @id(0x01001108)
    action in_tier_no_port_rules() {
        meta.in_port_rules = 0;
    }
    @id(0x02001105)
    table in_tier_port_rules {
        key = {
            meta.in_tier_set : exact;
            meta.l4_proto     : exact;
            meta.dport        : range;
        }
        actions = {
            in_tier_set_port_rules;
            @defaultonly in_tier_no_port_rules;
        }
        default_action = in_tier_no_port_rules();
        size = TIER_PORT_SIZE;
    }
    @id(0x01001109)
    action in_tier_allow() {
        meta.in_tier = TIER_ALLOW;
    }
    @id(0x0100110a)
    action in_tier_deny() {
        meta.in_tier = TIER_DENY;
    }
    @id(0x0100110b)
    action in_tier_pass() {
        meta.in_tier = TIER_PASS;
    }
    @id(0x0100110c)
    action in_tier_no_match() {
        meta.in_tier = TIER_NONE;
    }
    @id(0x02001106)
    table in_admin {
        key = {
            meta.in_tier_set  : exact;
            meta.in_tier_hits : ternary;
        }
        actions = {
            in_tier_allow;
            in_tier_deny;
            in_tier_pass;
            @defaultonly in_tier_no_match;
        }
        default_action = in_tier_no_match();
        size = TIER_DECIDE_SIZE;
    }
    @id(0x02001107)
    table in_baseline {
        key = {
            meta.in_tier_set  : exact;
            meta.in_tier_hits : ternary;
        }
        actions = {
            in_tier_allow;
            in_tier_deny;
            in_tier_pass;
            @defaultonly in_tier_no_match;
        }
        default_action = in_tier_no_match();
        size = TIER_DECIDE_SIZE;
    }
    apply {
        meta.in_tier = TIER_NONE;
        bool tiered = in_tier_pod.apply().hit;
        if (tiered) {
            if (!in_tier_peer_host.apply().hit) {
                in_tier_peer_class.apply();
            }
            in_tier_peer_rules.apply();
            in_tier_port_rules.apply();
            meta.in_tier_hits = (meta.in_peer_rules | meta.in_any_peer_rules)
                & (meta.in_port_rules | meta.in_any_port_rules);
            in_admin.apply();
        }
        if (meta.in_tier == TIER_DENY) {
            meta.drop = true;
            meta.drop_reason = DROP_INGRESS_TIER;
        } else if (meta.in_tier != TIER_ALLOW) {
            if (in_pod.apply().hit) {
                if (!in_peer_host.apply().hit) {
                    in_peer_class.apply();
                }
                in_peer_rules.apply();
                in_port_rules.apply();
                if (((meta.in_peer_rules | meta.in_any_peer_rules)
                        & (meta.in_port_rules | meta.in_any_port_rules)) == 0) {
                    meta.drop = true;
                    meta.drop_reason = DROP_INGRESS_POLICY;
                }
            } else if (tiered) {
                in_baseline.apply();
                if (meta.in_tier == TIER_DENY) {
                    meta.drop = true;
                    meta.drop_reason = DROP_INGRESS_TIER;
                }
            }
        }
    }
}

/* Stage 9: where the packet leaves. Local pods get the gateway MAC as source and their own
 * MAC as destination; other prefixes (node IPs, pod CIDRs of other nodes, default) go out a port. */
control Forward(inout headers_t hdr, inout local_metadata_t meta) {
    @id(0x01000a01)
    action to_pod(bit<9> port, @format(MAC_ADDRESS) mac_addr_t pod_mac,
                  @format(MAC_ADDRESS) mac_addr_t gateway_mac) {
        meta.out_port = port;
        hdr.ethernet.src_addr = gateway_mac;
        hdr.ethernet.dst_addr = pod_mac;
    }
    @id(0x01000a02)
    action to_port(bit<9> port) {
        meta.out_port = port;
    }
    @id(0x01000a03)
    action no_route() {
        meta.drop = true;
        meta.drop_reason = DROP_NO_ROUTE;
    }
    @id(0x02000a01)
    table fwd {
        key = {
            meta.dst_addr : lpm @format(IPV6_ADDRESS);
        }
        actions = {
            to_pod;
            to_port;
            no_route;
        }
        default_action = no_route();
        size = FORWARD_TABLE_SIZE;
    }
    apply {
        fwd.apply();
    }
}

/* Stage 10 (no tables): the answer to a new flow rejected by reject_no_endpoint, ICMP destination
 * unreachable / port unreachable (IPv4 type 3 code 3, RFC 792; IPv6 type 1 code 4, RFC 4443 3.1)
 * from the VIP back to the client, out of the port it came in on, Ethernet addresses swapped. It
 * quotes the invoking packet's IP header and the first 8 bytes of its L4 header (hdr.ipv4/ipv6 and
 * hdr.tcp/udp/sctp, unchanged); the architecture cuts off the rest and computes the checksums.
 * What must not be answered (RFC 1122 3.2.2, RFC 4443 2.4 e) stays dropped, meta.reject cleared:
 * ICMP, fragments and anything without a parsed L4 header, link-layer or IP broadcast and
 * multicast, and sources that are not one host (unspecified, "this network", loopback, multicast,
 * class E). Frontends have ports, so only TCP, UDP and SCTP ever reach here; the rest is defence. */
control RejectReply(inout headers_t hdr, inout local_metadata_t meta) {
    mac_addr_t mac;
    apply {
        if (hdr.ethernet.dst_addr[40:40] == 1 || hdr.icmp.isValid()
                || !(hdr.tcp.isValid() || hdr.udp.isValid() || hdr.sctp.isValid())) {
            meta.reject = false;
        } else if (hdr.ipv4.isValid() && (hdr.ipv4.src_addr[31:28] >= 4w14 || hdr.ipv4.src_addr[31:24] == 0
                       || hdr.ipv4.src_addr[31:24] == 127 || hdr.ipv4.dst_addr[31:28] >= 4w14)) {
            meta.reject = false;
        } else if (hdr.ipv6.isValid() && (IPV6_SRC_IS_MULTICAST || IPV6_SRC_IS_UNSPECIFIED
                       || IPV6_DST_IS_MULTICAST)) {
            meta.reject = false;
        } else {
            mac = hdr.ethernet.dst_addr;
            hdr.ethernet.dst_addr = hdr.ethernet.src_addr;
            hdr.ethernet.src_addr = mac;
            hdr.err_icmp.setValid();
            hdr.err_icmp.checksum = 0;
            hdr.err_icmp.unused = 0;
            if (hdr.ipv4.isValid()) {
                hdr.err_ipv4.setValid();
                hdr.err_ipv4.version = 4;
                hdr.err_ipv4.ihl = 5;
                hdr.err_ipv4.dscp = 0;
                hdr.err_ipv4.ecn = 0;
                hdr.err_ipv4.total_len = REJECT4_TOTAL_LEN;
                hdr.err_ipv4.identification = 0;
                hdr.err_ipv4.flags = 0;
                hdr.err_ipv4.frag_offset = 0;
                hdr.err_ipv4.ttl = REJECT_TTL;
                hdr.err_ipv4.protocol = IP_PROTO_ICMP;
                hdr.err_ipv4.hdr_checksum = 0;
                hdr.err_ipv4.src_addr = hdr.ipv4.dst_addr;
                hdr.err_ipv4.dst_addr = hdr.ipv4.src_addr;
                hdr.err_icmp.icmp_type = ICMP_DEST_UNREACH;
                hdr.err_icmp.icmp_code = ICMP_PORT_UNREACH;
            } else {
                hdr.err_ipv6.setValid();
                hdr.err_ipv6.version = 6;
                hdr.err_ipv6.traffic_class = 0;
                hdr.err_ipv6.flow_label = 0;
                hdr.err_ipv6.payload_len = REJECT6_PAYLOAD_LEN;
                hdr.err_ipv6.next_hdr = IP_PROTO_ICMPV6;
                hdr.err_ipv6.hop_limit = REJECT_TTL;
                hdr.err_ipv6.src_addr = hdr.ipv6.dst_addr;
                hdr.err_ipv6.dst_addr = hdr.ipv6.src_addr;
                hdr.err_icmp.icmp_type = ICMPV6_DEST_UNREACH;
                hdr.err_icmp.icmp_code = ICMPV6_PORT_UNREACH;
            }
            meta.out_port = meta.ingress_port;
        }
    }
}

#endif
