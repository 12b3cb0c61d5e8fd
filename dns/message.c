/* DNS messages on the wire: the parser for untrusted bytes (answers from
 * the pod or the host's resolvers, queries from the app), the builders for
 * queries and for the server's responses, and the helpers on names, TTLs
 * and text around them.
 *
 * Parsing runs twice over the same code: a first pass validates everything
 * and measures the arena (records, questions, the message copy, the name
 * strings), a second fills one exactly sized allocation. So nothing is
 * allocated for a malformed message, and the size allocated is bounded by
 * what the message really holds, not by what its counts claim.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/macro.h"
#include "dns/dns_int.h"

/* --- names ------------------------------------------------------------------------------- */

int dns_wire_name_read(const uint8_t *p, size_t n, size_t *off, size_t end,
		       uint8_t wire[DNS_NAME_MAX], size_t *wlen)
{
	size_t pos = *off, limit = *off, bound = MIN(end, n), next = 0, len = 0;
	unsigned jumps = 0;

	for (;;) {
		if (pos >= bound)
			return -EBADMSG;
		uint8_t l = p[pos];
		if ((l & 0xc0) == 0xc0) {
			if (pos + 1 >= bound)
				return -EBADMSG;
			size_t target = (size_t)(l & 0x3f) << 8 | p[pos + 1];
			/* RFC 1035 §4.1.4 allows "a prior occurrence"; requiring
			 * strictly decreasing targets also rules out every loop. */
			if (target < DNS_HEADER_SIZE || target >= limit ||
			    ++jumps > DNS_NAME_MAX / 2)
				return -EBADMSG;
			if (!next)
				next = pos + 2;
			limit = target;
			pos = target;
			bound = n;
			continue;
		}
		if (l & 0xc0) /* 0x40 extended labels (RFC 6891 §5) and 0x80 are gone */
			return -EBADMSG;
		if (len + 1 + l > DNS_NAME_MAX || pos + 1 + (size_t)l > bound)
			return -EBADMSG;
		wire[len++] = l;
		memcpy(wire + len, p + pos + 1, l);
		len += l;
		pos += 1 + (size_t)l;
		if (l == 0)
			break;
	}
	*off = next ? next : pos;
	*wlen = len;
	return 0;
}

size_t dns_wire_name_text(const uint8_t *wire, char out[DNS_NAME_STRLEN])
{
	size_t o = 0;

	if (wire[0] == 0) {
		memcpy(out, ".", 2);
		return 1;
	}
	for (const uint8_t *l = wire; *l; l += 1 + *l) {
		if (l != wire)
			out[o++] = '.';
		for (unsigned i = 1; i <= *l; i++) {
			uint8_t c = l[i];
			if (c == '.' || c == '\\') {
				out[o++] = '\\';
				out[o++] = (char)c;
			} else if (c < 0x21 || c > 0x7e) {
				o += (size_t)snprintf(out + o, 5, "\\%03u", c);
			} else {
				out[o++] = (char)c;
			}
		}
	}
	out[o] = '\0';
	return o;
}

int dns_name_to_wire(const char *name, uint8_t out[DNS_NAME_MAX])
{
	const char *s = name;
	size_t len = 0;

	if (!name || !*name)
		return -EINVAL;
	if (!strcmp(name, ".")) {
		out[0] = 0;
		return 1;
	}
	while (*s) {
		size_t lenpos = len++, ll = 0;

		/* room for this length octet, at least one byte and the root */
		if (len + 2 > DNS_NAME_MAX)
			return -EINVAL;
		while (*s && *s != '.') {
			unsigned c = (unsigned char)*s++;
			if (c == '\\') {
				if (isdigit((unsigned char)s[0])) {
					if (!isdigit((unsigned char)s[1]) ||
					    !isdigit((unsigned char)s[2]))
						return -EINVAL;
					c = (unsigned)(s[0] - '0') * 100 +
					    (unsigned)(s[1] - '0') * 10 + (unsigned)(s[2] - '0');
					if (c > 255)
						return -EINVAL;
					s += 3;
				} else if (*s) {
					c = (unsigned char)*s++;
				} else {
					return -EINVAL;
				}
			}
			if (ll == DNS_LABEL_MAX || len + 2 > DNS_NAME_MAX)
				return -EINVAL;
			out[len++] = (uint8_t)c;
			ll++;
		}
		if (ll == 0)
			return -EINVAL;
		out[lenpos] = (uint8_t)ll;
		if (*s == '.')
			s++;
	}
	out[len++] = 0;
	return (int)len;
}

int dns_name_validate(const char *name)
{
	uint8_t wire[DNS_NAME_MAX];
	int r = dns_name_to_wire(name, wire);

	return r < 0 ? r : 0;
}

