/* DNS inside the pod: DNS_RESOLVE (getaddrinfo with the pod's search list
 * and ndots) and DNS_QUERY (raw messages forwarded to the pod's
 * nameservers), answered asynchronously on the agent's loop.
 *
 * Nothing of the host's resolver configuration may leak in: the pod's
 * /etc/resolv.conf and /etc/hosts are read once at start-up through the
 * target's root, and c-ares gets every setting it would otherwise read from
 * a file or the environment as an option (servers, search domains, ndots,
 * timeout, tries, sortlist, lookups "b" = DNS only, NOALIASES against
 * $HOSTALIASES), so ares_init_options() skips /etc/resolv.conf, $LOCALDOMAIN
 * and $RES_OPTIONS cannot override, and /etc/hosts is never opened. The
 * pod's hosts file is honoured here, before DNS, as glibc's "files dns".
 *
 * Two channels: `res` for DNS_RESOLVE, where c-ares skips a server that
 * answers SERVFAIL/REFUSED; `raw` for DNS_QUERY with ARES_FLAG_NOCHECKRESP,
 * so every answer goes back unchanged. Both fall back to TCP by themselves
 * when a UDP answer is truncated. The raw channel never sets ARES_FLAG_EDNS:
 * c-ares 1.18 then assumes it appended the OPT record itself and, on a
 * FORMERR, would cut 11 bytes off the client's query. Without it, a UDP
 * answer over 512 bytes counts as truncated and is fetched again over TCP,
 * which costs a round trip but never loses records.
 *
 * Sockets reach the loop through c-ares' socket-state callback and one
 * timer armed from ares_timeout(). Requests in flight are kept on a list;
 * a closing session only marks its own (c-ares 1.18 cannot cancel one
 * query), and their answers are dropped when they finish.
 */
#define LOG_TARGET "podenv::agent::dns"
#include <ares.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "agent/dns.h"
#include "agent/stream.h"
#include "common/log.h"
#include "common/map.h"

#define DNS_FILE_MAX (256u * 1024) /* resolv.conf, hosts */
#define DNS_NAME_MAX 254	   /* 253 characters and a trailing dot */
#define DNS_PENDING_MAX 4096	   /* requests in flight, all sessions */
#define DNS_ADDRS_MAX 1024	   /* addresses in one DNS_RESOLVE answer */
#define DNS_HEADER_SIZE 12

struct dns_chan {
	ares_channel channel;
	bool ok;
};

/* One c-ares socket watched by the loop. */
struct dns_sock {
	struct dns_chan *ch;
	struct loop_source *src;
};

struct dns_req {
	struct dns_req *prev, *next;
	struct agent_session *session; /* NULL once the session closed */
	uint16_t type;		       /* PROTO_DNS_RESOLVE or PROTO_DNS_QUERY */
	uint64_t id;
	uint16_t client_qid, qid; /* DNS_QUERY: the client's message id, ours */
};

static struct {
	struct loop *loop;
	struct loop_source *timer;
	struct dns_chan res, raw;
	struct map socks; /* fd -> struct dns_sock */
	struct agent_dns_conf conf;
	char *hosts; /* the pod's /etc/hosts, or NULL */
	struct dns_req *pending;
	unsigned npending;
	bool ready;
} dns;

/* --- resolv.conf and hosts ------------------------------------------------------ */

static const char *skip_space(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\r')
		p++;
	return p;
}

/* The next whitespace-separated word of the line at *p, copied to out
 * (truncated words are dropped: nothing valid is that long). */
static bool next_word(const char **p, char *out, size_t outsz)
{
	const char *s = skip_space(*p), *e = s;
	size_t n;

	while (*e && *e != ' ' && *e != '\t' && *e != '\r' && *e != '\n')
		e++;
	*p = e;
	n = (size_t)(e - s);
	if (n == 0)
		return false;
	if (n >= outsz) {
		out[0] = '\0';
		return true;
	}
	memcpy(out, s, n);
	out[n] = '\0';
	return true;
}

static unsigned clamp_option(const char *v, unsigned max)
{
	unsigned long n = strtoul(v, NULL, 10);

	return n > max ? max : (unsigned)n;
}

static void conf_search_clear(struct agent_dns_conf *c)
{
	for (unsigned i = 0; i < c->nsearch; i++)
		free(c->search[i]);
	c->nsearch = 0;
}

