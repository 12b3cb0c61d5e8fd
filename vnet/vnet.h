/* vnet: the app's network, relayed by the launcher ("system stack", DESIGN.md
 * "The kernel does TCP", research/vnet.md §1).
 *
 * This header has the pure-logic parts so far:
 *
 *  - vnet_packet_*: parse an IPv4 or IPv6 packet as read from a TUN (no link
 *    header), read its 5-tuple, rewrite its addresses and ports in place with
 *    incremental checksum updates (RFC 1624), turn an echo request into its
 *    reply, and build small packets from scratch (TCP RST, ICMP unreachable,
 *    UDP datagram) that the relay writes into the TUN.
 *  - vnet_nat_*: the NAT/flow table: original 5-tuple <-> NAT port, with port
 *    allocation that never hands out a live port, FIFO reuse of freed ports,
 *    idle expiry driven by the caller's clock, and a hard size bound.
 *
 * Nothing here does I/O, allocates per packet or keeps timers. Every input
 * byte is untrusted: all lengths and offsets are checked. Not thread-safe;
 * the launcher calls it from its one loop thread.
 *
 * struct vnet_packet and struct vnet_tuple are plain data on purpose (STYLE.md
 * keeps public structs opaque): a packet is parsed on the stack for every TUN
 * read, and an opaque handle would cost an allocation per packet.
 */
#ifndef PODENV_VNET_VNET_H
#define PODENV_VNET_VNET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/loop.h"

/* ---- addresses and tuples ------------------------------------------------ */

/* An IPv4 or IPv6 address in network byte order. IPv4 uses b[0..3] and keeps
 * b[4..15] zero, so that tuples compare and hash byte for byte. The family is
 * carried next to it (struct vnet_tuple, struct vnet_packet). */
struct vnet_addr {
	uint8_t b[16];
};

/* A flow's 5-tuple, ports in host byte order. family is 4 or 6; proto is the
 * IP protocol number (IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, IPPROTO_ICMPV6).
 * For ICMP echo request/reply both ports hold the echo identifier; for other
 * ICMP messages and other protocols they are 0. Unused bytes are zero. */
struct vnet_tuple {
	uint8_t family;
	uint8_t proto;
	uint16_t sport;
	uint16_t dport;
	struct vnet_addr src;
	struct vnet_addr dst;
};

/* Swaps source and destination (address and port) of t in place. */
void vnet_tuple_reverse(struct vnet_tuple *t);
/* True when a and b are the same flow (all fields equal). */
bool vnet_tuple_equal(const struct vnet_tuple *a, const struct vnet_tuple *b);

/* ---- packets --------------------------------------------------------------- */

#define VNET_PACKET_MAX 65575 /* 40-byte IPv6 header + 65535 payload (no jumbograms) */

/* struct vnet_packet flags */
enum {
	VNET_PACKET_FRAGMENT = 1u << 0, /* part of a fragmented datagram (any part) */
	VNET_PACKET_L4 = 1u << 1,	/* the transport header was parsed (l4_off/l4_len valid) */
	VNET_PACKET_ROUTED = 1u << 2,	/* IPv6 routing header with segments left: the
					 * pseudo-header uses another destination, so the
					 * packet cannot be rewritten */
	VNET_PACKET_NO_CSUM = 1u << 3,	/* UDP checksum field is 0 ("none" in IPv4; invalid
					 * in IPv6, where a rewrite computes it) */
	VNET_PACKET_TAIL_FRAGMENT = 1u << 4, /* a fragment other than the first: no
					      * transport header here */
};

/* TCP flags (the low byte of the TCP flags field) */
enum {
	VNET_TCP_FIN = 0x01,
	VNET_TCP_SYN = 0x02,
	VNET_TCP_RST = 0x04,
	VNET_TCP_PSH = 0x08,
	VNET_TCP_ACK = 0x10,
	VNET_TCP_URG = 0x20,
};

/* A parsed packet: a view into the caller's buffer (borrowed; it must outlive
 * the struct and not move). Read-only for callers: change the packet only
 * through vnet_packet_* so that the checksums follow.
 *
 * len is the IP datagram's own length (IPv4 total length, 40 + IPv6 payload
 * length); bytes the buffer holds beyond it are ignored. l4_off is the offset
 * of the transport header (after IPv4 options / IPv6 extension headers); when
 * VNET_PACKET_L4 is set, l4_len is the transport header's length (TCP with
 * options, 8 for UDP and ICMP) and payload_off/payload_len the bytes after it
 * (for UDP, as far as the UDP length says; for a first fragment, only what
 * this fragment carries). */