static void wire_lower(uint8_t *wire)
{
	for (uint8_t *l = wire; *l; l += 1 + *l)
		for (unsigned i = 1; i <= *l; i++)
			if (l[i] >= 'A' && l[i] <= 'Z')
				l[i] = (uint8_t)(l[i] - 'A' + 'a');
}

int dns_name_normalize(const char *name, char *out, size_t size)
{
	uint8_t wire[DNS_NAME_MAX];
	char text[DNS_NAME_STRLEN];
	int r = dns_name_to_wire(name, wire);

	if (r < 0)
		return r;
	wire_lower(wire);
	size_t len = dns_wire_name_text(wire, text);
	if (len + 1 > size)
		return -ENOSPC;
	memcpy(out, text, len + 1);
	return (int)len;
}

/* Both valid wire names; case-insensitive as RFC 4343 says (ASCII only). */
static bool wire_equal(const uint8_t *a, const uint8_t *b)
{
	for (;;) {
		if (*a != *b)
			return false;
		if (*a == 0)
			return true;
		for (unsigned i = 1; i <= *a; i++) {
			uint8_t x = a[i], y = b[i];
			if (x >= 'A' && x <= 'Z')
				x = (uint8_t)(x - 'A' + 'a');
			if (y >= 'A' && y <= 'Z')
				y = (uint8_t)(y - 'A' + 'a');
			if (x != y)
				return false;
		}
		a += 1 + *a;
		b += 1 + *b;
	}
}

bool dns_name_equal(const char *a, const char *b)
{
	uint8_t wa[DNS_NAME_MAX], wb[DNS_NAME_MAX];

	return dns_name_to_wire(a, wa) > 0 && dns_name_to_wire(b, wb) > 0 && wire_equal(wa, wb);
}

/* --- parsing ----------------------------------------------------------------------------- */

struct parser {
	const uint8_t *p;
	size_t n;
	size_t off;
	char *strings; /* NULL in the measuring pass */
	size_t slen;
	bool opt_seen;
};

/* Reads a name at *off (in-place part before end) into the string arena. */
static int read_name(struct parser *ps, size_t *off, size_t end, const char **ret)
{
	uint8_t wire[DNS_NAME_MAX];
	char text[DNS_NAME_STRLEN];
	size_t wlen;
	int r = dns_wire_name_read(ps->p, ps->n, off, end, wire, &wlen);

	if (r < 0)
		return r;
	size_t len = dns_wire_name_text(wire, text);
	if (ps->strings) {
		memcpy(ps->strings + ps->slen, text, len + 1);
		*ret = ps->strings + ps->slen;
	} else {
		*ret = NULL;
	}
	ps->slen += len + 1;
	return 0;
}

static int parse_question(struct parser *ps, struct dns_question *q)
{
	int r = read_name(ps, &ps->off, ps->n, &q->name);

	if (r < 0)
		return r;
	if (ps->off + 4 > ps->n)
		return -EBADMSG;
	q->type = dns_be16_load(ps->p + ps->off);
	q->class = dns_be16_load(ps->p + ps->off + 2);
	ps->off += 4;
	return 0;
}

/* The kind a (type, class) is decoded as. */
static enum dns_rdata_kind kind_of(uint16_t type, uint16_t class)
{
	if (type == DNS_TYPE_OPT)
		return DNS_RDATA_OPT;
	if (class != DNS_CLASS_IN)
		return DNS_RDATA_RAW;
	switch (type) {
	case DNS_TYPE_A:
		return DNS_RDATA_A;
	case DNS_TYPE_AAAA:
		return DNS_RDATA_AAAA;
	case DNS_TYPE_CNAME:
	case DNS_TYPE_NS:
	case DNS_TYPE_PTR:
		return DNS_RDATA_NAME;
	case DNS_TYPE_MX:
		return DNS_RDATA_MX;
	case DNS_TYPE_SRV:
		return DNS_RDATA_SRV;
	case DNS_TYPE_SOA:
		return DNS_RDATA_SOA;
	case DNS_TYPE_TXT:
		return DNS_RDATA_TXT;
	default:
		return DNS_RDATA_RAW;
	}
}