static void conf_line(struct agent_dns_conf *c, const char *p)
{
	char key[32], w[DNS_NAME_MAX + 2];

	if (!next_word(&p, key, sizeof(key)))
		return;
	if (!strcmp(key, "nameserver")) {
		if (!next_word(&p, w, sizeof(w)) || c->nservers == AGENT_DNS_MAX_SERVERS)
			return;
		/* A scope ("fe80::1%eth0") cannot be given to c-ares: skip. */
		if (inet_pton(AF_INET, w, c->servers[c->nservers].bytes) == 1)
			c->servers[c->nservers++].family = PROTO_AF_INET;
		else if (inet_pton(AF_INET6, w, c->servers[c->nservers].bytes) == 1)
			c->servers[c->nservers++].family = PROTO_AF_INET6;
	} else if (!strcmp(key, "domain") || !strcmp(key, "search")) {
		/* resolv.conf(5): the last "domain" or "search" line wins. */
		conf_search_clear(c);
		while (next_word(&p, w, sizeof(w)) && c->nsearch < AGENT_DNS_MAX_SEARCH) {
			size_t n = strlen(w);
			if (n > 0 && w[n - 1] == '.')
				w[--n] = '\0';
			if (n > 0 && strcmp(w, "."))
				c->search[c->nsearch++] = xstrdup(w);
			if (key[0] == 'd')
				break;
		}
	} else if (!strcmp(key, "options")) {
		while (next_word(&p, w, sizeof(w))) {
			if (!strncmp(w, "ndots:", 6))
				c->ndots = clamp_option(w + 6, 15);
			else if (!strncmp(w, "timeout:", 8))
				c->timeout_s = clamp_option(w + 8, 30);
			else if (!strncmp(w, "attempts:", 9))
				c->attempts = clamp_option(w + 9, 5);
			else if (!strcmp(w, "rotate"))
				c->rotate = true;
			else if (!strcmp(w, "edns0"))
				c->edns0 = true;
			else if (!strcmp(w, "use-vc"))
				c->use_vc = true;
		}
	}
}

void agent_dns_conf_parse(const char *text, struct agent_dns_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->ndots = 1;
	c->timeout_s = 5;
	c->attempts = 2;
	for (const char *line = text; line && *line;) {
		const char *nl = strchr(line, '\n');
		size_t n = nl ? (size_t)(nl - line) : strlen(line);
		char buf[1024];

		/* Comments start with ';' or '#' in the first column. */
		if (n < sizeof(buf) && line[0] != '#' && line[0] != ';') {
			memcpy(buf, line, n);
			buf[n] = '\0';
			conf_line(c, buf);
		}
		line = nl ? nl + 1 : NULL;
	}
	if (c->timeout_s == 0)
		c->timeout_s = 1;
	if (c->attempts == 0)
		c->attempts = 1;
}

void agent_dns_conf_done(struct agent_dns_conf *c)
{
	conf_search_clear(c);
}

static bool name_equal(const char *a, const char *b)
{
	size_t na = strlen(a), nb = strlen(b);

	if (na > 0 && a[na - 1] == '.')
		na--;
	if (nb > 0 && b[nb - 1] == '.')
		nb--;
	return na == nb && na > 0 && strncasecmp(a, b, na) == 0;
}

uint32_t agent_dns_hosts_lookup(const char *text, const char *name, uint8_t family,
				struct buf *items, char *canon, size_t canonsz)
{
	uint32_t count = 0;

	for (const char *line = text; line && *line;) {
		const char *nl = strchr(line, '\n');
		size_t n = nl ? (size_t)(nl - line) : strlen(line);
		char buf[1024], addr[64], w[DNS_NAME_MAX + 2], first[DNS_NAME_MAX + 2];
		struct proto_dnsaddr a = {.ttl = 0};
		const char *p = buf;

		const char *start = line;

		line = nl ? nl + 1 : NULL;
		if (n >= sizeof(buf))
			continue;
		memcpy(buf, start, n);
		buf[n] = '\0';
		buf[strcspn(buf, "#")] = '\0';
		/* A canonical name too long to be one makes the line invalid. */
		if (!next_word(&p, addr, sizeof(addr)) || !next_word(&p, first, sizeof(first)) ||
		    !first[0])
			continue;
		if (inet_pton(AF_INET, addr, a.addr.bytes) == 1)
			a.addr.family = PROTO_AF_INET;
		else if (inet_pton(AF_INET6, addr, a.addr.bytes) == 1)
			a.addr.family = PROTO_AF_INET6;
		else
			continue;
		bool match = name_equal(first, name);
		while (!match && next_word(&p, w, sizeof(w)))
			match = name_equal(w, name);
		if (!match || (family != PROTO_AF_NONE && family != a.addr.family))
			continue;
		if (count == 0)
			snprintf(canon, canonsz, "%s", first);
		if (count < DNS_ADDRS_MAX) {
			proto_dnsaddr_put(items, &a);
			count++;
		}
	}
	return count;
}

