/* FUZZ_MODULE dns */
/* Fuzz target for the DNS wire codec (dns/message.c): arbitrary bytes as a
 * message, and as a text name. Oracles beyond "no crash, no leak, no
 * sanitizer report":
 * - a parsed message is rebuilt with the builder (every record the builder
 *   can write: decoded kinds from their fields, raw ones verbatim unless
 *   their type may hold names, which could be compression pointers into the
 *   original), and the rebuilt message must parse to the same questions and
 *   records (names compared case-insensitively: compression is);
 * - truncating that rebuild to 512 bytes gives a message that parses and
 *   fits; an error response to it parses;
 * - a name that normalizes is equal to its normal form, which is a fixed
 *   point of normalization. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns/dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool may_hold_names(uint16_t type)
{
	switch (type) {
	case DNS_TYPE_NS:
	case DNS_TYPE_CNAME:
	case DNS_TYPE_SOA:
	case DNS_TYPE_PTR:
	case DNS_TYPE_MX:
	case DNS_TYPE_SRV:
		return true;
	default:
		return false;
	}
}

static bool same_rr(const struct dns_rr *a, const struct dns_rr *b)
{
	if (!dns_name_equal(a->name, b->name) || a->type != b->type || a->class != b->class ||
	    a->ttl != b->ttl || a->kind != b->kind)
		return false;
	switch (a->kind) {
	case DNS_RDATA_RAW:
		return a->rdlen == b->rdlen && !memcmp(a->rdata, b->rdata, a->rdlen);
	case DNS_RDATA_A:
		return !memcmp(a->u.a, b->u.a, 4);
	case DNS_RDATA_AAAA:
		return !memcmp(a->u.aaaa, b->u.aaaa, 16);
	case DNS_RDATA_NAME:
		return dns_name_equal(a->u.name, b->u.name);
	case DNS_RDATA_MX:
		return a->u.mx.preference == b->u.mx.preference &&
		       dns_name_equal(a->u.mx.exchange, b->u.mx.exchange);
	case DNS_RDATA_SRV:
		return a->u.srv.priority == b->u.srv.priority &&
		       a->u.srv.weight == b->u.srv.weight && a->u.srv.port == b->u.srv.port &&
		       dns_name_equal(a->u.srv.target, b->u.srv.target);
	case DNS_RDATA_SOA:
		return dns_name_equal(a->u.soa.mname, b->u.soa.mname) &&
		       dns_name_equal(a->u.soa.rname, b->u.soa.rname) &&
		       a->u.soa.serial == b->u.soa.serial && a->u.soa.refresh == b->u.soa.refresh &&
		       a->u.soa.retry == b->u.soa.retry && a->u.soa.expire == b->u.soa.expire &&
		       a->u.soa.minimum == b->u.soa.minimum;
	case DNS_RDATA_TXT:
		return a->u.txt.len == b->u.txt.len &&
		       !memcmp(a->u.txt.data, b->u.txt.data, a->u.txt.len);
	case DNS_RDATA_OPT:
		return a->u.opt.udp_size == b->u.opt.udp_size &&
		       a->u.opt.do_bit == b->u.opt.do_bit &&
		       a->u.opt.options_len == b->u.opt.options_len &&
		       !memcmp(a->u.opt.options, b->u.opt.options, a->u.opt.options_len);
	}
	return false;
}

/* Rebuilds m into out; returns the builder's result. kept[] marks which of
 * m's records went in. */