static int parse_rdata(struct parser *ps, struct dns_rr *rr, size_t off, size_t end)
{
	const uint8_t *p = ps->p;
	size_t rdlen = end - off;
	int r = -EBADMSG;

	switch (rr->kind) {
	case DNS_RDATA_RAW:
		return 0;
	case DNS_RDATA_A:
		if (rdlen != 4)
			return -EBADMSG;
		memcpy(rr->u.a, p + off, 4);
		return 0;
	case DNS_RDATA_AAAA:
		if (rdlen != 16)
			return -EBADMSG;
		memcpy(rr->u.aaaa, p + off, 16);
		return 0;
	case DNS_RDATA_NAME:
		r = read_name(ps, &off, end, &rr->u.name);
		break;
	case DNS_RDATA_MX:
		if (rdlen < 3)
			return -EBADMSG;
		rr->u.mx.preference = dns_be16_load(p + off);
		off += 2;
		r = read_name(ps, &off, end, &rr->u.mx.exchange);
		break;
	case DNS_RDATA_SRV:
		if (rdlen < 7)
			return -EBADMSG;
		rr->u.srv.priority = dns_be16_load(p + off);
		rr->u.srv.weight = dns_be16_load(p + off + 2);
		rr->u.srv.port = dns_be16_load(p + off + 4);
		off += 6;
		/* RFC 2782 forbids compressing the target; servers do it anyway. */
		r = read_name(ps, &off, end, &rr->u.srv.target);
		break;
	case DNS_RDATA_SOA:
		r = read_name(ps, &off, end, &rr->u.soa.mname);
		if (r == 0)
			r = read_name(ps, &off, end, &rr->u.soa.rname);
		if (r < 0)
			return r;
		if (end - off != 20)
			return -EBADMSG;
		rr->u.soa.serial = dns_be32_load(p + off);
		rr->u.soa.refresh = dns_be32_load(p + off + 4);
		rr->u.soa.retry = dns_be32_load(p + off + 8);
		rr->u.soa.expire = dns_be32_load(p + off + 12);
		rr->u.soa.minimum = dns_be32_load(p + off + 16);
		return 0;
	case DNS_RDATA_TXT:
		/* one or more <length><bytes> strings, exactly filling rdata */
		if (rdlen == 0)
			return -EBADMSG;
		for (size_t o = off; o < end; o += 1 + (size_t)p[o])
			if (o + 1 + (size_t)p[o] > end)
				return -EBADMSG;
		rr->u.txt.data = p + off;
		rr->u.txt.len = (uint16_t)rdlen;
		return 0;
	case DNS_RDATA_OPT:
		for (size_t o = off; o < end;) {
			if (o + 4 > end || o + 4 + (size_t)dns_be16_load(p + o + 2) > end)
				return -EBADMSG;
			o += 4 + (size_t)dns_be16_load(p + o + 2);
		}
		rr->u.opt.udp_size = rr->class;
		rr->u.opt.ext_rcode = (uint8_t)(rr->ttl >> 24);
		rr->u.opt.version = (uint8_t)(rr->ttl >> 16);
		rr->u.opt.do_bit = rr->ttl & 0x8000;
		rr->u.opt.options = p + off;
		rr->u.opt.options_len = (uint16_t)rdlen;
		return 0;
	}
	if (r < 0)
		return r;
	/* a name must end exactly where the rdata does */
	return off == end ? 0 : -EBADMSG;
}

static int parse_rr(struct parser *ps, struct dns_rr *rr, int section)
{
	const uint8_t *p = ps->p;
	size_t name_at = ps->off;
	int r = read_name(ps, &ps->off, ps->n, &rr->name);

	if (r < 0)
		return r;
	if (ps->off + 10 > ps->n)
		return -EBADMSG;
	rr->type = dns_be16_load(p + ps->off);
	rr->class = dns_be16_load(p + ps->off + 2);
	rr->ttl = dns_be32_load(p + ps->off + 4);
	rr->rdlen = dns_be16_load(p + ps->off + 8);
	ps->off += 10;
	if (ps->off + rr->rdlen > ps->n)
		return -EBADMSG;
	rr->rdata = p + ps->off;
	rr->kind = kind_of(rr->type, rr->class);
	if (rr->kind == DNS_RDATA_OPT) {
		/* RFC 6891 §6.1.1: one OPT, in the additional section, owned by
		 * the root (a single zero byte, never a pointer). */
		if (ps->opt_seen || section != DNS_SECTION_ADDITIONAL || p[name_at] != 0)
			return -EBADMSG;
		ps->opt_seen = true;
	}
	r = parse_rdata(ps, rr, ps->off, ps->off + rr->rdlen);
	if (r < 0)
		return r;
	ps->off += rr->rdlen;
	return 0;
}

/* One pass over the message. m's arrays are NULL in the measuring pass;
 * its counts then come out as what the message holds. */