/* --- query validation -------------------------------------------------------------- */

int agent_dns_query_check(const uint8_t *p, size_t n)
{
	size_t off = DNS_HEADER_SIZE, namelen = 0;

	if (n < DNS_HEADER_SIZE + 1 + 4 || n > 65535)
		return -EINVAL;
	if (p[2] & 0x80) /* QR: a response */
		return -EINVAL;
	if (((p[2] >> 3) & 0xf) != 0) /* opcode QUERY only */
		return -EINVAL;
	if (p[4] != 0 || p[5] != 1) /* QDCOUNT */
		return -EINVAL;
	for (;;) {
		if (off >= n)
			return -EINVAL;
		uint8_t len = p[off++];
		if (len == 0)
			break;
		/* No compression in a query's only question; 0x40/0x80 are
		 * reserved label types. */
		if (len > 63)
			return -EINVAL;
		namelen += (size_t)len + 1;
		if (namelen > 255 || off + len > n)
			return -EINVAL;
		off += len;
	}
	return off + 4 <= n ? 0 : -EINVAL;
}

/* --- replies ----------------------------------------------------------------------- */

/* c-ares status -> errno (docs/PROTOCOL.md, DNS_RESOLVE). */
static int errno_from_ares(int status)
{
	switch (status) {
	case ARES_ENOTFOUND:
	case ARES_ENODATA:
	case ARES_ENONAME:
		return ENOENT;
	case ARES_ETIMEOUT:
		return ETIMEDOUT;
	case ARES_ESERVFAIL:
	case ARES_EREFUSED:
	case ARES_ECONNREFUSED:
		return EAGAIN;
	case ARES_EBADNAME:
	case ARES_EBADQUERY:
	case ARES_EBADFLAGS:
	case ARES_EBADFAMILY:
		return EINVAL;
	case ARES_ENOMEM:
		return ENOMEM;
	case ARES_ECANCELLED:
	case ARES_EDESTRUCTION:
		return ECANCELED;
	default:
		return EIO;
	}
}

static void reply_error(struct agent_session *s, uint16_t type, uint64_t id, int err)
{
	struct proto_msg req = {.type = type, .id = id}, m;

	proto_msg_error(&m, &req, err);
	agent_session_send(s, &m);
}

static void reply_addrs(struct agent_session *s, uint16_t type, uint64_t id, const char *canon,
			struct buf *items, uint32_t count)
{
	struct proto_msg m = {.type = type, .flags = PROTO_F_RESPONSE, .id = id};

	m.rep.str = canon;
	m.rep.list.count = count;
	m.rep.list.data = buf_data(items);
	m.rep.list.len = (uint32_t)buf_len(items);
	agent_session_send(s, &m);
}

/* --- requests in flight ------------------------------------------------------------ */

static struct dns_req *req_new(struct agent_session *s, const struct proto_msg *m)
{
	struct dns_req *rq = xcalloc(1, sizeof(*rq));

	rq->session = s;
	rq->type = m->type;
	rq->id = m->id;
	rq->next = dns.pending;
	if (dns.pending)
		dns.pending->prev = rq;
	dns.pending = rq;
	dns.npending++;
	return rq;
}

static void req_unlink(struct dns_req *rq)
{
	if (rq->prev)
		rq->prev->next = rq->next;
	else
		dns.pending = rq->next;
	if (rq->next)
		rq->next->prev = rq->prev;
	rq->prev = rq->next = NULL;
	dns.npending--;
}

void agent_dns_session_closed(struct agent_session *s)
{
	for (struct dns_req *rq = dns.pending; rq; rq = rq->next)
		if (rq->session == s)
			rq->session = NULL;
}

/* --- the loop: sockets and timer ---------------------------------------------------- */