struct vnet_packet {
	uint8_t *data;
	uint32_t len;
	uint8_t family; /* 4 or 6 */
	uint8_t proto;	/* transport protocol after extension headers */
	uint8_t tcp_flags;
	uint8_t icmp_type; /* ICMP/ICMPv6 type, when VNET_PACKET_L4 */
	uint32_t flags;
	uint32_t l4_off;
	uint32_t l4_len;
	uint32_t payload_off;
	uint32_t payload_len;
};

/* Parses len bytes at data (borrowed) into *p. Accepts IPv4 with options and
 * IPv6 with extension headers (hop-by-hop, routing, fragment, destination
 * options, AH; at most 8 of them, hop-by-hop only first), TCP, UDP, ICMP and
 * ICMPv6 transport headers. Other transports parse with VNET_PACKET_L4 clear,
 * as do non-first fragments. Checksums are not verified (see
 * vnet_packet_csum_ok).
 * Errors: -EBADMSG truncated or inconsistent (bad IHL, lengths, header chain),
 * -EPROTONOSUPPORT not IP version 4 or 6, or an IPv6 jumbogram. */
int vnet_packet_parse(struct vnet_packet *p, uint8_t *data, size_t len);

/* The packet's 5-tuple (see struct vnet_tuple for ICMP). */
void vnet_packet_tuple(const struct vnet_packet *p, struct vnet_tuple *t);

/* TCP sequence and acknowledgment numbers (host order); 0 if not TCP. */
uint32_t vnet_packet_tcp_seq(const struct vnet_packet *p);
uint32_t vnet_packet_tcp_ack(const struct vnet_packet *p);

/* Rewrites the source (vnet_packet_set_src) or destination (_set_dst) in
 * place: the address when addr is non-NULL (same family as the packet), and
 * the port for TCP and UDP (pass the current port to keep it; ignored for
 * other protocols). The IPv4 header checksum and the TCP/UDP/ICMPv6 checksum
 * (pseudo-header) are updated incrementally, so the cost does not depend on
 * the payload size; a checksum that was wrong stays wrong by the same amount.
 * An IPv4 UDP checksum of 0 (none) stays 0; an IPv6 UDP checksum of 0, which
 * RFC 8200 forbids, is computed in full (not possible for a fragment).
 * Errors: -EOPNOTSUPP for a packet flagged VNET_PACKET_ROUTED, or an IPv6 UDP
 * fragment without checksum, or a non-first fragment when the port would
 * change (its transport header is elsewhere). */
int vnet_packet_set_src(struct vnet_packet *p, const struct vnet_addr *addr, uint16_t port);
int vnet_packet_set_dst(struct vnet_packet *p, const struct vnet_addr *addr, uint16_t port);

/* Turns an ICMP(v6) echo request into its reply in place: addresses swapped,
 * type 8 -> 0 (ICMPv4) or 128 -> 129 (ICMPv6), TTL/hop limit reset to 64,
 * checksums updated. Payload, identifier and sequence are kept.
 * Errors: -EINVAL not an (unfragmented) echo request. */
int vnet_packet_echo_reply(struct vnet_packet *p);

/* True when the IPv4 header checksum and the transport checksum verify (a UDP
 * checksum of 0 counts as valid in IPv4). Fragments: only the IP header. */
bool vnet_packet_csum_ok(const struct vnet_packet *p);

/* Builders. Each writes a complete IP packet into buf (borrowed, cap bytes),
 * checksums included, and returns its length; -ENOBUFS if cap is too small.
 * IPv4 packets get DF set, id 0 and TTL 64; IPv6 hop limit 64. */

/* The RST a TCP stack sends in answer to `orig` (RFC 9293 §3.10.7.1): from
 * orig's destination to its source; if orig has ACK, seq = orig's ack,
 * otherwise seq 0 and ACK with ack = orig's seq + its segment length.
 * Errors: -EINVAL orig is not TCP with a parsed header, or is itself a RST. */
int vnet_packet_build_rst(uint8_t *buf, size_t cap, const struct vnet_packet *orig);

/* Reasons for vnet_packet_build_unreach, mapped per family:
 * ICMPv4 type 3 codes 0/1/3/13, ICMPv6 type 1 codes 0/3/4/1. */
enum vnet_unreach {
	VNET_UNREACH_NET,
	VNET_UNREACH_HOST,
	VNET_UNREACH_PORT,
	VNET_UNREACH_ADMIN,
};