static int parse_pass(struct parser *ps, struct dns_msg *m, const uint16_t want[4])
{
	struct dns_question qtmp;
	struct dns_rr rtmp;
	uint16_t got[4] = {0};
	size_t k = 0;
	int r;

	ps->off = DNS_HEADER_SIZE;
	ps->slen = 0;
	ps->opt_seen = false;
	for (unsigned i = 0; i < want[0]; i++) {
		if (ps->off == ps->n && m->hdr.tc)
			goto partial;
		r = parse_question(ps, m->qd ? &m->qd[i] : &qtmp);
		if (r < 0)
			return r;
		got[0]++;
	}
	for (int s = 0; s < 3; s++) {
		for (unsigned i = 0; i < want[s + 1]; i++) {
			if (ps->off == ps->n && m->hdr.tc)
				goto partial;
			struct dns_rr *rr = m->rr ? &m->rr[k] : &rtmp;
			*rr = (struct dns_rr){0};
			r = parse_rr(ps, rr, s);
			if (r < 0)
				return r;
			if (rr->kind == DNS_RDATA_OPT) {
				m->edns = true;
				m->edns_udp_size = MAX(rr->u.opt.udp_size, DNS_UDP_MIN);
				m->edns_version = rr->u.opt.version;
				m->edns_do = rr->u.opt.do_bit;
				m->hdr.rcode = (uint16_t)(m->hdr.rcode | rr->u.opt.ext_rcode << 4);
			}
			got[s + 1]++;
			k++;
		}
	}
	if (ps->off != ps->n)
		return -EBADMSG;
	goto done;
partial:
	m->partial = true;
done:
	m->qdcount = got[0];
	m->ancount = got[1];
	m->nscount = got[2];
	m->arcount = got[3];
	m->rrcount = k;
	return 0;
}

int dns_msg_parse(const uint8_t *p, size_t n, struct dns_msg *ret)
{
	struct parser ps = {.p = p, .n = n};
	struct dns_msg m = {0};
	uint16_t want[4], got[4];
	int r;

	*ret = (struct dns_msg){0};
	if (n < DNS_HEADER_SIZE || n > DNS_MSG_MAX)
		return -EBADMSG;
	m.hdr.id = dns_be16_load(p);
	m.hdr.qr = p[2] & 0x80;
	m.hdr.opcode = (p[2] >> 3) & 0xf;
	m.hdr.aa = p[2] & 0x04;
	m.hdr.tc = p[2] & 0x02;
	m.hdr.rd = p[2] & 0x01;
	m.hdr.ra = p[3] & 0x80;
	m.hdr.ad = p[3] & 0x20;
	m.hdr.cd = p[3] & 0x10;
	m.hdr.rcode = p[3] & 0xf;
	for (int i = 0; i < 4; i++)
		want[i] = dns_be16_load(p + 4 + 2 * i);

	struct dns_msg first = m;
	r = parse_pass(&ps, &first, want);
	if (r < 0)
		return r;

	/* Second pass into one arena: [records][questions][message][names].
	 * Sizes are bounded by n (every record and question takes bytes). */
	got[0] = first.qdcount;
	got[1] = first.ancount;
	got[2] = first.nscount;
	got[3] = first.arcount;
	size_t rrsz = first.rrcount * sizeof(struct dns_rr);
	size_t qdsz = (size_t)got[0] * sizeof(struct dns_question);
	size_t slen = ps.slen;
	uint8_t *arena = xmalloc(rrsz + qdsz + n + slen + 1);
	m.rr = (struct dns_rr *)arena;
	m.qd = (struct dns_question *)(arena + rrsz);
	uint8_t *copy = arena + rrsz + qdsz;
	memcpy(copy, p, n);
	ps = (struct parser){.p = copy, .n = n, .strings = (char *)copy + n};
	r = parse_pass(&ps, &m, got);
	/* Same bytes, same code: the second pass cannot disagree. */
	if (r < 0 || ps.slen != slen || m.rrcount != first.rrcount)
		abort();
	m.arena = arena;
	m.partial = first.partial;
	if (!m.qdcount)
		m.qd = NULL;
	if (!m.rrcount)
		m.rr = NULL;
	m.an = m.rr;
	m.ns = m.rr ? m.rr + m.ancount : NULL;
	m.ar = m.rr ? m.rr + m.ancount + m.nscount : NULL;
	*ret = m;
	return 0;
}

void dns_msg_done(struct dns_msg *m)
{
	if (!m)
		return;
	free(m->arena);
	*m = (struct dns_msg){0};
}

int dns_txt_next(const struct dns_rr *rr, size_t *off, const uint8_t **s, size_t *len)
{
	if (rr->kind != DNS_RDATA_TXT || *off >= rr->u.txt.len)
		return 0;
	size_t l = rr->u.txt.data[*off];
	if (*off + 1 + l > rr->u.txt.len)
		return 0;
	*s = rr->u.txt.data + *off + 1;
	*len = l;
	*off += 1 + l;
	return 1;
}

size_t dns_msg_udp_limit(const struct dns_msg *query, size_t max)
{
	size_t size = query->edns ? query->edns_udp_size : DNS_UDP_MIN;

	if (max < DNS_UDP_MIN)
		max = DNS_UDP_MIN;
	return MAX((size_t)DNS_UDP_MIN, MIN(size, max));
}