static void timer_update(void)
{
	struct dns_chan *chans[] = {&dns.res, &dns.raw};
	usec_t best = USEC_INFINITY;

	for (size_t i = 0; i < ARRAY_SIZE(chans); i++) {
		struct timeval tv, *tvp;
		if (!chans[i]->ok)
			continue;
		tvp = ares_timeout(chans[i]->channel, NULL, &tv);
		if (tvp) {
			usec_t t = (usec_t)tvp->tv_sec * USEC_PER_SEC + (usec_t)tvp->tv_usec;
			best = MIN(best, t);
		}
	}
	loop_timer_set(dns.timer, best == USEC_INFINITY ? USEC_INFINITY : now_usec() + best);
}

static int on_timer(struct loop_source *src, usec_t now, void *userdata)
{
	(void)src;
	(void)now;
	(void)userdata;

	if (dns.res.ok)
		ares_process_fd(dns.res.channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	if (dns.raw.ok)
		ares_process_fd(dns.raw.channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	timer_update();
	return 0;
}

static int on_sock_io(struct loop_source *src, int fd, uint32_t events, void *userdata)
{
	/* ares_process_fd may close the socket and free ds: read it first. */
	ares_channel ch = ((struct dns_sock *)userdata)->ch->channel;
	(void)src;

	/* An error or hang-up is reported as readable, so c-ares reads the
	 * socket, sees the error and moves to the next server. */
	ares_process_fd(ch, events & (EPOLLIN | EPOLLERR | EPOLLHUP) ? fd : ARES_SOCKET_BAD,
			events & EPOLLOUT ? fd : ARES_SOCKET_BAD);
	timer_update();
	return 0;
}

static void sock_forget(int fd)
{
	struct dns_sock *ds = map_remove(&dns.socks, (uint64_t)fd);

	if (ds) {
		loop_source_free(ds->src);
		free(ds);
	}
}

/* c-ares calls this with readable = writable = 0 just before closing fd. */
static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns_sock *ds = map_get(&dns.socks, (uint64_t)fd);
	uint32_t ev = (readable ? EPOLLIN : 0) | (writable ? EPOLLOUT : 0);
	int r;

	if (!ev) {
		sock_forget(fd);
		return;
	}
	if (ds) {
		loop_io_events_set(ds->src, ev);
		return;
	}
	ds = xcalloc(1, sizeof(*ds));
	ds->ch = data;
	r = loop_add_io(dns.loop, fd, ev, on_sock_io, ds, &ds->src);
	if (r < 0) {
		/* The query then ends by its timeout. */
		log_warn("cannot watch a DNS socket: %s", strerror(-r));
		free(ds);
		return;
	}
	map_put(&dns.socks, (uint64_t)fd, ds);
}

/* c-ares 1.18 opens its sockets without SOCK_CLOEXEC. */
static int on_sock_create(ares_socket_t fd, int type, void *data)
{
	(void)type;
	(void)data;
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	return ARES_SUCCESS;
}

/* --- DNS_RESOLVE --------------------------------------------------------------------- */

/* The name the answers are for: the question's name (after the search
 * list), followed through the CNAME chain c-ares recorded. */
static const char *canonical_name(const struct ares_addrinfo *res, const char *fallback)
{
	const char *cur = res->name ? res->name : fallback;

	for (int hops = 0; hops < 16; hops++) {
		const struct ares_addrinfo_cname *c;
		for (c = res->cnames; c; c = c->next)
			if (c->alias && c->name && strcasecmp(c->alias, cur) == 0 &&
			    strcasecmp(c->name, cur) != 0)
				break;
		if (!c)
			break;
		cur = c->name;
	}
	return cur;
}

static void on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
	struct dns_req *rq = arg;
	struct agent_session *s = rq->session;
	(void)timeouts;

	req_unlink(rq);
	if (s && status == ARES_SUCCESS && res) {
		struct buf items;
		uint32_t count = 0;

		buf_init(&items);
		for (const struct ares_addrinfo_node *n = res->nodes; n && count < DNS_ADDRS_MAX;
		     n = n->ai_next) {
			struct proto_dnsaddr a = {.ttl = n->ai_ttl > 0 ? (uint32_t)n->ai_ttl : 0};
			if (n->ai_family == AF_INET && n->ai_addr) {
				const struct sockaddr_in *sin = (const void *)n->ai_addr;
				a.addr.family = PROTO_AF_INET;
				memcpy(a.addr.bytes, &sin->sin_addr, 4);
			} else if (n->ai_family == AF_INET6 && n->ai_addr) {
				const struct sockaddr_in6 *sin6 = (const void *)n->ai_addr;
				a.addr.family = PROTO_AF_INET6;
				memcpy(a.addr.bytes, &sin6->sin6_addr, 16);
			} else {
				continue;
			}
			proto_dnsaddr_put(&items, &a);
			count++;
		}
		if (count)
			reply_addrs(s, rq->type, rq->id, canonical_name(res, ""), &items, count);
		else
			reply_error(s, rq->type, rq->id, ENOENT);
		buf_done(&items);
	} else if (s && status != ARES_EDESTRUCTION) {
		reply_error(s, rq->type, rq->id,
			    errno_from_ares(status == ARES_SUCCESS ? ARES_ENODATA : status));
	}
	ares_freeaddrinfo(res);
	free(rq);
}

