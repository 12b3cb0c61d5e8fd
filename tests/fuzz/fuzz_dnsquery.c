/* FUZZ_MODULE agent */
/* Fuzz target for what the agent's resolver reads from outside: the DNS
 * messages clients forward (agent_dns_query_check), and the pod's
 * resolv.conf and hosts files. The first input byte picks the parser.
 * Oracles beyond "no crash, no sanitizer report": an accepted query's
 * question really lies inside the message; a parsed resolv.conf stays
 * within its limits; a hosts lookup returns only well-formed items of the
 * asked family. */
#include <stdlib.h>
#include <string.h>

#include "agent/dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_query(const uint8_t *p, size_t n)
{
	size_t off = 12;

	if (agent_dns_query_check(p, n) < 0)
		return;
	if (n < 17 || (p[2] & 0x80) || p[4] != 0 || p[5] != 1)
		abort();
	while (p[off] != 0) {
		if (p[off] > 63)
			abort();
		off += (size_t)p[off] + 1;
		if (off >= n)
			abort();
	}
	if (off + 5 > n)
		abort();
}

static char *text_of(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);

	if (!s)
		abort();
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

static void check_conf(const uint8_t *p, size_t n)
{
	struct agent_dns_conf c;
	char *text = text_of(p, n);

	agent_dns_conf_parse(text, &c);
	if (c.nservers > AGENT_DNS_MAX_SERVERS || c.nsearch > AGENT_DNS_MAX_SEARCH ||
	    c.ndots > 15 || c.timeout_s < 1 || c.timeout_s > 30 || c.attempts < 1 || c.attempts > 5)
		abort();
	for (unsigned i = 0; i < c.nsearch; i++)
		if (!c.search[i][0])
			abort();
	agent_dns_conf_done(&c);
	free(text);
}

/* Input: family byte, name up to the first NUL, then the hosts text. */
static void check_hosts(const uint8_t *p, size_t n)
{
	static const uint8_t families[] = {PROTO_AF_NONE, PROTO_AF_INET, PROTO_AF_INET6};
	char *text, canon[300] = "";
	const uint8_t *nul;
	struct buf items;
	struct proto_list l;
	struct proto_iter it;
	struct proto_dnsaddr a;
	uint8_t family;
	uint32_t count, seen = 0;

	if (n < 1)
		return;
	family = families[p[0] % 3];
	nul = memchr(p + 1, 0, n - 1);
	if (!nul)
		return;
	text = text_of(nul + 1, n - (size_t)(nul + 1 - p));
	buf_init(&items);
	count = agent_dns_hosts_lookup(text, (const char *)p + 1, family, &items, canon,
				       sizeof(canon));
	l = (struct proto_list){
		.count = count, .data = buf_data(&items), .len = (uint32_t)buf_len(&items)};
	proto_iter_init(&it, &l);
	while (proto_iter_dnsaddr(&it, &a) > 0) {
		if (a.ttl != 0 || (family != PROTO_AF_NONE && a.addr.family != family))
			abort();
		seen++;
	}
	if (seen != count || (count && !canon[0]))
		abort();
	buf_done(&items);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 70000)
		return 0;
	switch (data[0] % 3) {
	case 0:
		check_query(data + 1, size - 1);
		break;
	case 1:
		check_conf(data + 1, size - 1);
		break;
	default:
		check_hosts(data + 1, size - 1);
		break;
	}
	return 0;
}