int dns_msg_min_ttl(const struct dns_msg *m, uint32_t *ttl)
{
	uint32_t min = UINT32_MAX;
	bool found = false;

	if (m->hdr.tc || m->partial)
		return -ENODATA;
	if (m->hdr.rcode == DNS_RCODE_NOERROR && m->ancount > 0) {
		for (unsigned i = 0; i < m->ancount; i++) {
			min = MIN(min, dns_ttl(m->an[i].ttl));
			found = true;
		}
	} else if (m->hdr.rcode == DNS_RCODE_NOERROR || m->hdr.rcode == DNS_RCODE_NXDOMAIN) {
		for (unsigned i = 0; i < m->nscount; i++) {
			const struct dns_rr *rr = &m->ns[i];
			if (rr->kind != DNS_RDATA_SOA)
				continue;
			min = MIN(min, MIN(dns_ttl(rr->ttl), dns_ttl(rr->u.soa.minimum)));
			found = true;
		}
	}
	if (!found)
		return -ENODATA;
	*ttl = min;
	return 0;
}

/* --- building ---------------------------------------------------------------------------- */

static uint8_t *msg_data(const struct dns_builder *b)
{
	return buf_data(b->out) + b->start;
}

static size_t msg_len(const struct dns_builder *b)
{
	return buf_len(b->out) - b->start;
}

static void put16(struct dns_builder *b, uint16_t v)
{
	uint8_t x[2];

	dns_be16_store(x, v);
	buf_append(b->out, x, 2);
}

static void put32(struct dns_builder *b, uint32_t v)
{
	uint8_t x[4];

	dns_be32_store(x, v);
	buf_append(b->out, x, 4);
}

static void write_header(struct dns_builder *b)
{
	uint8_t *h = msg_data(b);
	const struct dns_header *hd = &b->hdr;

	dns_be16_store(h, hd->id);
	h[2] = (uint8_t)(hd->qr << 7 | (hd->opcode & 0xf) << 3 | hd->aa << 2 | hd->tc << 1 |
			 hd->rd);
	h[3] = (uint8_t)(hd->ra << 7 | hd->ad << 5 | hd->cd << 4 | (hd->rcode & 0xf));
	for (int i = 0; i < 4; i++)
		dns_be16_store(h + 4 + 2 * i, b->count[i]);
}

void dns_builder_init(struct dns_builder *b, struct buf *out, const struct dns_header *hdr)
{
	static const uint8_t zero[DNS_HEADER_SIZE];

	*b = (struct dns_builder){.out = out, .start = buf_len(out), .hdr = *hdr, .section = -1};
	buf_append(out, zero, sizeof(zero));
}

/* Writes a wire name, as a pointer to an earlier copy of its longest
 * possible suffix when compress is set; its literal labels become pointer
 * targets for later names (offsets below 0x4000 only, RFC 1035 §4.1.4). */
static void put_wire_name(struct dns_builder *b, const uint8_t *wire, bool compress)
{
	size_t lab[DNS_NAME_MAX / 2], nl = 0, match = SIZE_MAX, cut;
	uint16_t target = 0;

	for (size_t o = 0; wire[o]; o += 1 + wire[o])
		lab[nl++] = o;
	for (size_t i = 0; compress && i < nl && match == SIZE_MAX; i++) {
		for (unsigned c = 0; c < b->ncomp; c++) {
			uint8_t other[DNS_NAME_MAX];
			size_t off = b->comp[c], wlen;
			if (dns_wire_name_read(msg_data(b), msg_len(b), &off, msg_len(b), other,
					       &wlen) == 0 &&
			    wire_equal(wire + lab[i], other)) {
				match = i;
				target = b->comp[c];
				break;
			}
		}
	}
	cut = match == SIZE_MAX ? nl : match;
	for (size_t i = 0; i < cut; i++) {
		size_t at = msg_len(b);
		if (at < 0x4000 && b->ncomp < ARRAY_SIZE(b->comp))
			b->comp[b->ncomp++] = (uint16_t)at;
		buf_append(b->out, wire + lab[i], 1 + (size_t)wire[lab[i]]);
	}
	if (match == SIZE_MAX)
		buf_append(b->out, "", 1);
	else
		put16(b, (uint16_t)(0xc000 | target));
}

static int put_name(struct dns_builder *b, const char *name, bool compress)
{
	uint8_t wire[DNS_NAME_MAX];
	int r = dns_name_to_wire(name, wire);

	if (r < 0)
		return r;
	put_wire_name(b, wire, compress);
	return 0;
}

int dns_builder_add_question(struct dns_builder *b, const char *name, uint16_t type, uint16_t class)
{
	size_t mark = buf_len(b->out);
	uint16_t ncomp = b->ncomp;
	int r;

	if (b->section != -1 || b->count[0] == UINT16_MAX)
		return -EINVAL;
	r = put_name(b, name, true);
	if (r < 0)
		return r;
	put16(b, type);
	put16(b, class);
	if (msg_len(b) > DNS_MSG_MAX) {
		buf_truncate(b->out, mark);
		b->ncomp = ncomp;
		return -EMSGSIZE;
	}
	b->count[0]++;
	return 0;
}