static void resolve_start(struct agent_session *s, const struct proto_msg *m)
{
	const char *name = m->req.name;
	uint8_t family = m->req.kind;
	size_t len = strlen(name);

	if (len == 0 || len > DNS_NAME_MAX ||
	    (family != PROTO_AF_NONE && family != PROTO_AF_INET && family != PROTO_AF_INET6)) {
		reply_error(s, m->type, m->id, EINVAL);
		return;
	}
	/* Address literals are answered here: c-ares 1.18 would also search
	 * DNS for an IPv4 literal when the family is unspecified. */
	struct proto_dnsaddr lit = {.ttl = 0};
	if (inet_pton(AF_INET, name, lit.addr.bytes) == 1)
		lit.addr.family = PROTO_AF_INET;
	else if (inet_pton(AF_INET6, name, lit.addr.bytes) == 1)
		lit.addr.family = PROTO_AF_INET6;
	if (lit.addr.family) {
		struct buf items;

		if (family != PROTO_AF_NONE && family != lit.addr.family) {
			reply_error(s, m->type, m->id, ENOENT);
			return;
		}
		buf_init(&items);
		proto_dnsaddr_put(&items, &lit);
		reply_addrs(s, m->type, m->id, name, &items, 1);
		buf_done(&items);
		return;
	}
	if (dns.hosts) {
		char canon[DNS_NAME_MAX + 2];
		struct buf items;
		uint32_t count;

		buf_init(&items);
		count = agent_dns_hosts_lookup(dns.hosts, name, family, &items, canon,
					       sizeof(canon));
		if (count)
			reply_addrs(s, m->type, m->id, canon, &items, count);
		buf_done(&items);
		if (count)
			return;
	}
	if (!dns.ready || dns.conf.nservers == 0) {
		reply_error(s, m->type, m->id, EHOSTUNREACH);
		return;
	}
	struct ares_addrinfo_hints hints = {
		.ai_flags = ARES_AI_CANONNAME,
		.ai_family = family == PROTO_AF_INET	? AF_INET
			     : family == PROTO_AF_INET6 ? AF_INET6
							: AF_UNSPEC,
	};
	struct dns_req *rq = req_new(s, m);
	/* May call on_addrinfo before returning (a numeric name, a bad one). */
	ares_getaddrinfo(dns.res.channel, name, NULL, &hints, on_addrinfo, rq);
	timer_update();
}

/* --- DNS_QUERY ----------------------------------------------------------------------- */

static bool qid_in_use(uint16_t qid)
{
	for (const struct dns_req *rq = dns.pending; rq; rq = rq->next)
		if (rq->type == PROTO_DNS_QUERY && rq->qid == qid)
			return true;
	return false;
}

/* Our own message id for each forwarded query: c-ares matches answers by
 * id and question only, so two clients' queries with the same id and
 * question would otherwise take each other's answers, and a random id is
 * what makes an off-path answer hard to forge. */
static uint16_t qid_new(void)
{
	uint16_t qid = 0;

	for (int i = 0; i < 16; i++) {
		if (getrandom(&qid, sizeof(qid), GRND_NONBLOCK) != sizeof(qid))
			qid = (uint16_t)(now_usec() * 2654435761u >> 7);
		if (!qid_in_use(qid))
			break;
	}
	return qid;
}

