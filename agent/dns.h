/* The agent's resolver: DNS_RESOLVE and DNS_QUERY answered inside the pod
 * with c-ares, configured from the pod's /etc/resolv.conf and /etc/hosts
 * (never the host's). Private to agent/; loop thread only.
 *
 * There is one resolver per process, like the loop it runs on: it is
 * created in serve() after the agent entered the target's network
 * namespace (so every socket c-ares opens is the pod's) and before the
 * server starts, and dispatch() reaches it without a pointer threaded
 * through the server.
 */
#ifndef PODENV_AGENT_DNS_H
#define PODENV_AGENT_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/agent.h"
#include "common/buf.h"
#include "common/loop.h"
#include "proto/proto.h"

struct agent_session;

#define AGENT_DNS_MAX_SERVERS 3 /* glibc's MAXNS: later nameserver lines are ignored */
#define AGENT_DNS_MAX_SEARCH 32

/* What the agent takes from a resolv.conf(5). */
struct agent_dns_conf {
	struct {
		uint8_t family; /* enum proto_af: INET or INET6 */
		uint8_t bytes[16];
	} servers[AGENT_DNS_MAX_SERVERS];
	unsigned nservers;
	char *search[AGENT_DNS_MAX_SEARCH]; /* owned; "domain" or "search", the last wins */
	unsigned nsearch;
	unsigned ndots;	    /* default 1, at most 15 */
	unsigned timeout_s; /* per try; default 5, at most 30 */
	unsigned attempts;  /* default 2, at most 5 */
	bool rotate, edns0, use_vc;
};

/* Parses resolv.conf text the way glibc does (unknown lines and options
 * are ignored, bad addresses skipped, limits clamped). Never fails; free
 * with agent_dns_conf_done. */
void agent_dns_conf_parse(const char *text, struct agent_dns_conf *c);
void agent_dns_conf_done(struct agent_dns_conf *c);

/* Looks `name` up in hosts(5) text (case-insensitive, a trailing dot
 * ignored; canonical names and aliases both match). Appends every match of
 * `family` (enum proto_af; NONE: both) to `items` as proto_dnsaddr with
 * TTL 0 and copies the first matching line's canonical name to canon.
 * Returns the number of addresses appended. */
uint32_t agent_dns_hosts_lookup(const char *text, const char *name, uint8_t family,
				struct buf *items, char *canon, size_t canonsz);

/* 0 when p[0, n) is a DNS message the agent forwards: a header with QR
 * clear and opcode QUERY, exactly one question whose name is a valid
 * uncompressed name followed by its type and class, at most 65 535 bytes.
 * -EINVAL otherwise. */
int agent_dns_query_check(const uint8_t *p, size_t n);

/* Creates the process's resolver on loop l from the target's files. A
 * missing or unreadable resolv.conf is not an error: the resolver then has
 * no nameserver and answers what /etc/hosts does not with EHOSTUNREACH.
 * Errors (c-ares cannot start) are -errno with reterr filled; DNS requests
 * are then answered with EHOSTUNREACH. Call once, before threads start
 * (ares_library_init is not thread-safe). */
int agent_dns_init(struct loop *l, const struct agent_target *t, struct err *reterr);
/* Drops every query in flight without answering and frees the resolver.
 * Call before the loop is freed. Safe without a successful init. */
void agent_dns_done(void);

/* Answers a DNS_RESOLVE or DNS_QUERY request of session s, now or when
 * c-ares calls back. m is borrowed (copied as needed). */
void agent_dns_request(struct agent_session *s, const struct proto_msg *m);
/* The session is closing: its queries in flight will be dropped when they
 * finish. */
void agent_dns_session_closed(struct agent_session *s);

#endif