static bool txt_valid(const uint8_t *p, size_t n)
{
	if (n == 0 || !p)
		return false;
	for (size_t o = 0; o < n; o += 1 + (size_t)p[o])
		if (o + 1 + (size_t)p[o] > n)
			return false;
	return true;
}

static int put_rdata(struct dns_builder *b, const struct dns_rr *rr)
{
	int r;

	switch (rr->kind) {
	case DNS_RDATA_RAW:
		if (rr->rdlen && !rr->rdata)
			return -EINVAL;
		buf_append(b->out, rr->rdata, rr->rdlen);
		return 0;
	case DNS_RDATA_A:
		buf_append(b->out, rr->u.a, 4);
		return 0;
	case DNS_RDATA_AAAA:
		buf_append(b->out, rr->u.aaaa, 16);
		return 0;
	case DNS_RDATA_NAME:
		return put_name(b, rr->u.name, true);
	case DNS_RDATA_MX:
		put16(b, rr->u.mx.preference);
		return put_name(b, rr->u.mx.exchange, true);
	case DNS_RDATA_SRV:
		put16(b, rr->u.srv.priority);
		put16(b, rr->u.srv.weight);
		put16(b, rr->u.srv.port);
		return put_name(b, rr->u.srv.target, false);
	case DNS_RDATA_SOA:
		r = put_name(b, rr->u.soa.mname, true);
		if (r == 0)
			r = put_name(b, rr->u.soa.rname, true);
		if (r < 0)
			return r;
		put32(b, rr->u.soa.serial);
		put32(b, rr->u.soa.refresh);
		put32(b, rr->u.soa.retry);
		put32(b, rr->u.soa.expire);
		put32(b, rr->u.soa.minimum);
		return 0;
	case DNS_RDATA_TXT:
		if (!txt_valid(rr->u.txt.data, rr->u.txt.len))
			return -EINVAL;
		buf_append(b->out, rr->u.txt.data, rr->u.txt.len);
		return 0;
	case DNS_RDATA_OPT:
		break;
	}
	return -EINVAL;
}

int dns_builder_add(struct dns_builder *b, enum dns_section s, const struct dns_rr *rr)
{
	size_t mark = buf_len(b->out), rstart;
	uint16_t ncomp = b->ncomp;
	/* class 0 (a zeroed struct) means IN for decoded kinds; raw records
	 * keep theirs, whatever it is */
	uint16_t class = rr->class || rr->kind == DNS_RDATA_RAW ? rr->class : DNS_CLASS_IN;
	int r;

	if ((int)s < b->section || s > DNS_SECTION_ADDITIONAL || rr->kind == DNS_RDATA_OPT ||
	    (rr->kind != DNS_RDATA_RAW && kind_of(rr->type, class) != rr->kind))
		return -EINVAL;
	if (b->count[s + 1] == UINT16_MAX)
		return -EMSGSIZE;
	r = put_name(b, rr->name, true);
	if (r < 0)
		goto undo;
	put16(b, rr->type);
	put16(b, class);
	put32(b, rr->ttl);
	put16(b, 0);
	rstart = buf_len(b->out);
	r = put_rdata(b, rr);
	if (r < 0)
		goto undo;
	if (msg_len(b) > DNS_MSG_MAX) {
		r = -EMSGSIZE;
		goto undo;
	}
	dns_be16_store(buf_data(b->out) + rstart - 2, (uint16_t)(buf_len(b->out) - rstart));
	b->section = (int)s;
	b->count[s + 1]++;
	return 0;
undo:
	buf_truncate(b->out, mark);
	b->ncomp = ncomp;
	return r;
}

void dns_builder_set_edns(struct dns_builder *b, uint16_t udp_size, bool do_bit,
			  const uint8_t *options, uint16_t options_len)
{
	b->edns = udp_size > 0;
	b->edns_udp_size = udp_size;
	b->edns_do = do_bit;
	b->edns_options = options;
	b->edns_options_len = options ? options_len : 0;
}

/* The end of the record at off in our own (well-formed) message. */
static size_t skip_rr(const uint8_t *p, size_t n, size_t off, bool question)
{
	while (off < n && p[off] != 0 && (p[off] & 0xc0) != 0xc0)
		off += 1 + (size_t)p[off];
	off += off < n && p[off] == 0 ? 1 : 2;
	if (question)
		return off + 4;
	if (off + 10 > n)
		return SIZE_MAX;
	return off + 10 + dns_be16_load(p + off + 8);
}