/* An ICMP(v6) destination unreachable about `orig`, from orig's destination to
 * its source, quoting as much of orig as fits in 576 (IPv4, RFC 1812 §4.3.2.3)
 * or 1280 (IPv6, RFC 4443 §2.4) bytes.
 * Errors: -EINVAL if no error may be sent about orig (RFC 1122 §3.2.2,
 * RFC 4443 §2.4): an ICMP error or unknown ICMP type, a non-first fragment, a
 * multicast/broadcast/unspecified address. */
int vnet_packet_build_unreach(uint8_t *buf, size_t cap, const struct vnet_packet *orig,
			      enum vnet_unreach why);

/* A UDP datagram for flow t (t->proto must be IPPROTO_UDP) carrying len bytes
 * of payload (borrowed). Errors: -EINVAL bad tuple, -EMSGSIZE payload too
 * large for one datagram. */
int vnet_packet_build_udp(uint8_t *buf, size_t cap, const struct vnet_tuple *t,
			  const void *payload, size_t len);

/* ---- NAT table ------------------------------------------------------------- */

/* The relay's flow table (research/vnet.md §1.3, §1.7.5). Each entry maps an
 * original tuple (what the app sent) to a NAT port, the source port of the
 * rewritten packet; lookups go both ways: by tuple (outbound packets) and by
 * (protocol, NAT port) (the listener's accept, and its replies). TCP and UDP
 * have separate port spaces shared by IPv4 and IPv6.
 *
 * A port is never handed out while its entry lives; freed ports queue up and
 * are reused in FIFO order, so a port rests as long as possible (TIME_WAIT on
 * the listener side) before its next flow. Time is the caller's: every call
 * that uses time takes `now` (usec_t, monotonic, non-decreasing); the table
 * keeps one least-recently-used list per protocol, so expiry costs only the
 * entries it removes. */
struct vnet_nat;
struct vnet_nat_entry;

/* Creates a table with NAT ports [port_min, port_max] per protocol and at
 * most max_entries entries in all. Caller frees with vnet_nat_free.
 * Errors: -EINVAL port_min 0, port_min > port_max, max_entries 0 or above
 * 1 << 20. */
int vnet_nat_new(uint16_t port_min, uint16_t port_max, uint32_t max_entries,
		 struct vnet_nat **ret);
/* Frees the table and its entries (not their userdata). Accepts NULL. */
void vnet_nat_free(struct vnet_nat *n);

/* Adds an entry for t (copied) with a fresh NAT port, last used at now.
 * *ret (borrowed, valid until the entry is removed) gets the new entry, or on
 * -EEXIST the existing entry for t (a retransmitted SYN finds its flow).
 * Errors: -EEXIST t already has an entry, -ENOSPC the table holds max_entries,
 * -EADDRNOTAVAIL every NAT port of t's protocol is live, -EPROTONOSUPPORT not
 * TCP or UDP, -EINVAL family not 4 or 6. */
int vnet_nat_add(struct vnet_nat *n, const struct vnet_tuple *t, usec_t now,
		 struct vnet_nat_entry **ret);

/* The entry for original tuple t, or NULL. Borrowed. */
struct vnet_nat_entry *vnet_nat_lookup(struct vnet_nat *n, const struct vnet_tuple *t);
/* The entry holding NAT port `port` of protocol proto, or NULL. Borrowed. */
struct vnet_nat_entry *vnet_nat_lookup_port(struct vnet_nat *n, uint8_t proto, uint16_t port);

/* Marks e used at now (moves it to the young end of its protocol's list). */
void vnet_nat_touch(struct vnet_nat *n, struct vnet_nat_entry *e, usec_t now);

/* Removes and frees e (not its userdata); its port queues for reuse. The
 * caller calls this on FIN/RST or when it tears the flow down. */
void vnet_nat_remove(struct vnet_nat *n, struct vnet_nat_entry *e);

/* Called by vnet_nat_expire for each expired entry, after the entry is gone
 * (t and the entry's userdata are passed by value/pointer, the entry is
 * not). The callback may add and remove other entries. */
typedef void (*vnet_nat_expire_fn)(const struct vnet_tuple *t, uint16_t nat_port,
				   void *entry_userdata, void *userdata);

/* Removes every entry of protocol proto last used before `before` (e.g.
 * now - idle timeout), oldest first, calling fn (may be NULL) for each.
 * Returns the number removed. */
int vnet_nat_expire(struct vnet_nat *n, uint8_t proto, usec_t before, vnet_nat_expire_fn fn,
		    void *userdata);