static int rebuild(const struct dns_msg *m, struct buf *out, size_t limit, bool *kept)
{
	struct dns_builder b;
	struct dns_header h = m->hdr;
	int r;

	h.tc = false;
	dns_builder_init(&b, out, &h);
	for (unsigned i = 0; i < m->qdcount; i++)
		if (dns_builder_add_question(&b, m->qd[i].name, m->qd[i].type, m->qd[i].class) < 0)
			abort(); /* parsed names always write back */
	for (size_t i = 0; i < m->rrcount; i++) {
		const struct dns_rr *rr = &m->rr[i];
		enum dns_section s = i < m->ancount			   ? DNS_SECTION_ANSWER
				     : i < (size_t)m->ancount + m->nscount ? DNS_SECTION_AUTHORITY
									   : DNS_SECTION_ADDITIONAL;
		kept[i] = false;
		if (rr->kind == DNS_RDATA_OPT) {
			dns_builder_set_edns(&b, rr->u.opt.udp_size ? rr->u.opt.udp_size : 512,
					     rr->u.opt.do_bit, rr->u.opt.options,
					     rr->u.opt.options_len);
			continue;
		}
		if (rr->kind == DNS_RDATA_RAW && may_hold_names(rr->type))
			continue;
		r = dns_builder_add(&b, s, rr);
		if (r == -EMSGSIZE)
			return r;
		if (r < 0)
			abort();
		kept[i] = true;
	}
	return dns_builder_finish(&b, limit);
}

static void check_message(const uint8_t *data, size_t size)
{
	struct dns_msg m, m2;
	struct buf out = {0}, text = {0};
	uint32_t ttl;
	bool *kept;
	int r;

	if (dns_msg_parse(data, size, &m) < 0) {
		if (m.arena || m.rr || m.qd)
			abort();
		return;
	}
	for (size_t i = 0; i < m.rrcount; i++)
		dns_rr_format(&m.rr[i], &text);
	buf_done(&text);
	(void)dns_msg_min_ttl(&m, &ttl);
	if (dns_msg_udp_limit(&m, 65535) < 512)
		abort();

	kept = calloc(m.rrcount + 1, sizeof(*kept));
	r = rebuild(&m, &out, 0, kept);
	if (r >= 0) {
		if (dns_msg_parse(buf_data(&out), buf_len(&out), &m2) < 0)
			abort();
		if (m2.qdcount != m.qdcount || m2.edns != m.edns ||
		    (m2.hdr.rcode != m.hdr.rcode && m.edns_version == 0))
			abort();
		for (unsigned i = 0; i < m.qdcount; i++)
			if (!dns_name_equal(m.qd[i].name, m2.qd[i].name) ||
			    m.qd[i].type != m2.qd[i].type || m.qd[i].class != m2.qd[i].class)
				abort();
		size_t k = 0;
		for (size_t i = 0; i < m.rrcount; i++) {
			if (m.rr[i].kind == DNS_RDATA_OPT || !kept[i])
				continue;
			while (k < m2.rrcount && m2.rr[k].kind == DNS_RDATA_OPT)
				k++;
			if (k >= m2.rrcount || !same_rr(&m.rr[i], &m2.rr[k]))
				abort();
			k++;
		}
		dns_msg_done(&m2);
	}
	/* the same rebuilt as a UDP answer of 512 bytes */
	buf_reset(&out);
	r = rebuild(&m, &out, 512, kept);
	if (r >= 0) {
		if ((size_t)r > 512 || dns_msg_parse(buf_data(&out), buf_len(&out), &m2) < 0)
			abort();
		dns_msg_done(&m2);
	}
	buf_reset(&out);
	if (dns_response_error(&m, DNS_RCODE_SERVFAIL, &out) >= 0) {
		if (dns_msg_parse(buf_data(&out), buf_len(&out), &m2) < 0 ||
		    m2.hdr.rcode != DNS_RCODE_SERVFAIL)
			abort();
		dns_msg_done(&m2);
	}
	free(kept);
	buf_done(&out);
	dns_msg_done(&m);
}

static void check_name(const uint8_t *data, size_t size)
{
	char name[400], norm[DNS_NAME_STRLEN], again[DNS_NAME_STRLEN];

	if (size >= sizeof(name))
		size = sizeof(name) - 1;
	memcpy(name, data, size);
	name[size] = '\0';
	if (dns_name_normalize(name, norm, sizeof(norm)) < 0) {
		if (dns_name_validate(name) == 0)
			abort();
		return;
	}
	if (!dns_name_equal(name, norm) || dns_name_normalize(norm, again, sizeof(again)) < 0 ||
	    strcmp(norm, again))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_message(data, size);
	check_name(data, size);
	return 0;
}