static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_req *rq = arg;
	struct agent_session *s = rq->session;
	(void)timeouts;

	req_unlink(rq);
	if (s && status == ARES_SUCCESS && abuf && alen >= DNS_HEADER_SIZE) {
		uint8_t *copy = xmalloc((size_t)alen);
		struct proto_msg m = {.type = rq->type, .flags = PROTO_F_RESPONSE, .id = rq->id};

		memcpy(copy, abuf, (size_t)alen);
		copy[0] = (uint8_t)(rq->client_qid >> 8);
		copy[1] = (uint8_t)rq->client_qid;
		m.rep.data.data = copy;
		m.rep.data.len = (uint32_t)alen;
		agent_session_send(s, &m);
		free(copy);
	} else if (s && status != ARES_EDESTRUCTION) {
		reply_error(s, rq->type, rq->id,
			    errno_from_ares(status == ARES_SUCCESS ? ARES_EBADRESP : status));
	}
	free(rq);
}

static void query_start(struct agent_session *s, const struct proto_msg *m)
{
	const struct proto_bytes *q = &m->req.data;

	if (agent_dns_query_check(q->data, q->len) < 0) {
		reply_error(s, m->type, m->id, EINVAL);
		return;
	}
	if (!dns.ready || dns.conf.nservers == 0) {
		reply_error(s, m->type, m->id, EHOSTUNREACH);
		return;
	}
	uint8_t *copy = xmalloc(q->len);
	struct dns_req *rq = req_new(s, m);

	memcpy(copy, q->data, q->len);
	rq->client_qid = (uint16_t)(copy[0] << 8 | copy[1]);
	rq->qid = qid_new();
	copy[0] = (uint8_t)(rq->qid >> 8);
	copy[1] = (uint8_t)rq->qid;
	/* ares_send copies the message; it may call on_answer at once. */
	ares_send(dns.raw.channel, copy, (int)q->len, on_answer, rq);
	free(copy);
	timer_update();
}

void agent_dns_request(struct agent_session *s, const struct proto_msg *m)
{
	if (dns.npending >= DNS_PENDING_MAX) {
		reply_error(s, m->type, m->id, EAGAIN);
		return;
	}
	if (m->type == PROTO_DNS_RESOLVE)
		resolve_start(s, m);
	else if (m->type == PROTO_DNS_QUERY)
		query_start(s, m);
	else
		reply_error(s, m->type, m->id, ENOSYS);
}

/* --- set-up ---------------------------------------------------------------------------- */

static int chan_init(struct dns_chan *ch, int flags, struct err *reterr)
{
	const struct agent_dns_conf *c = &dns.conf;
	struct ares_addr_port_node nodes[AGENT_DNS_MAX_SERVERS];
	struct ares_options o = {
		.flags = flags,
		.timeout = (int)(c->timeout_s * 1000),
		.tries = (int)c->attempts,
		.ndots = (int)c->ndots,
		.domains = (char **)c->search,
		.ndomains = (int)c->nsearch,
		.lookups = (char *)"b",
		.sock_state_cb = on_sock_state,
		.sock_state_cb_data = ch,
		.servers = NULL,
		.nservers = 0,
		.sortlist = NULL,
		.nsort = 0,
	};
	/* Every setting c-ares would read from /etc/resolv.conf is given, so
	 * it reads nothing (ARES_CONFIG_CHECK in ares_init.c). */
	int mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_NDOTS |
		   ARES_OPT_DOMAINS | ARES_OPT_LOOKUPS | ARES_OPT_SOCK_STATE_CB | ARES_OPT_SERVERS |
		   ARES_OPT_SORTLIST | (c->rotate ? ARES_OPT_ROTATE : ARES_OPT_NOROTATE);
	int st;

	st = ares_init_options(&ch->channel, &o, mask);
	if (st != ARES_SUCCESS)
		return err_set(reterr, -errno_from_ares(st), "c-ares: %s", ares_strerror(st));
	ch->ok = true;
	ares_set_socket_callback(ch->channel, on_sock_create, NULL);
	for (unsigned i = 0; i < c->nservers; i++) {
		nodes[i] = (struct ares_addr_port_node){
			.next = i + 1 < c->nservers ? &nodes[i + 1] : NULL,
			.family = c->servers[i].family == PROTO_AF_INET ? AF_INET : AF_INET6,
		};
		memcpy(&nodes[i].addr, c->servers[i].bytes,
		       c->servers[i].family == PROTO_AF_INET ? 4 : 16);
	}
	st = ares_set_servers_ports(ch->channel, c->nservers ? nodes : NULL);
	if (st != ARES_SUCCESS)
		return err_set(reterr, -errno_from_ares(st), "c-ares servers: %s",
			       ares_strerror(st));
	return 0;
}

