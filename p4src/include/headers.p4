/* Packet headers and per-packet metadata. Architecture-neutral: no extern or
 * architecture type appears here, so a PNA top level can reuse the file unchanged. */
#ifndef K8S_DP_HEADERS_P4
#define K8S_DP_HEADERS_P4

#include "arch.p4"

typedef bit<48>  mac_addr_t;
typedef bit<32>  ipv4_addr_t;
typedef bit<128> ipv6_addr_t;
/* Addresses of either family as seen by the tables (IPv4 is IPv4-mapped). */
typedef bit<128> addr_t;

@controller_header("packet_in") @id(1)
header packet_in_t {
    bit<9> ingress_port;
    bit<7> _pad;
}

/* A PacketOut goes straight out of egress_port, or, with submit_to_ingress set, through the
 * pipeline as a frame received on the CPU port (how the loader proves which pipeline forwards:
 * docs/runtime.md, "Bringing up a target"). */
@controller_header("packet_out") @id(2)
header packet_out_t {
    bit<9> egress_port;
    bit<1> submit_to_ingress;
    bit<6> _pad;
}

header ethernet_t {
    mac_addr_t dst_addr;
    mac_addr_t src_addr;
    bit<16>    ether_type;
}

header arp_t {
    bit<16>     htype;
    bit<16>     ptype;
    bit<8>      hlen;
    bit<8>      plen;
    bit<16>     oper;
    mac_addr_t  sha;
    ipv4_addr_t spa;
    mac_addr_t  tha;
    ipv4_addr_t tpa;
}

header ipv4_t {
    bit<4>      version;
    bit<4>      ihl;
    bit<6>      dscp;
    bit<2>      ecn;
    bit<16>     total_len;
    bit<16>     identification;
    bit<3>      flags;
    bit<13>     frag_offset;
    bit<8>      ttl;
    bit<8>      protocol;
    bit<16>     hdr_checksum;
    ipv4_addr_t src_addr;
    ipv4_addr_t dst_addr;
}

header ipv6_t {
    bit<4>      version;
    bit<8>      traffic_class;
    bit<20>     flow_label;
    bit<16>     payload_len;
    bit<8>      next_hdr;
    bit<8>      hop_limit;
    ipv6_addr_t src_addr;
    ipv6_addr_t dst_addr;
}

/* The IPv6 header as 64-bit words, for targets that cannot slice 128-bit fields (arch.p4: the
 * PNA parser fills it with lookahead; it is never emitted). */
header ipv6_words_t {
    bit<64> first;
    bit<64> src_hi;
    bit<64> src_lo;
    bit<64> dst_hi;
    bit<64> dst_lo;
}

/* ICMP and ICMPv6 share the first four bytes. */
header icmp_t {
    bit<8>  icmp_type;
    bit<8>  icmp_code;
    bit<16> checksum;
}

/* An ICMP or ICMPv6 error message's header (RFC 792, RFC 4443 section 3.1): type, code, checksum
 * and 32 unused bits; the quoted invoking packet follows. Built by the pipeline to reject. */
header icmp_error_t {
    bit<8>  icmp_type;
    bit<8>  icmp_code;
    bit<16> checksum;
    bit<32> unused;
}

/* Body of an IPv6 Neighbor Solicitation or Advertisement (RFC 4861 sections 4.3, 4.4). */
header ndp_t {
    bit<32>     flags;
    ipv6_addr_t target_addr;
}

header tcp_t {
    bit<16> src_port;
    bit<16> dst_port;
    bit<32> seq_no;
    bit<32> ack_no;
    bit<4>  data_offset;
    bit<4>  res;
    bit<8>  flags;
    bit<16> window;
    bit<16> checksum;
    bit<16> urgent_ptr;
}

header udp_t {
    bit<16> src_port;
    bit<16> dst_port;
    bit<16> length;
    bit<16> checksum;
}

header sctp_t {
    bit<16> src_port;
    bit<16> dst_port;
    bit<32> verif_tag;
    bit<32> checksum;
}

