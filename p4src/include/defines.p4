/* Constants shared by every stage of the k8s-offload pipeline.
 * Sizes are what the compiler checks occupancy against; they come from P4Info, never from code. */
#ifndef K8S_DP_DEFINES_P4
#define K8S_DP_DEFINES_P4

const bit<16> ETHERTYPE_IPV4 = 0x0800;
const bit<16> ETHERTYPE_ARP  = 0x0806;
const bit<16> ETHERTYPE_IPV6 = 0x86dd;

const bit<8> IP_PROTO_ICMP   = 1;
const bit<8> IP_PROTO_TCP    = 6;
const bit<8> IP_PROTO_UDP    = 17;
const bit<8> IP_PROTO_ICMPV6 = 58;
const bit<8> IP_PROTO_SCTP   = 132;

/* The ICMP error a rejected connection gets: destination unreachable, port unreachable. */
const bit<8> ICMP_DEST_UNREACH     = 3;    /* RFC 792 */
const bit<8> ICMP_PORT_UNREACH     = 3;
const bit<8> ICMPV6_DEST_UNREACH   = 1;    /* RFC 4443 section 3.1 */
const bit<8> ICMPV6_PORT_UNREACH   = 4;
const bit<8> REJECT_TTL            = 64;   /* TTL / hop limit of the ICMP error */
/* The error quotes the invoking packet's IP header (20 or 40 bytes, no options: L4 is parsed only
 * then) and the first 8 bytes of its L4 header; everything after is cut off with truncate(). */
const bit<16> REJECT4_TOTAL_LEN    = 56;   /* IPv4 total length: 20 + ICMP 8 + 20 + 8 */
const bit<16> REJECT6_PAYLOAD_LEN  = 56;   /* IPv6 payload length: ICMPv6 8 + 40 + 8 */
const bit<32> REJECT4_FRAME_LEN    = 70;   /* Ethernet 14 + 56 */
const bit<32> REJECT6_FRAME_LEN    = 110;  /* Ethernet 14 + 40 + 56 */

const bit<8> ICMPV6_ROUTER_SOLICIT   = 133;
const bit<8> ICMPV6_NEIGHBOR_ADVERT  = 136;
const bit<8> ICMPV6_NEIGHBOR_SOLICIT = 135;
const bit<8> ICMPV6_REDIRECT         = 137;

/* IPv4 addresses are carried in 128-bit metadata as IPv4-mapped IPv6 addresses
 * (::ffff:a.b.c.d, RFC 4291 section 2.5.5.2), so one table serves both families. */
const bit<96> IPV4_MAPPED_PREFIX = 0xffff;
/* The same prefix as the 32 bits above an IPv4 address: (bit<128>)(IPV4_MAPPED_PREFIX32 ++ a) is the
 * mapped address, written so for targets without constants wider than 64 bits (arch.p4). */
const bit<32> IPV4_MAPPED_PREFIX32 = 0xffff;

/* What sits behind a device port (table port_class). */
const bit<3> PORT_KIND_UNKNOWN   = 0;
const bit<3> PORT_KIND_POD       = 1;
const bit<3> PORT_KIND_HOST      = 2;
const bit<3> PORT_KIND_UPLINK    = 3;
const bit<3> PORT_KIND_ARP_PROXY = 4;

/* Why a packet was dropped: the index into the drop_reasons counter. */
const bit<8> DROP_NONE            = 0;
const bit<8> DROP_UNKNOWN_PORT    = 1;
const bit<8> DROP_NEIGH_MISS      = 2;
const bit<8> DROP_NO_ENDPOINT     = 3;   /* no usable endpoint: answered with ICMP port unreachable (counted here too) */
const bit<8> DROP_EGRESS_POLICY   = 4;
const bit<8> DROP_INGRESS_POLICY  = 5;
const bit<8> DROP_MAPPED_ADDRESS  = 6;
const bit<8> DROP_NO_ROUTE        = 7;
const bit<8> DROP_NAT_COLLISION   = 8;   /* a masqueraded flow's reply slot is held by another flow */
const bit<8> DROP_NO_LOCAL_ENDPOINT = 9; /* traffic policy Local, endpoints only on other nodes */
const bit<8> DROP_UNPARSED        = 10;  /* neither ARP nor IPv4/IPv6: another ethertype, a VLAN tag */
const bit<8> DROP_PARSER_ERROR    = 11;  /* a header cut short (truncated frame) */
const bit<8> DROP_EGRESS_TIER     = 12;  /* denied by an admin or baseline tier rule (egress) */
const bit<8> DROP_INGRESS_TIER    = 13;  /* denied by an admin or baseline tier rule (ingress) */
const bit<32> DROP_REASON_COUNT   = 16;