int dns_builder_finish(struct dns_builder *b, size_t limit)
{
	size_t opt_len = b->edns ? 11 + (size_t)b->edns_options_len : 0;
	size_t max = limit ? MIN(limit, (size_t)DNS_MSG_MAX) : DNS_MSG_MAX;
	size_t len = msg_len(b);

	if (b->hdr.rcode > 0xf && !b->edns)
		return -EINVAL;
	if (len + opt_len > max) {
		const uint8_t *p = msg_data(b);
		size_t off = DNS_HEADER_SIZE, keep;
		uint16_t kept[4] = {b->count[0]};

		for (unsigned i = 0; i < b->count[0]; i++)
			off = skip_rr(p, len, off, true);
		if (off + opt_len > max)
			return -EMSGSIZE;
		keep = off;
		for (int s = 1; s < 4; s++) {
			for (unsigned i = 0; i < b->count[s]; i++) {
				off = skip_rr(p, len, off, false);
				if (off > len || off + opt_len > max)
					goto cut;
				keep = off;
				kept[s]++;
			}
		}
	cut:
		/* RFC 2181 §9: TC says the answer is incomplete; missing extra
		 * (additional) data does not make it so. */
		if (kept[1] < b->count[1] || kept[2] < b->count[2])
			b->hdr.tc = true;
		memcpy(b->count, kept, sizeof(kept));
		buf_truncate(b->out, b->start + keep);
	}
	if (b->edns) {
		/* root owner, type OPT, class = UDP size, ttl = extended rcode,
		 * version 0 and DO (RFC 6891 §6.1.3) */
		buf_append(b->out, "", 1);
		put16(b, DNS_TYPE_OPT);
		put16(b, b->edns_udp_size);
		put32(b, (uint32_t)(b->hdr.rcode >> 4) << 24 | (b->edns_do ? 0x8000u : 0));
		put16(b, b->edns_options_len);
		buf_append(b->out, b->edns_options, b->edns_options_len);
		b->count[3]++;
	}
	write_header(b);
	return (int)msg_len(b);
}

int dns_query_build(uint16_t id, const char *name, uint16_t qtype, bool rd, uint16_t edns_udp_size,
		    struct buf *out)
{
	struct dns_header hdr = {.id = id, .rd = rd, .opcode = DNS_OPCODE_QUERY};
	struct dns_builder b;
	int r;

	if (dns_name_validate(name) < 0)
		return -EINVAL;
	dns_builder_init(&b, out, &hdr);
	r = dns_builder_add_question(&b, name, qtype, DNS_CLASS_IN);
	if (r == 0) {
		dns_builder_set_edns(&b, edns_udp_size, false, NULL, 0);
		r = dns_builder_finish(&b, 0);
	}
	if (r < 0)
		buf_truncate(out, b.start);
	return r;
}

int dns_response_start(struct dns_builder *b, struct buf *out, const struct dns_msg *query,
		       uint16_t rcode)
{
	struct dns_header hdr = {
		.id = query->hdr.id,
		.opcode = query->hdr.opcode,
		.rcode = rcode,
		.qr = true,
		.rd = query->hdr.rd,
		.ra = true, /* the server recurses (by forwarding) for every client */
		.cd = query->hdr.cd,
	};

	dns_builder_init(b, out, &hdr);
	for (unsigned i = 0; i < query->qdcount; i++) {
		const struct dns_question *q = &query->qd[i];
		int r = dns_builder_add_question(b, q->name, q->type, q->class);
		if (r < 0) {
			buf_truncate(out, b->start);
			return r;
		}
	}
	/* RFC 6891 §7: answer EDNS with EDNS; RFC 3225 §3: copy DO. */
	if (query->edns)
		dns_builder_set_edns(b, DNS_EDNS_UDP_SIZE, query->edns_do, NULL, 0);
	return 0;
}

int dns_response_error(const struct dns_msg *query, uint16_t rcode, struct buf *out)
{
	struct dns_builder b;
	int r = dns_response_start(&b, out, query, rcode);

	if (r < 0)
		return r;
	r = dns_builder_finish(&b, 0);
	if (r < 0)
		buf_truncate(out, b.start);
	return r;
}

/* --- text -------------------------------------------------------------------------------- */

static const struct {
	const char *name;
	uint16_t type;
} types[] = {
	{"A", 1},      {"NS", 2},     {"CNAME", 5}, {"SOA", 6},	    {"PTR", 12},   {"HINFO", 13},
	{"MX", 15},    {"TXT", 16},   {"AAAA", 28}, {"SRV", 33},    {"NAPTR", 35}, {"OPT", 41},
	{"DS", 43},    {"RRSIG", 46}, {"NSEC", 47}, {"DNSKEY", 48}, {"SVCB", 64},  {"HTTPS", 65},
	{"IXFR", 251}, {"AXFR", 252}, {"ANY", 255}, {"CAA", 257},
};

const char *dns_type_name(uint16_t type)
{
	for (size_t i = 0; i < ARRAY_SIZE(types); i++)
		if (types[i].type == type)
			return types[i].name;
	return NULL;
}