struct headers_t {
    packet_out_t packet_out;
    packet_in_t  packet_in;
    ethernet_t   ethernet;
    arp_t        arp;
    /* An ICMP error built in front of the packet it answers (hdr.ipv4 or hdr.ipv6 and L4). */
    ipv4_t       err_ipv4;
    ipv6_t       err_ipv6;
    icmp_error_t err_icmp;
    ipv4_t       ipv4;
    ipv6_t       ipv6;
    icmp_t       icmp;
    ndp_t        ndp;
    tcp_t        tcp;
    udp_t        udp;
    sctp_t       sctp;
    ARCH_HEADERS
}

struct local_metadata_t {
    bit<9>  ingress_port;
    bit<9>  out_port;
    bit<3>  port_kind;
    bool    drop;
    bit<8>  drop_reason;
    bool    reject;          /* with drop: answer with ICMP port unreachable instead (RejectReply) */
    bool    parse_failed;    /* the architecture's parser stopped on an error (a truncated header) */

    /* Flow key, family-neutral. */
    bool    is_ip;
    bool    is_nd;           /* IPv6 neighbour discovery: bypasses NAT, conntrack and policy */
    bool    is_neigh_query;  /* ARP, or IPv6 Neighbor Solicitation: steered by target address */
    addr_t  neigh_target;
    addr_t  src_addr;
    addr_t  dst_addr;
    bit<8>  l4_proto;
    bit<16> sport;
    bit<16> dport;
    bit<16> l4_len;          /* L4 length for the pseudo-header checksum */

    /* Connection tracking. */
    bit<2>  ct_state;
    bit<32> ct_index;        /* slot of this packet's own 5-tuple */
    bit<32> ct_tag;

    /* Source NAT: masquerade (external traffic policy Cluster) and hairpin. */
    bool    masq;            /* NEW/ESTABLISHED: source := masq_addr; REPLY: destination := client_addr */
    addr_t  masq_addr;
    addr_t  client_addr;     /* the client's address before source NAT */

    /* Session affinity (ClientIP). */
    bit<24> aff_id;          /* 0 = the frontend has no affinity */
    bit<32> aff_timeout;     /* units of 2^20 us, like flow-cache times */
    bit<32> aff_index;
    bit<32> aff_tag;

    /* Service load balancing. */
    bit<1>  fe_internal;     /* 1: the frontend's entries for traffic not from the uplink (svc_frontend_internal) */
    bit<8>  fe_split;        /* mask of the flow-hash bits that pick a frontend's sub-group (svc_options) */
    bit<8>  fe_bucket;       /* the sub-group: flow hash & fe_split; 0 for unsplit frontends */
    bool    lb;              /* the flow goes to a backend: be_addr, be_port (NEW, ESTABLISHED) */
    addr_t  be_addr;
    bit<16> be_port;
    addr_t  fe_addr;         /* the frontend a load-balanced flow was addressed to (REPLY: restored) */
    bit<16> fe_port;
    bool    l4_rewritten;    /* addresses or ports changed: recompute checksums */

    /* NetworkPolicy. */
    bit<16> eg_set;
    bit<16> eg_peer_class;
    bit<64> eg_any_peer_rules;
    bit<64> eg_any_port_rules;
    bit<64> eg_peer_rules;
    bit<64> eg_port_rules;
    bit<16> in_set;
    bit<16> in_peer_class;
    bit<64> in_any_peer_rules;
    bit<64> in_any_port_rules;
    bit<64> in_peer_rules;
    bit<64> in_port_rules;

    /* Cluster policy tiers (AdminNetworkPolicy, BaselineAdminNetworkPolicy, ClusterNetworkPolicy).
     * Their lookups reuse the NetworkPolicy fields above (peer class, rule masks), which the
     * NetworkPolicy tables overwrite after the admin decision; only these outlive it. */
    bit<16> eg_tier_set;
    bit<64> eg_tier_hits;    /* the tier rules the flow matches: bit i = rule i of the pod's set */
    bit<2>  eg_tier;         /* TIER_NONE / ALLOW / DENY / PASS: the admin tier's, then the baseline's */
    bit<16> in_tier_set;
    bit<64> in_tier_hits;
    bit<2>  in_tier;
    ARCH_METADATA
}

#endif
