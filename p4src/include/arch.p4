/* Architecture shim: the few places where the shared stages (pipeline.p4) need a construct that
 * one target compiles and the other does not. A top level picks the PNA flavour by defining
 * TARGET_DPDK_PNA before its includes; without it the v1model flavour applies (k8s_dp.p4).
 *
 * Why these differ (docs/architectures.md): p4c-dpdk 1.2.4 rejects slices of 128-bit values and
 * constants wider than 64 bits ("Unsupported bitwidth"), so on PNA
 *  - the upper bits of IPv6 addresses are tested on a 64-bit word view of the IPv6 header
 *    (hdr.ipv6w, filled by the PNA parser with lookahead before hdr.ipv6 is extracted), and
 *  - an IPv4 address that the tables hand over inside 128 bits (IPv4-mapped) is also kept as its
 *    own 32-bit field (meta.*_addr4), filled where the 128-bit one is, for the NAT stages to write
 *    into the IPv4 header.
 * On v1model every macro expands to exactly the expression the stages used before the shim. Only
 * object-like macros: our own front end (k8s_offload/p4/preprocess.py) reads this file too. */
#ifndef K8S_DP_ARCH_P4
#define K8S_DP_ARCH_P4

#ifdef TARGET_DPDK_PNA

/* headers_t: the IPv6 header again, as 64-bit words (never emitted), and the PNA flow cache's
 * scratch headers (k8s_dp_pna.p4: learner keys, and the commit record a new flow carries into
 * its second pass). */
#define ARCH_HEADERS ipv6_words_t ipv6w; ct_commit_t ct_commit; flow_key_t ct_okey; flow_key_t ct_rkey; aff_key_t aff_key;
/* local_metadata_t: 32-bit copies of the IPv4 addresses the NAT stages write. */
#define ARCH_METADATA ipv4_addr_t be_addr4; ipv4_addr_t fe_addr4; ipv4_addr_t masq_addr4; ipv4_addr_t client_addr4;

#define IPV6_HAS_MAPPED_ADDRESS ((hdr.ipv6w.src_hi == 0 && hdr.ipv6w.src_lo[63:32] == 0xffff) || (hdr.ipv6w.dst_hi == 0 && hdr.ipv6w.dst_lo[63:32] == 0xffff))
#define IPV6_SRC_IS_MULTICAST (hdr.ipv6w.src_hi[63:56] == 0xff)
#define IPV6_SRC_IS_UNSPECIFIED (hdr.ipv6w.src_hi == 0 && hdr.ipv6w.src_lo == 0)
#define IPV6_DST_IS_MULTICAST (hdr.ipv6w.dst_hi[63:56] == 0xff)

#define BE_ADDR4 meta.be_addr4
#define FE_ADDR4 meta.fe_addr4
#define MASQ_ADDR4 meta.masq_addr4
#define CLIENT_ADDR4 meta.client_addr4
/* BackendNat keeps the frontend's IPv4 address before rewriting the destination. */
#define SAVE_FE_ADDR4 meta.fe_addr4 = hdr.ipv4.dst_addr;
/* nat_source's action also carries the IPv4 address (0 in IPv6 entries). */
#define NAT_SOURCE_ADDR4_PARAM , ipv4_addr_t addr4
#define SET_MASQ_ADDR4 meta.masq_addr4 = addr4;

#else

#define ARCH_HEADERS
#define ARCH_METADATA

#define IPV6_HAS_MAPPED_ADDRESS (hdr.ipv6.src_addr[127:32] == IPV4_MAPPED_PREFIX || hdr.ipv6.dst_addr[127:32] == IPV4_MAPPED_PREFIX)
#define IPV6_SRC_IS_MULTICAST (hdr.ipv6.src_addr[127:120] == 0xff)
#define IPV6_SRC_IS_UNSPECIFIED (hdr.ipv6.src_addr == 0)
#define IPV6_DST_IS_MULTICAST (hdr.ipv6.dst_addr[127:120] == 0xff)

#define BE_ADDR4 meta.be_addr[31:0]
#define FE_ADDR4 meta.fe_addr[31:0]
#define MASQ_ADDR4 meta.masq_addr[31:0]
#define CLIENT_ADDR4 meta.client_addr[31:0]
#define SAVE_FE_ADDR4
#define NAT_SOURCE_ADDR4_PARAM
#define SET_MASQ_ADDR4

#endif

#endif