int dns_type_parse(const char *s)
{
	for (size_t i = 0; i < ARRAY_SIZE(types); i++)
		if (!strcasecmp(types[i].name, s))
			return types[i].type;
	if (!strncasecmp(s, "TYPE", 4) && isdigit((unsigned char)s[4])) {
		char *end;
		unsigned long v = strtoul(s + 4, &end, 10);
		if (!*end && v <= 65535)
			return (int)v;
	}
	return -EINVAL;
}

const char *dns_rcode_name(uint16_t rcode)
{
	static const char *const names[] = {
		"NOERROR",  "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP",  "REFUSED",
		"YXDOMAIN", "YXRRSET", "NXRRSET",  "NOTAUTH",  "NOTZONE",
	};

	if (rcode < ARRAY_SIZE(names))
		return names[rcode];
	return rcode == DNS_RCODE_BADVERS ? "BADVERS" : NULL;
}

/* A parsed or given text name as "name." (the root stays "."). */
static void put_fqdn(struct buf *out, const char *name)
{
	size_t len = strlen(name), bs = 0;

	buf_append(out, name, len);
	while (bs + 1 < len && name[len - 2 - bs] == '\\')
		bs++;
	/* a final dot that is not escaped: a\. ends in a label byte, a\\. in a dot */
	if (len == 0 || name[len - 1] != '.' || bs % 2)
		buf_append(out, ".", 1);
}

static void put_txt_string(struct buf *out, const uint8_t *s, size_t len)
{
	buf_append(out, "\"", 1);
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '"' || s[i] == '\\')
			buf_printf(out, "\\%c", s[i]);
		else if (s[i] < 0x20 || s[i] > 0x7e)
			buf_printf(out, "\\%03u", s[i]);
		else
			buf_append(out, s + i, 1);
	}
	buf_append(out, "\"", 1);
}

void dns_rdata_format(const struct dns_rr *rr, struct buf *out)
{
	char text[INET6_ADDRSTRLEN];
	const uint8_t *s;
	size_t off = 0, len;

	switch (rr->kind) {
	case DNS_RDATA_A:
		buf_printf(out, "%s", inet_ntop(AF_INET, rr->u.a, text, sizeof(text)));
		return;
	case DNS_RDATA_AAAA:
		buf_printf(out, "%s", inet_ntop(AF_INET6, rr->u.aaaa, text, sizeof(text)));
		return;
	case DNS_RDATA_NAME:
		put_fqdn(out, rr->u.name);
		return;
	case DNS_RDATA_MX:
		buf_printf(out, "%u ", rr->u.mx.preference);
		put_fqdn(out, rr->u.mx.exchange);
		return;
	case DNS_RDATA_SRV:
		buf_printf(out, "%u %u %u ", rr->u.srv.priority, rr->u.srv.weight, rr->u.srv.port);
		put_fqdn(out, rr->u.srv.target);
		return;
	case DNS_RDATA_SOA:
		put_fqdn(out, rr->u.soa.mname);
		buf_append(out, " ", 1);
		put_fqdn(out, rr->u.soa.rname);
		buf_printf(out, " %u %u %u %u %u", rr->u.soa.serial, rr->u.soa.refresh,
			   rr->u.soa.retry, rr->u.soa.expire, rr->u.soa.minimum);
		return;
	case DNS_RDATA_TXT:
		while (dns_txt_next(rr, &off, &s, &len)) {
			if (off > 1 + len)
				buf_append(out, " ", 1);
			put_txt_string(out, s, len);
		}
		return;
	case DNS_RDATA_OPT:
		buf_printf(out, "udp=%u version=%u do=%d ext_rcode=%u options=%u",
			   rr->u.opt.udp_size, rr->u.opt.version, rr->u.opt.do_bit,
			   rr->u.opt.ext_rcode, rr->u.opt.options_len);
		return;
	case DNS_RDATA_RAW:
		break;
	}
	/* RFC 3597 §5 */
	buf_printf(out, "\\# %u", rr->rdlen);
	if (rr->rdlen)
		buf_append(out, " ", 1);
	for (unsigned i = 0; i < rr->rdlen; i++)
		buf_printf(out, "%02x", rr->rdata[i]);
}

void dns_rr_format(const struct dns_rr *rr, struct buf *out)
{
	const char *type = dns_type_name(rr->type);

	put_fqdn(out, rr->name);
	buf_printf(out, " %u ", rr->ttl);
	if (rr->kind == DNS_RDATA_OPT)
		buf_append(out, "-", 1);
	else if (rr->class == DNS_CLASS_IN)
		buf_append(out, "IN", 2);
	else
		buf_printf(out, "CLASS%u", rr->class);
	if (type)
		buf_printf(out, " %s ", type);
	else
		buf_printf(out, " TYPE%u ", rr->type);
	dns_rdata_format(rr, out);
}