/* The last-use time of proto's least recently used entry (arm the expiry
 * timer at that + timeout), or USEC_INFINITY when it has none. */
usec_t vnet_nat_oldest(const struct vnet_nat *n, uint8_t proto);

/* Entry accessors. The tuple is borrowed from the entry. */
const struct vnet_tuple *vnet_nat_entry_tuple(const struct vnet_nat_entry *e);
uint16_t vnet_nat_entry_port(const struct vnet_nat_entry *e);
usec_t vnet_nat_entry_last_used(const struct vnet_nat_entry *e);
/* A pointer the caller keeps with the entry (its flow); never freed here. */
void *vnet_nat_entry_userdata(const struct vnet_nat_entry *e);
void vnet_nat_entry_set_userdata(struct vnet_nat_entry *e, void *userdata);

struct vnet_nat_stats {
	uint32_t entries;     /* live entries */
	uint32_t tcp, udp;    /* live entries per protocol */
	uint32_t max_entries; /* the bound given to vnet_nat_new */
	uint64_t added;	      /* successful vnet_nat_add */
	uint64_t removed;     /* vnet_nat_remove */
	uint64_t expired;     /* removed by vnet_nat_expire */
	uint64_t full;	      /* vnet_nat_add failed: -ENOSPC or -EADDRNOTAVAIL */
	uint64_t lookups;     /* vnet_nat_lookup and _lookup_port calls */
	uint64_t misses;      /* of which found nothing */
};

void vnet_nat_stats(const struct vnet_nat *n, struct vnet_nat_stats *st);

/* ---- the app's network namespace (tun.c) ------------------------------------ */

/* The TUN device and its addresses. Addresses are text ("198.18.0.1"); the
 * prefix must leave room for the fake peer (research/vnet.md §1.2). */
struct vnet_netns_cfg {
	const char *name; /* "podenv0" */
	uint32_t mtu;	  /* 65520: the biggest throughput lever */
	const char *addr4;
	int plen4;
	const char *addr6; /* NULL: no IPv6 */
	int plen6;
};

/* 0 when this process can create a TUN device (/dev/net/tun usable), else
 * a negative errno and a message saying what to do. */
int vnet_tun_check(struct err *reterr);

/* In the calling thread's (new, empty) network namespace: brings up lo,
 * creates the TUN (non-blocking, no packet info), addresses it, sets its
 * MTU and makes it the default route for IPv4 and IPv6. Returns 0 and the
 * TUN fd (caller closes), or a negative errno and reterr naming the step. */
int vnet_netns_setup(const struct vnet_netns_cfg *cfg, int *ret_tun_fd, struct err *reterr);

/* ---- sock_diag (diag.c) ---------------------------------------------------------- */

struct inet_diag_msg;
/* One socket of a dump: the message and its attributes, len bytes in all. */
typedef void (*vnet_diag_fn)(const struct inet_diag_msg *m, size_t len, void *userdata);

/* Dumps the sockets of (family, proto) in `states` (a bit per TCP state;
 * UDP: 1 << 7 unconnected, 1 << 1 connected) with source port sport (0:
 * any) on diag_fd, a blocking NETLINK_SOCK_DIAG socket of the namespace
 * asked about, calling fn for each. seq is the caller's request counter.
 * Returns 0, or a negative errno (the dump is then incomplete). */
int vnet_diag_dump(int diag_fd, uint32_t *seq, int family, int proto, uint32_t states,
		   uint16_t sport, vnet_diag_fn fn, void *userdata);

/* ---- the app's loopback (loopback.c) ------------------------------------------ */

/* mirrord's ignore_localhost: 127.0.0.0/8 leaves through the TUN (to the pod's
 * loopback, or this host's) except for the ports the app itself listens on,
 * which stay on lo. IPv6 ::1 always stays on lo (see loopback.c). */
struct vnet_loopback;

/* In the app's namespace (child, after vnet_netns_setup): the policy rules
 * that send 127.0.0.0/8 to the TUN. rtnl_fd: a NETLINK_ROUTE socket of the
 * namespace. */
int vnet_loopback_route_setup(int rtnl_fd, struct err *reterr);

/* The parent's side: fds (borrowed) are a NETLINK_ROUTE and a
 * NETLINK_SOCK_DIAG socket created in the app's namespace. */
int vnet_loopback_new(struct loop *loop, int rtnl_fd, int diag_fd, struct vnet_loopback **ret,
		      struct err *reterr);
void vnet_loopback_free(struct vnet_loopback *lb);