/* The decision of a cluster policy tier for a new flow (meta.eg_tier, meta.in_tier). */
const bit<2> TIER_NONE  = 0;   /* no rule of the tier matches: the next tier decides */
const bit<2> TIER_ALLOW = 1;   /* Allow / Accept: final */
const bit<2> TIER_DENY  = 2;
const bit<2> TIER_PASS  = 3;   /* admin tier: on to NetworkPolicy; baseline tier: allowed */

/* Connection-tracking slot kinds (stored in the flow cache). */
const bit<2> CT_KIND_EMPTY = 0;
const bit<2> CT_KIND_ORIG  = 1;   /* slot keyed by the original direction's 5-tuple */
const bit<2> CT_KIND_REPLY = 2;   /* slot keyed by the reply direction's 5-tuple */

/* The masquerade flag in a flow-cache value: ORIG slots source-NAT the flow to the address in
 * ct_addr, REPLY slots restore the client address kept in ct_addr. */
const bit<1> CT_MASQ = 1;

/* Connection-tracking verdict for the current packet. */
const bit<2> CT_STATE_NEW         = 0;
const bit<2> CT_STATE_ESTABLISHED = 1;
const bit<2> CT_STATE_REPLY       = 2;

/* Idle timeouts of flow-cache slots, in units of 2^20 microseconds (about 1.05 s).
 * A slot older than its timeout may be taken over by a colliding new flow. TCP's is longer
 * than the default 2-hour keepalive so idle but live connections keep their slot. */
const bit<32> CT_TIMEOUT_TCP   = 7200;
const bit<32> CT_TIMEOUT_OTHER = 120;
/* After a FIN or RST a TCP slot lives only this much longer (about 10 s, Linux conntrack's CLOSE),
 * so closed connections free their slots instead of holding them for two hours. */
const bit<32> CT_TIMEOUT_CLOSING = 10;

const bit<8> TCP_FIN = 0x01;
const bit<8> TCP_SYN = 0x02;
const bit<8> TCP_RST = 0x04;
const bit<8> TCP_ACK = 0x10;

/* Table and extern sizes: the compiler's capacity checks read them from P4Info. */
const bit<32> PORT_TABLE_SIZE     = 512;
const bit<32> NEIGH_TABLE_SIZE    = 65536;
const bit<32> FRONTEND_TABLE_SIZE = 65536;
const bit<32> SELECTOR_MEMBERS    = 131072;
const bit<32> POLICY_POD_SIZE     = 65536;
const bit<32> POLICY_PEER_SIZE    = 131072;
const bit<32> POLICY_PEER_HOST_SIZE = 131072;
const bit<32> POLICY_RULE_SIZE    = 131072;
const bit<32> POLICY_PORT_SIZE    = 65536;
const bit<32> TIER_POD_SIZE       = 65536;
const bit<32> TIER_PEER_SIZE      = 65536;
const bit<32> TIER_RULE_SIZE      = 65536;
const bit<32> TIER_PORT_SIZE      = 65536;
const bit<32> TIER_DECIDE_SIZE    = 65536;
const bit<32> FORWARD_TABLE_SIZE  = 131072;
const bit<32> CT_SLOTS            = 65536;
const bit<32> AFFINITY_MEMBERS    = 131072;
const bit<32> NAT_SOURCE_SIZE     = 65536;
const bit<32> AFF_SLOTS           = 65536;

/* Device ports reserved by the v1model target: the CPU port carries PacketIn/PacketOut. */
const bit<9> CPU_PORT  = 510;
const bit<9> DROP_PORT = 511;

#endif