static void describe(char *out, size_t outsz)
{
	struct buf b;
	char a[INET6_ADDRSTRLEN];

	buf_init(&b);
	buf_printf(&b, "nameservers");
	for (unsigned i = 0; i < dns.conf.nservers; i++)
		buf_printf(
			&b, " %s",
			inet_ntop(dns.conf.servers[i].family == PROTO_AF_INET ? AF_INET : AF_INET6,
				  dns.conf.servers[i].bytes, a, sizeof(a)));
	if (!dns.conf.nservers)
		buf_printf(&b, " (none)");
	buf_printf(&b, ", search");
	for (unsigned i = 0; i < dns.conf.nsearch; i++)
		buf_printf(&b, " %s", dns.conf.search[i]);
	buf_printf(&b, ", ndots %u, timeout %u s, attempts %u", dns.conf.ndots, dns.conf.timeout_s,
		   dns.conf.attempts);
	snprintf(out, outsz, "%.*s", (int)buf_len(&b), (const char *)buf_data(&b));
	buf_done(&b);
}

int agent_dns_init(struct loop *l, const struct agent_target *t, struct err *reterr)
{
	_cleanup_free_ char *conf = NULL;
	char what[512];
	int r, flags = ARES_FLAG_NOALIASES;

	dns.loop = l;
	map_init(&dns.socks);
	r = agent_target_read_file(t, "/etc/resolv.conf", DNS_FILE_MAX, &conf, NULL);
	if (r < 0)
		log_warn("the target has no readable /etc/resolv.conf (%s): names not in its "
			 "/etc/hosts will not resolve",
			 strerror(-r));
	agent_dns_conf_parse(conf ? conf : "", &dns.conf);
	/* Without a nameserver line glibc asks the local host, as c-ares
	 * would; only a missing file means no DNS at all. */
	if (conf && dns.conf.nservers == 0) {
		dns.conf.servers[0].family = PROTO_AF_INET;
		memcpy(dns.conf.servers[0].bytes, (uint8_t[]){127, 0, 0, 1}, 4);
		dns.conf.nservers = 1;
	}
	r = agent_target_read_file(t, "/etc/hosts", DNS_FILE_MAX, &dns.hosts, NULL);
	if (r < 0)
		log_debug("the target has no readable /etc/hosts: %s", strerror(-r));
	r = loop_add_timer(l, USEC_INFINITY, on_timer, NULL, &dns.timer);
	if (r < 0)
		return err_set_errno(reterr, r, "DNS timer");
	r = ares_library_init(ARES_LIB_INIT_ALL);
	if (r != ARES_SUCCESS)
		return err_set(reterr, -EIO, "c-ares: %s", ares_strerror(r));
	if (dns.conf.edns0)
		flags |= ARES_FLAG_EDNS;
	if (dns.conf.use_vc)
		flags |= ARES_FLAG_USEVC;
	r = chan_init(&dns.res, flags, reterr);
	if (r < 0)
		return r;
	flags = ARES_FLAG_NOALIASES | ARES_FLAG_NOCHECKRESP |
		(dns.conf.use_vc ? ARES_FLAG_USEVC : 0);
	r = chan_init(&dns.raw, flags, reterr);
	if (r < 0)
		return r;
	dns.ready = true;
	describe(what, sizeof(what));
	log_debug("resolver: %s", what);
	return 0;
}

void agent_dns_done(void)
{
	/* Nobody waits any more: ares_destroy's ARES_EDESTRUCTION callbacks
	 * then only free the requests. */
	for (struct dns_req *rq = dns.pending; rq; rq = rq->next)
		rq->session = NULL;
	if (dns.res.ok)
		ares_destroy(dns.res.channel);
	if (dns.raw.ok)
		ares_destroy(dns.raw.channel);
	if (dns.res.ok || dns.raw.ok)
		ares_library_cleanup();
	/* Sockets c-ares did not report closed (none expected). */
	uint64_t fd;
	void *v;
	for (size_t pos = 0; map_next(&dns.socks, &pos, &fd, &v);) {
		loop_source_free(((struct dns_sock *)v)->src);
		free(v);
	}
	map_done(&dns.socks);
	loop_source_free(dns.timer);
	agent_dns_conf_done(&dns.conf);
	free(dns.hosts);
	memset(&dns, 0, sizeof(dns));
}