/* True when the app listens on proto/port on an address that takes
 * 127.0.0.1 (asked of sock_diag); the port's exception rules are then in
 * place, so the packet that asked may be written back into the TUN.
 * NULL lb: false. */
bool vnet_loopback_is_local(struct vnet_loopback *lb, uint8_t proto, uint16_t port);
/* Only what is already known (no sock_diag). */
bool vnet_loopback_known_local(const struct vnet_loopback *lb, uint8_t proto, uint16_t port);

/* True when t goes to 127.0.0.0/8. */
bool vnet_addr_is_loopback4(const struct vnet_tuple *t);

/* ---- the relay (relay.c) ------------------------------------------------------ */

struct proto_client;

/* Where a new flow goes (the route callback's answer). */
enum {
	VNET_ROUTE_REMOTE = 0, /* through the agent: the connection leaves from the pod */
	VNET_ROUTE_LOCAL,      /* from this host's network */
	VNET_ROUTE_REJECT,     /* refused: RST / ICMP port unreachable to the app */
};

struct vnet_relay_cfg {
	struct loop *loop;
	struct proto_client *client; /* borrowed: remote flows are streams on it */
	/* Borrowed fds from the app's namespace: the TUN, and the TCP
	 * listeners on addr4 and addr6 (-1: none). */
	int tun_fd;
	int listen4_fd;
	int listen6_fd;
	/* The TUN's addresses and the fake peers beside them (§1.2). */
	struct vnet_addr addr4, peer4, addr6, peer6;
	/* Decides each new TCP or UDP flow (NULL: everything remote). */
	int (*route)(void *userdata, const struct vnet_tuple *t);
	/* UDP to port 53 at any address: the DNS server answers with
	 * vnet_relay_udp_reply() (NULL: relayed like other UDP). */
	void (*dns_query)(void *userdata, const struct vnet_tuple *t, const uint8_t *query,
			  size_t len);
	/* Borrowed, or NULL: 127.0.0.0/8 flows to ports the app listens on
	 * are written back into the TUN (the app's own loopback). */
	struct vnet_loopback *loopback;
	void *userdata;
};

struct vnet_relay;

/* Starts relaying on cfg->loop. Caller frees with vnet_relay_free (which
 * closes every flow; the fds in cfg stay the caller's). */
int vnet_relay_new(const struct vnet_relay_cfg *cfg, struct vnet_relay **ret,
		   struct err *reterr);
void vnet_relay_free(struct vnet_relay *r);

/* Sends the app a UDP datagram answering flow t (t as the app sent it: the
 * answer goes from t's destination to t's source). */
void vnet_relay_udp_reply(struct vnet_relay *r, const struct vnet_tuple *t, const void *payload,
			  size_t len);

/* ---- delivery of incoming connections (deliver.c) ----------------------------- */

/* Relays connections that reach the app from outside its namespace: each
 * joins a socket connected (or connecting) to the app's listener with its
 * far side, an INCOMING stream or a socket of this host. */
struct vnet_deliver;

/* refused (may be NULL) is called when the app refused a connection (its
 * listener is gone). Caller frees with vnet_deliver_free(), which resets
 * every connection still open. Loop thread only. */
int vnet_deliver_new(struct loop *loop, void (*refused)(void *userdata), void *userdata,
		     struct vnet_deliver **ret);
void vnet_deliver_free(struct vnet_deliver *d);

/* Takes INCOMING stream `id` of client (call from the client's incoming
 * callback) and relays it to app_fd, a non-blocking TCP socket whose
 * connect() to the app has been started. mirror: what the app answers is
 * dropped. Takes ownership of app_fd on success only. */
int vnet_deliver_stream(struct vnet_deliver *d, struct proto_client *client, uint64_t id,
			bool mirror, int app_fd);
/* Relays a connected host socket far_fd to app_fd (as above). Takes
 * ownership of both on success only. */
int vnet_deliver_socket(struct vnet_deliver *d, int far_fd, int app_fd);
/* Opens a stream to the unix socket at path in the pod (outgoing
 * unix_streams: proto_stream_open_unix) and relays it to app_fd, a
 * connected socket whose peer the app holds. opened(userdata, err) is
 * called once with the open's outcome (0, or the pod's errno), before any
 * byte moves; on an error the connection ends and app_fd is closed. Takes
 * ownership of app_fd on success only. */
int vnet_deliver_open_unix(struct vnet_deliver *d, struct proto_client *client, const char *path,
			   int app_fd, void (*opened)(void *userdata, int err), void *userdata);
/* Connections being relayed (or being freed). */
unsigned vnet_deliver_count(const struct vnet_deliver *d);

#endif
