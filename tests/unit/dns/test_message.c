/* Unit tests for dns/message.c: the DNS wire codec (parse, build, names,
 * TTLs, text), with hand-written and captured messages. */
#include <arpa/inet.h>

#include "dns/dns.h"
#include "tests/unit/tap.h"

/* Hex text to bytes (spaces ignored); returns the length. */
static size_t unhex(const char *s, uint8_t *out)
{
	size_t n = 0;

	for (; *s; s++) {
		unsigned v;
		if (*s == ' ' || *s == '\n')
			continue;
		sscanf(s, "%2x", &v);
		out[n++] = (uint8_t)v;
		s++;
	}
	return n;
}

static char *fmt_rr(const struct dns_rr *rr)
{
	struct buf b = {0};

	dns_rr_format(rr, &b);
	return buf_steal(&b, NULL);
}

static char *fmt_rdata(const struct dns_rr *rr)
{
	struct buf b = {0};

	dns_rdata_format(rr, &b);
	return buf_steal(&b, NULL);
}

/* --- names --------------------------------------------------------------------------------- */

TEST(name_to_wire)
{
	uint8_t w[DNS_NAME_MAX];
	char l63[64], name[300];

	CHECK_INT(dns_name_to_wire("example.com", w), ==, 13);
	CHECK(!memcmp(w, "\7example\3com\0", 13));
	CHECK_INT(dns_name_to_wire("example.com.", w), ==, 13);
	CHECK_INT(dns_name_to_wire(".", w), ==, 1);
	CHECK_INT(w[0], ==, 0);
	CHECK_INT(dns_name_to_wire("", w), ==, -EINVAL);
	CHECK_INT(dns_name_to_wire("..", w), ==, -EINVAL);
	CHECK_INT(dns_name_to_wire(".a", w), ==, -EINVAL);
	CHECK_INT(dns_name_to_wire("a..b", w), ==, -EINVAL);
	CHECK_INT(dns_name_to_wire("a.b..", w), ==, -EINVAL);
	/* escapes */
	CHECK_INT(dns_name_to_wire("a\\.b.c", w), ==, 7);
	CHECK(!memcmp(w, "\3a.b\1c\0", 7));
	CHECK_INT(dns_name_to_wire("\\000\\255", w), ==, 4);
	CHECK(!memcmp(w, "\2\0\377\0", 4));
	CHECK_INT(dns_name_to_wire("\\256", w), ==, -EINVAL);
	CHECK_INT(dns_name_to_wire("\\25", w), ==, -EINVAL);
	CHECK_INT(dns_name_to_wire("a\\", w), ==, -EINVAL);
	/* label length 63 is fine, 64 is not */
	memset(l63, 'x', 63);
	l63[63] = '\0';
	CHECK_INT(dns_name_to_wire(l63, w), ==, 65);
	snprintf(name, sizeof(name), "%sy", l63);
	CHECK_INT(dns_name_to_wire(name, w), ==, -EINVAL);
	/* 255 wire bytes: 3 labels of 63 + one of 61 = 4*64-2+... */
	snprintf(name, sizeof(name), "%s.%s.%s.%.61s", l63, l63, l63, l63);
	CHECK_INT(dns_name_to_wire(name, w), ==, 255);
	snprintf(name, sizeof(name), "%s.%s.%s.%.62s", l63, l63, l63, l63);
	CHECK_INT(dns_name_to_wire(name, w), ==, -EINVAL);
	CHECK_INT(dns_name_validate("api"), ==, 0);
	CHECK_INT(dns_name_validate("a..b"), ==, -EINVAL);
}

TEST(name_normalize_and_equal)
{
	char out[DNS_NAME_STRLEN], small[4];

	CHECK_INT(dns_name_normalize("Api.Default.SVC.cluster.local.", out, sizeof(out)), ==, 29);
	CHECK_STR(out, "api.default.svc.cluster.local");
	CHECK_INT(dns_name_normalize(".", out, sizeof(out)), ==, 1);
	CHECK_STR(out, ".");
	CHECK_INT(dns_name_normalize("A\\066\\.c", out, sizeof(out)), ==, 5);
	CHECK_STR(out, "ab\\.c");
	CHECK_INT(dns_name_normalize("x y", out, sizeof(out)), ==, 6);
	CHECK_STR(out, "x\\032y");
	CHECK_INT(dns_name_normalize("abcd", small, sizeof(small)), ==, -ENOSPC);
	CHECK_INT(dns_name_normalize("a..b", out, sizeof(out)), ==, -EINVAL);

	CHECK(dns_name_equal("API.default.", "api.DEFAULT"));
	CHECK(dns_name_equal("a\\066", "AB"));
	CHECK(!dns_name_equal("a\\.b", "a.b"));
	CHECK(!dns_name_equal("api", "api.default"));
	CHECK(!dns_name_equal("a..b", "a..b"));
	CHECK(dns_name_equal(".", "."));
}

/* --- queries ------------------------------------------------------------------------------- */

TEST(query_build_and_parse)
{
	struct buf b = {0};
	struct dns_msg m;
	static const uint8_t want[] = {0x12, 0x34, 0x01, 0x00, 0, 1,   0,   0, 0, 0,  0, 0,
				       3,    'a',  'p',	 'i',  2, 'n', 's', 0, 0, 28, 0, 1};

	buf_append(&b, "xy", 2); /* appends after what is there */
	CHECK_INT(dns_query_build(0x1234, "api.ns.", DNS_TYPE_AAAA, true, 0, &b), ==, sizeof(want));
	REQUIRE(buf_len(&b) == 2 + sizeof(want));
	CHECK(!memcmp(buf_data(&b) + 2, want, sizeof(want)));

	REQUIRE(dns_msg_parse(buf_data(&b) + 2, sizeof(want), &m) == 0);
	CHECK_INT(m.hdr.id, ==, 0x1234);
	CHECK(m.hdr.rd && !m.hdr.qr && !m.hdr.tc && !m.edns);
	CHECK_INT(m.qdcount, ==, 1);
	CHECK_STR(m.qd[0].name, "api.ns");
	CHECK_INT(m.qd[0].type, ==, DNS_TYPE_AAAA);
	CHECK_INT(m.qd[0].class, ==, DNS_CLASS_IN);
	CHECK_INT(m.rrcount, ==, 0);
	dns_msg_done(&m);
	dns_msg_done(&m); /* harmless twice */

	/* with EDNS: an OPT record of that size, DO clear */
	buf_reset(&b);
	CHECK_INT(dns_query_build(7, "x", DNS_TYPE_A, false, 1232, &b), ==, 12 + 7 + 11);
	REQUIRE(dns_msg_parse(buf_data(&b), buf_len(&b), &m) == 0);
	CHECK(m.edns && !m.edns_do && !m.hdr.rd);
	CHECK_INT(m.edns_udp_size, ==, 1232);
	CHECK_INT(m.arcount, ==, 1);
	CHECK_INT(m.ar[0].kind, ==, DNS_RDATA_OPT);
	dns_msg_done(&m);

	/* bad names change nothing */
	buf_reset(&b);
	CHECK_INT(dns_query_build(7, "a..b", DNS_TYPE_A, true, 0, &b), ==, -EINVAL);
	CHECK_INT(dns_query_build(7, "", DNS_TYPE_A, true, 0, &b), ==, -EINVAL);
	CHECK_INT(buf_len(&b), ==, 0);
	buf_done(&b);
}

/* --- records: build every kind, parse it back ------------------------------------------------ */

static const uint8_t txt_data[] = {5, 'h', 'e', 'l', 'l', 'o', 0, 3, 'a', '"', 0x01};
static const uint8_t raw_data[] = {0xde, 0xad, 0xbe, 0xef};

static void add_all(struct dns_builder *b)
{
	struct dns_rr rr = {.name = "www.example.com",
			    .type = DNS_TYPE_A,
			    .ttl = 300,
			    .kind = DNS_RDATA_A,
			    .u.a = {192, 0, 2, 1}};

	CHECK_OK(dns_builder_add(b, DNS_SECTION_ANSWER, &rr));
	rr = (struct dns_rr){.name = "www.example.com",
			     .type = DNS_TYPE_AAAA,
			     .ttl = 301,
			     .kind = DNS_RDATA_AAAA};
	inet_pton(AF_INET6, "2001:db8::1", rr.u.aaaa);
	CHECK_OK(dns_builder_add(b, DNS_SECTION_ANSWER, &rr));
	rr = (struct dns_rr){.name = "alias.example.com",
			     .type = DNS_TYPE_CNAME,
			     .ttl = 302,
			     .kind = DNS_RDATA_NAME,
			     .u.name = "WWW.example.com"};
	CHECK_OK(dns_builder_add(b, DNS_SECTION_ANSWER, &rr));
	rr = (struct dns_rr){.name = "1.2.0.192.in-addr.arpa",
			     .type = DNS_TYPE_PTR,
			     .ttl = 303,
			     .kind = DNS_RDATA_NAME,
			     .u.name = "www.example.com"};
	CHECK_OK(dns_builder_add(b, DNS_SECTION_ANSWER, &rr));
	rr = (struct dns_rr){.name = "example.com",
			     .type = DNS_TYPE_MX,
			     .ttl = 304,
			     .kind = DNS_RDATA_MX,
			     .u.mx = {10, "mail.example.com"}};
	CHECK_OK(dns_builder_add(b, DNS_SECTION_ANSWER, &rr));
	rr = (struct dns_rr){.name = "_http._tcp.example.com",
			     .type = DNS_TYPE_SRV,
			     .ttl = 305,
			     .kind = DNS_RDATA_SRV,
			     .u.srv = {1, 2, 8080, "www.example.com"}};
	CHECK_OK(dns_builder_add(b, DNS_SECTION_ANSWER, &rr));
	rr = (struct dns_rr){.name = "example.com",
			     .type = DNS_TYPE_TXT,
			     .ttl = 306,
			     .kind = DNS_RDATA_TXT,
			     .u.txt = {txt_data, sizeof(txt_data)}};
	CHECK_OK(dns_builder_add(b, DNS_SECTION_ANSWER, &rr));
	rr = (struct dns_rr){.name = "example.com",
			     .type = 99,
			     .class = DNS_CLASS_IN,
			     .ttl = 307,
			     .kind = DNS_RDATA_RAW,
			     .rdata = raw_data,
			     .rdlen = sizeof(raw_data)};
	CHECK_OK(dns_builder_add(b, DNS_SECTION_ANSWER, &rr));
	rr = (struct dns_rr){.name = "example.com",
			     .type = DNS_TYPE_NS,
			     .ttl = 308,
			     .kind = DNS_RDATA_NAME,
			     .u.name = "ns1.example.com"};
	CHECK_OK(dns_builder_add(b, DNS_SECTION_AUTHORITY, &rr));
	rr = (struct dns_rr){.name = "example.com",
			     .type = DNS_TYPE_SOA,
			     .ttl = 309,
			     .kind = DNS_RDATA_SOA,
			     .u.soa = {"ns1.example.com", "host\\.master.example.com", 2024010101,
				       7200, 3600, 1209600, 60}};
	CHECK_OK(dns_builder_add(b, DNS_SECTION_AUTHORITY, &rr));
	rr = (struct dns_rr){.name = "ns1.example.com",
			     .type = DNS_TYPE_A,
			     .ttl = 310,
			     .class = DNS_CLASS_IN,
			     .kind = DNS_RDATA_A,
			     .u.a = {192, 0, 2, 53}};
	CHECK_OK(dns_builder_add(b, DNS_SECTION_ADDITIONAL, &rr));
	rr = (struct dns_rr){.name = "version.bind",
			     .type = DNS_TYPE_TXT,
			     .class = 3,
			     .ttl = 0,
			     .kind = DNS_RDATA_RAW,
			     .rdata = txt_data,
			     .rdlen = 6};
	CHECK_OK(dns_builder_add(b, DNS_SECTION_ADDITIONAL, &rr));
}

TEST(every_record_type_round_trips)
{
	static const uint8_t opts[] = {0, 10, 0, 2, 0xab, 0xcd}; /* a COOKIE-ish option */
	struct dns_header h = {.id = 99, .qr = true, .aa = true, .rd = true, .ra = true};
	struct buf b = {0};
	struct dns_builder bld;
	struct dns_msg m;
	char aaaa[INET6_ADDRSTRLEN];
	const uint8_t *s;
	size_t off = 0, len;
	int n;

	dns_builder_init(&bld, &b, &h);
	CHECK_OK(dns_builder_add_question(&bld, "www.example.com", DNS_TYPE_ANY, DNS_CLASS_IN));
	add_all(&bld);
	dns_builder_set_edns(&bld, 4096, true, opts, sizeof(opts));
	n = dns_builder_finish(&bld, 0);
	REQUIRE(n > 0 && (size_t)n == buf_len(&b));
	/* the first answer's owner is a pointer to the question's name */
	CHECK_UINT(buf_data(&b)[12 + 17 + 4], ==, 0xc0);
	CHECK_UINT(buf_data(&b)[12 + 17 + 5], ==, 12);

	REQUIRE(dns_msg_parse(buf_data(&b), buf_len(&b), &m) == 0);
	buf_done(&b); /* the parsed message owns its copy */
	CHECK(m.hdr.qr && m.hdr.aa && m.hdr.rd && m.hdr.ra && !m.hdr.tc);
	CHECK_INT(m.hdr.id, ==, 99);
	CHECK_INT(m.qdcount, ==, 1);
	CHECK_INT(m.ancount, ==, 8);
	CHECK_INT(m.nscount, ==, 2);
	CHECK_INT(m.arcount, ==, 3);
	CHECK_INT(m.rrcount, ==, 13);
	REQUIRE(m.ancount == 8 && m.nscount == 2 && m.arcount == 3);

	CHECK_INT(m.an[0].kind, ==, DNS_RDATA_A);
	CHECK_STR(m.an[0].name, "www.example.com");
	CHECK_INT(m.an[0].ttl, ==, 300);
	CHECK(!memcmp(m.an[0].u.a, "\300\0\2\1", 4));
	CHECK_INT(m.an[1].kind, ==, DNS_RDATA_AAAA);
	CHECK_STR(inet_ntop(AF_INET6, m.an[1].u.aaaa, aaaa, sizeof(aaaa)), "2001:db8::1");
	CHECK_INT(m.an[2].kind, ==, DNS_RDATA_NAME);
	CHECK_INT(m.an[2].type, ==, DNS_TYPE_CNAME);
	CHECK_STR(m.an[2].name, "alias.example.com");
	/* compression is case-insensitive: the target points at the question */
	CHECK(dns_name_equal(m.an[2].u.name, "www.example.com"));
	CHECK_STR(m.an[3].u.name, "www.example.com");
	CHECK_STR(m.an[3].name, "1.2.0.192.in-addr.arpa");
	CHECK_INT(m.an[4].kind, ==, DNS_RDATA_MX);
	CHECK_INT(m.an[4].u.mx.preference, ==, 10);
	CHECK_STR(m.an[4].u.mx.exchange, "mail.example.com");
	CHECK_INT(m.an[5].kind, ==, DNS_RDATA_SRV);
	CHECK_INT(m.an[5].u.srv.priority, ==, 1);
	CHECK_INT(m.an[5].u.srv.weight, ==, 2);
	CHECK_INT(m.an[5].u.srv.port, ==, 8080);
	CHECK_STR(m.an[5].u.srv.target, "www.example.com");
	CHECK_INT(m.an[6].kind, ==, DNS_RDATA_TXT);
	CHECK_INT(dns_txt_next(&m.an[6], &off, &s, &len), ==, 1);
	CHECK(len == 5 && !memcmp(s, "hello", 5));
	CHECK_INT(dns_txt_next(&m.an[6], &off, &s, &len), ==, 1);
	CHECK_INT(len, ==, 0);
	CHECK_INT(dns_txt_next(&m.an[6], &off, &s, &len), ==, 1);
	CHECK(len == 3 && !memcmp(s, "a\"\1", 3));
	CHECK_INT(dns_txt_next(&m.an[6], &off, &s, &len), ==, 0);
	CHECK_INT(m.an[7].kind, ==, DNS_RDATA_RAW);
	CHECK_INT(m.an[7].type, ==, 99);
	CHECK(m.an[7].rdlen == 4 && !memcmp(m.an[7].rdata, raw_data, 4));
	CHECK_INT(m.ns[0].type, ==, DNS_TYPE_NS);
	CHECK_STR(m.ns[0].u.name, "ns1.example.com");
	CHECK_INT(m.ns[1].kind, ==, DNS_RDATA_SOA);
	CHECK_STR(m.ns[1].u.soa.mname, "ns1.example.com");
	CHECK_STR(m.ns[1].u.soa.rname, "host\\.master.example.com");
	CHECK_UINT(m.ns[1].u.soa.serial, ==, 2024010101);
	CHECK_UINT(m.ns[1].u.soa.refresh, ==, 7200);
	CHECK_UINT(m.ns[1].u.soa.retry, ==, 3600);
	CHECK_UINT(m.ns[1].u.soa.expire, ==, 1209600);
	CHECK_UINT(m.ns[1].u.soa.minimum, ==, 60);
	CHECK_INT(m.ar[0].kind, ==, DNS_RDATA_A);
	CHECK_INT(m.ar[1].kind, ==, DNS_RDATA_RAW); /* class CH: kept raw */
	CHECK_INT(m.ar[1].class, ==, 3);
	CHECK_INT(m.ar[2].kind, ==, DNS_RDATA_OPT);
	CHECK_INT(m.ar[2].u.opt.udp_size, ==, 4096);
	CHECK(m.ar[2].u.opt.do_bit);
	CHECK(m.ar[2].u.opt.options_len == 6 && !memcmp(m.ar[2].u.opt.options, opts, 6));
	CHECK(m.edns && m.edns_do);
	CHECK_INT(m.edns_udp_size, ==, 4096);
	CHECK_INT(m.edns_version, ==, 0);
	dns_msg_done(&m);
}

TEST(builder_refuses_bad_records)
{
	struct dns_header h = {.id = 1};
	struct buf b = {0};
	struct dns_builder bld;
	struct dns_rr rr = {.name = "x", .type = DNS_TYPE_A, .kind = DNS_RDATA_A};
	static const uint8_t badtxt[] = {4, 'a'};
	size_t len;

	dns_builder_init(&bld, &b, &h);
	CHECK_OK(dns_builder_add(&bld, DNS_SECTION_AUTHORITY, &rr));
	len = buf_len(&b);
	/* section order, question after records, type/kind mismatch, bad names */
	CHECK_INT(dns_builder_add(&bld, DNS_SECTION_ANSWER, &rr), ==, -EINVAL);
	CHECK_INT(dns_builder_add_question(&bld, "x", 1, 1), ==, -EINVAL);
	rr.type = DNS_TYPE_AAAA;
	CHECK_INT(dns_builder_add(&bld, DNS_SECTION_ADDITIONAL, &rr), ==, -EINVAL);
	rr = (struct dns_rr){.name = "a..b", .type = DNS_TYPE_A, .kind = DNS_RDATA_A};
	CHECK_INT(dns_builder_add(&bld, DNS_SECTION_ADDITIONAL, &rr), ==, -EINVAL);
	rr = (struct dns_rr){.name = "ok",
			     .type = DNS_TYPE_CNAME,
			     .kind = DNS_RDATA_NAME,
			     .u.name = "bad..target"};
	CHECK_INT(dns_builder_add(&bld, DNS_SECTION_ADDITIONAL, &rr), ==, -EINVAL);
	rr = (struct dns_rr){.name = "ok",
			     .type = DNS_TYPE_TXT,
			     .kind = DNS_RDATA_TXT,
			     .u.txt = {badtxt, sizeof(badtxt)}};
	CHECK_INT(dns_builder_add(&bld, DNS_SECTION_ADDITIONAL, &rr), ==, -EINVAL);
	rr = (struct dns_rr){.name = ".", .type = DNS_TYPE_OPT, .kind = DNS_RDATA_OPT};
	CHECK_INT(dns_builder_add(&bld, DNS_SECTION_ADDITIONAL, &rr), ==, -EINVAL);
	/* a failed add leaves the message as it was */
	CHECK_INT(buf_len(&b), ==, len);
	/* an extended rcode needs EDNS */
	bld.hdr.rcode = DNS_RCODE_BADVERS;
	CHECK_INT(dns_builder_finish(&bld, 0), ==, -EINVAL);
	buf_done(&b);
}

/* --- compression pointers ------------------------------------------------------------------- */

/* A response header with one question and one answer, then the bytes. */
#define HDR1 "abcd 8180 0001 0001 0000 0000 "

static int parse_hex(const char *hex, struct dns_msg *m)
{
	uint8_t p[1024];
	size_t n = unhex(hex, p);

	return dns_msg_parse(p, n, m);
}

TEST(compression_pointers)
{
	struct dns_msg m;

	/* valid: the answer's owner points at the question (offset 12) */
	REQUIRE(parse_hex(HDR1 "01 61 00 0001 0001  c00c 0001 0001 00000010 0004 01020304", &m) ==
		0);
	CHECK_STR(m.an[0].name, "a");
	dns_msg_done(&m);
	/* valid: label then a pointer to a suffix; a pointer to a pointer */
	REQUIRE(parse_hex(HDR1 "01 61 01 62 00 0001 0001  01 63 c00e 0005 0001 00000010 0002 c017",
			  &m) == 0);
	CHECK_STR(m.an[0].name, "c.b");
	CHECK_STR(m.an[0].u.name, "b");
	dns_msg_done(&m);
	/* forward pointer (to the answer's own later bytes) */
	CHECK_INT(parse_hex(HDR1 "c014 0001 0001  01 61 00 0001 0001 00000010 0004 01020304", &m),
		  ==, -EBADMSG);
	/* a pointer to itself */
	CHECK_INT(parse_hex(HDR1 "01 61 00 0001 0001  c017 0001 0001 00000010 0004 01020304", &m),
		  ==, -EBADMSG);
	/* a loop through a label: the answer name is "x" + pointer back to the "x" */
	CHECK_INT(parse_hex(HDR1 "01 61 00 0001 0001  01 78 c017 0001 0001 00000010 0004 01020304",
			    &m),
		  ==, -EBADMSG);
	/* two pointers pointing at each other (the second one's target is earlier
	 * but the first one's is not) */
	CHECK_INT(parse_hex(HDR1 "c00e c00c 0001 0001  c00c 0001 0001 00000010 0004 01020304", &m),
		  ==, -EBADMSG);
	/* beyond the message, into the header, reserved label types */
	CHECK_INT(parse_hex(HDR1 "01 61 00 0001 0001  c3ff 0001 0001 00000010 0004 01020304", &m),
		  ==, -EBADMSG);
	CHECK_INT(parse_hex(HDR1 "01 61 00 0001 0001  c004 0001 0001 00000010 0004 01020304", &m),
		  ==, -EBADMSG);
	CHECK_INT(parse_hex(HDR1 "41 61 00 0001 0001  c00c 0001 0001 00000010 0004 01020304", &m),
		  ==, -EBADMSG);
	CHECK_INT(parse_hex(HDR1 "81 61 00 0001 0001  c00c 0001 0001 00000010 0004 01020304", &m),
		  ==, -EBADMSG);
	/* a pointer cut in half at the end */
	CHECK_INT(parse_hex("abcd 8180 0001 0000 0000 0000 c0", &m), ==, -EBADMSG);
}

TEST(names_longer_than_255_through_pointers)
{
	uint8_t p[2048];
	size_t n = 12;
	struct dns_msg m;

	/* question 1: 4 labels of 60 (245 bytes with the root) */
	memcpy(p, "\xab\xcd\x81\x80\0\2\0\0\0\0\0\0", 12);
	for (int i = 0; i < 4; i++) {
		p[n++] = 60;
		memset(p + n, 'a' + i, 60);
		n += 60;
	}
	p[n++] = 0;
	memcpy(p + n, "\0\1\0\1", 4);
	n += 4;
	/* question 2: one more label of 10 and a pointer to question 1: 256 */
	p[n++] = 10;
	memset(p + n, 'z', 10);
	n += 10;
	p[n++] = 0xc0;
	p[n++] = 12;
	memcpy(p + n, "\0\1\0\1", 4);
	n += 4;
	CHECK_INT(dns_msg_parse(p, n, &m), ==, -EBADMSG);
	/* 9 bytes: 255 exactly, fine */
	p[12 + 245 + 4] = 9;
	memmove(p + 12 + 245 + 4 + 10, p + 12 + 245 + 4 + 11, 6);
	n--;
	REQUIRE(dns_msg_parse(p, n, &m) == 0);
	CHECK_INT(strlen(m.qd[1].name), ==, 9 + 1 + 4 * 61 - 1);
	dns_msg_done(&m);
}

/* --- truncated, oversized, wrong lengths ---------------------------------------------------- */

static void build_sample(struct buf *b)
{
	struct dns_header h = {.id = 5, .qr = true, .rd = true, .ra = true};
	struct dns_builder bld;

	dns_builder_init(&bld, b, &h);
	CHECK_OK(dns_builder_add_question(&bld, "www.example.com", DNS_TYPE_ANY, DNS_CLASS_IN));
	add_all(&bld);
	dns_builder_set_edns(&bld, 1232, false, NULL, 0);
	CHECK_OK(dns_builder_finish(&bld, 0));
}

TEST(every_prefix_is_refused)
{
	struct buf b = {0};
	struct dns_msg m;

	build_sample(&b);
	for (size_t n = 0; n < buf_len(&b); n++) {
		int r = dns_msg_parse(buf_data(&b), n, &m);
		if (r != -EBADMSG)
			TAP_FAIL("prefix of %zu bytes: %d", n, r);
		CHECK(m.arena == NULL);
	}
	CHECK_INT(dns_msg_parse(buf_data(&b), buf_len(&b), &m), ==, 0);
	dns_msg_done(&m);
	/* a byte after the last record */
	buf_append(&b, "", 1);
	CHECK_INT(dns_msg_parse(buf_data(&b), buf_len(&b), &m), ==, -EBADMSG);
	buf_done(&b);
}

TEST(oversized_and_lying_counts)
{
	uint8_t *big = calloc(1, 65536 + 16);
	struct dns_msg m;

	REQUIRE(big);
	CHECK_INT(dns_msg_parse(big, 65536, &m), ==, -EBADMSG);
	free(big);
	/* counts claim 65535 answers that are not there */
	CHECK_INT(parse_hex("abcd 8180 0000 ffff ffff ffff", &m), ==, -EBADMSG);
	/* with TC, a message may stop at a record boundary (RFC 2181 §9) */
	REQUIRE(parse_hex("abcd 8380 0001 ffff 0000 0000 01 61 00 0001 0001", &m) == 0);
	CHECK(m.partial && m.hdr.tc);
	CHECK_INT(m.qdcount, ==, 1);
	CHECK_INT(m.ancount, ==, 0);
	dns_msg_done(&m);
	/* ... but not in the middle of one */
	CHECK_INT(parse_hex("abcd 8380 0001 0002 0000 0000 01 61 00 0001 0001 c00c 0001", &m), ==,
		  -EBADMSG);
}

TEST(typed_rdata_lengths_are_exact)
{
	struct dns_msg m;

	/* A with 5 bytes, AAAA with 4 */
	CHECK_INT(parse_hex(HDR1 "01 61 00 0001 0001  c00c 0001 0001 00000010 0005 0102030405", &m),
		  ==, -EBADMSG);
	CHECK_INT(parse_hex(HDR1 "01 61 00 0001 0001  c00c 001c 0001 00000010 0004 01020304", &m),
		  ==, -EBADMSG);
	/* CNAME whose name ends before the rdata does, or runs past it */
	CHECK_INT(parse_hex(HDR1 "01 61 00 0001 0001  c00c 0005 0001 00000010 0003 c00c 00", &m),
		  ==, -EBADMSG);
	CHECK_INT(parse_hex(HDR1 "01 61 00 0001 0001  c00c 0005 0001 00000010 0002 01 62 00", &m),
		  ==, -EBADMSG);
	/* rdlength beyond the message */
	CHECK_INT(parse_hex(HDR1 "01 61 00 0001 0001  c00c 0001 0001 00000010 0008 01020304", &m),
		  ==, -EBADMSG);
	/* TXT: a string past the end; empty rdata */
	CHECK_INT(parse_hex(HDR1 "01 61 00 0001 0001  c00c 0010 0001 00000010 0003 05 6162", &m),
		  ==, -EBADMSG);
	CHECK_INT(parse_hex(HDR1 "01 61 00 0001 0001  c00c 0010 0001 00000010 0000", &m), ==,
		  -EBADMSG);
	/* SRV too short, MX too short, SOA with 19 bytes after its names */
	CHECK_INT(
		parse_hex(HDR1 "01 61 00 0001 0001  c00c 0021 0001 00000010 0006 000100020003", &m),
		==, -EBADMSG);
	CHECK_INT(parse_hex(HDR1 "01 61 00 0001 0001  c00c 000f 0001 00000010 0002 000a", &m), ==,
		  -EBADMSG);
	CHECK_INT(parse_hex(HDR1 "01 61 00 0001 0001  c00c 0006 0001 00000010 0017 00 00 "
				 "00000001 00000002 00000003 00000004 000005",
			    &m),
		  ==, -EBADMSG);
	/* an unknown type keeps any bytes; another class keeps an A as it is */
	REQUIRE(parse_hex(HDR1 "01 61 00 0001 0001  c00c 00ff 0001 00000010 0003 c00c 00", &m) ==
		0);
	CHECK(m.an[0].kind == DNS_RDATA_RAW && m.an[0].rdlen == 3);
	dns_msg_done(&m);
	REQUIRE(parse_hex(HDR1 "01 61 00 0001 0001  c00c 0001 00fe 00000000 0000", &m) == 0);
	CHECK(m.an[0].kind == DNS_RDATA_RAW && m.an[0].rdlen == 0);
	dns_msg_done(&m);
}

/* --- EDNS ----------------------------------------------------------------------------------- */

#define HDR_AR1 "abcd 8180 0001 0000 0000 0001 01 61 00 0001 0001 "

TEST(edns_opt)
{
	struct dns_msg m;
	struct buf b = {0};

	/* extended rcode 1 (BADVERS = 16 with a header rcode 0), version 0, DO,
	 * size 100 (read as 512), one option */
	REQUIRE(parse_hex(HDR_AR1 "00 0029 0064 01008000 0006 000a 0002 abcd", &m) == 0);
	CHECK_INT(m.hdr.rcode, ==, DNS_RCODE_BADVERS);
	CHECK(m.edns && m.edns_do);
	CHECK_INT(m.edns_udp_size, ==, 512);
	CHECK_INT(m.ar[0].u.opt.udp_size, ==, 100);
	CHECK_INT(m.ar[0].u.opt.ext_rcode, ==, 1);
	CHECK_INT(dns_msg_udp_limit(&m, 4096), ==, 512);
	char *s = fmt_rdata(&m.ar[0]);
	CHECK_STR(s, "udp=100 version=0 do=1 ext_rcode=1 options=6");
	free(s);
	/* the full rcode goes back into the OPT record */
	struct dns_builder bld;
	REQUIRE(dns_response_start(&bld, &b, &m, DNS_RCODE_BADVERS) == 0);
	CHECK_OK(dns_builder_finish(&bld, 0));
	dns_msg_done(&m);
	REQUIRE(dns_msg_parse(buf_data(&b), buf_len(&b), &m) == 0);
	CHECK_INT(m.hdr.rcode, ==, DNS_RCODE_BADVERS);
	CHECK(m.edns && m.edns_do);
	CHECK_INT(m.edns_udp_size, ==, DNS_EDNS_UDP_SIZE);
	dns_msg_done(&m);
	buf_done(&b);

	/* two OPTs; an OPT in the answer; an OPT owned by a name; options overrun */
	CHECK_INT(parse_hex("abcd 8180 0001 0000 0000 0002 01 61 00 0001 0001 "
			    "00 0029 1000 00000000 0000 00 0029 1000 00000000 0000",
			    &m),
		  ==, -EBADMSG);
	CHECK_INT(parse_hex(HDR1 "01 61 00 0001 0001 00 0029 1000 00000000 0000", &m), ==,
		  -EBADMSG);
	CHECK_INT(parse_hex(HDR_AR1 "c00c 0029 1000 00000000 0000", &m), ==, -EBADMSG);
	CHECK_INT(parse_hex(HDR_AR1 "00 0029 1000 00000000 0005 000a 0002 ab", &m), ==, -EBADMSG);
	CHECK_INT(parse_hex(HDR_AR1 "00 0029 1000 00000000 0003 000a 00", &m), ==, -EBADMSG);
	/* no EDNS: 512 */
	REQUIRE(parse_hex("abcd 0100 0001 0000 0000 0000 01 61 00 0001 0001", &m) == 0);
	CHECK_INT(dns_msg_udp_limit(&m, 4096), ==, 512);
	dns_msg_done(&m);
	REQUIRE(parse_hex(HDR_AR1 "00 0029 ffff 00000000 0000", &m) == 0);
	CHECK_INT(dns_msg_udp_limit(&m, 4096), ==, 4096);
	CHECK_INT(dns_msg_udp_limit(&m, 0), ==, 512);
	dns_msg_done(&m);
}

/* --- responses, truncation ------------------------------------------------------------------ */

TEST(response_to_a_query_reparses)
{
	struct buf q = {0}, r = {0};
	struct dns_msg qm, rm;
	struct dns_builder b;
	struct dns_rr rr = {.name = "API.default.svc.cluster.local",
			    .type = DNS_TYPE_A,
			    .ttl = 5,
			    .kind = DNS_RDATA_A,
			    .u.a = {10, 96, 0, 1}};

	CHECK_OK(dns_query_build(0xbeef, "Api.Default.svc.cluster.local", DNS_TYPE_A, true, 0, &q));
	REQUIRE(dns_msg_parse(buf_data(&q), buf_len(&q), &qm) == 0);
	REQUIRE(dns_response_start(&b, &r, &qm, DNS_RCODE_NOERROR) == 0);
	CHECK_OK(dns_builder_add(&b, DNS_SECTION_ANSWER, &rr));
	int n = dns_builder_finish(&b, dns_msg_udp_limit(&qm, 4096));
	/* header + question (31+4) + answer as a pointer (2+10+4), no OPT */
	CHECK_INT(n, ==, 12 + 35 + 16);
	REQUIRE(dns_msg_parse(buf_data(&r), buf_len(&r), &rm) == 0);
	CHECK(rm.hdr.qr && rm.hdr.rd && rm.hdr.ra && !rm.hdr.aa && !rm.hdr.tc && !rm.edns);
	CHECK_INT(rm.hdr.id, ==, 0xbeef);
	/* the question's case, echoed (resolvers using 0x20 check it) */
	CHECK_STR(rm.qd[0].name, "Api.Default.svc.cluster.local");
	CHECK_STR(rm.an[0].name, "Api.Default.svc.cluster.local");
	char *s = fmt_rr(&rm.an[0]);
	CHECK_STR(s, "Api.Default.svc.cluster.local. 5 IN A 10.96.0.1");
	free(s);
	dns_msg_done(&rm);
	dns_msg_done(&qm);
	buf_done(&q);
	buf_done(&r);
}

TEST(error_responses_echo_the_question)
{
	static const uint16_t rcodes[] = {DNS_RCODE_NXDOMAIN, DNS_RCODE_SERVFAIL,
					  DNS_RCODE_REFUSED};
	struct buf q = {0}, r = {0};
	struct dns_msg qm, rm;

	CHECK_OK(dns_query_build(42, "nope.example", DNS_TYPE_AAAA, true, 1232, &q));
	REQUIRE(dns_msg_parse(buf_data(&q), buf_len(&q), &qm) == 0);
	for (size_t i = 0; i < ARRAY_SIZE(rcodes); i++) {
		buf_reset(&r);
		CHECK_OK(dns_response_error(&qm, rcodes[i], &r));
		REQUIRE(dns_msg_parse(buf_data(&r), buf_len(&r), &rm) == 0);
		CHECK_INT(rm.hdr.rcode, ==, rcodes[i]);
		CHECK(rm.hdr.qr && rm.hdr.rd);
		CHECK_INT(rm.hdr.id, ==, 42);
		CHECK_INT(rm.qdcount, ==, 1);
		CHECK_STR(rm.qd[0].name, "nope.example");
		CHECK_INT(rm.qd[0].type, ==, DNS_TYPE_AAAA);
		CHECK_INT(rm.ancount + rm.nscount, ==, 0);
		CHECK(rm.edns); /* EDNS answered with EDNS */
		dns_msg_done(&rm);
	}
	CHECK_STR(dns_rcode_name(DNS_RCODE_NXDOMAIN), "NXDOMAIN");
	CHECK_STR(dns_rcode_name(16), "BADVERS");
	CHECK(dns_rcode_name(12) == NULL);
	dns_msg_done(&qm);
	buf_done(&q);
	buf_done(&r);
}

/* 100 A records (as the cluster's many.default.svc.cluster.local has). */
static void build_many(struct buf *out, bool edns, bool extra_in_additional)
{
	struct buf q = {0};
	struct dns_msg qm;
	struct dns_builder b;

	CHECK_OK(dns_query_build(1, "many.default.svc.cluster.local", DNS_TYPE_A, true,
				 edns ? 1232 : 0, &q));
	REQUIRE(dns_msg_parse(buf_data(&q), buf_len(&q), &qm) == 0);
	REQUIRE(dns_response_start(&b, out, &qm, 0) == 0);
	for (int i = 0; i < (extra_in_additional ? 3 : 100); i++) {
		struct dns_rr rr = {.name = "many.default.svc.cluster.local",
				    .type = DNS_TYPE_A,
				    .ttl = 10,
				    .kind = DNS_RDATA_A,
				    .u.a = {10, 0, 1, (uint8_t)i}};
		CHECK_OK(dns_builder_add(&b, DNS_SECTION_ANSWER, &rr));
	}
	for (int i = 0; extra_in_additional && i < 100; i++) {
		struct dns_rr rr = {.name = "ns.cluster.local",
				    .type = DNS_TYPE_AAAA,
				    .ttl = 10,
				    .kind = DNS_RDATA_AAAA};
		rr.u.aaaa[15] = (uint8_t)i;
		CHECK_OK(dns_builder_add(&b, DNS_SECTION_ADDITIONAL, &rr));
	}
	CHECK_OK(dns_builder_finish(&b, dns_msg_udp_limit(&qm, 4096)));
	dns_msg_done(&qm);
	buf_done(&q);
}

TEST(truncation_to_512_keeps_the_message_valid)
{
	struct buf r = {0};
	struct dns_msg m;

	build_many(&r, false, false);
	CHECK_INT(buf_len(&r), <=, 512);
	REQUIRE(dns_msg_parse(buf_data(&r), buf_len(&r), &m) == 0);
	CHECK(m.hdr.tc && !m.partial);
	/* 12 + 35 + n * 16 <= 512 */
	CHECK_INT(m.ancount, ==, (512 - 12 - 36) / 16);
	CHECK_INT(m.qdcount, ==, 1);
	CHECK_INT(dns_msg_min_ttl(&m, &(uint32_t){0}), ==, -ENODATA); /* TC: not cached */
	dns_msg_done(&m);

	/* with EDNS the OPT record survives, inside the client's 1232 bytes */
	buf_reset(&r);
	build_many(&r, true, false);
	CHECK_INT(buf_len(&r), <=, 1232);
	REQUIRE(dns_msg_parse(buf_data(&r), buf_len(&r), &m) == 0);
	CHECK(m.hdr.tc && m.edns);
	CHECK_INT(m.ancount, ==, (1232 - 12 - 36 - 11) / 16);
	CHECK_INT(m.arcount, ==, 1);
	dns_msg_done(&m);

	/* dropping only additional records does not set TC */
	buf_reset(&r);
	build_many(&r, false, true);
	REQUIRE(dns_msg_parse(buf_data(&r), buf_len(&r), &m) == 0);
	CHECK(!m.hdr.tc);
	CHECK_INT(m.ancount, ==, 3);
	CHECK_INT(m.arcount, <, 100);
	CHECK_INT(m.arcount, >, 0);
	CHECK_INT(buf_len(&r), <=, 512);
	dns_msg_done(&m);
	buf_done(&r);
}

TEST(finish_refuses_what_cannot_fit)
{
	struct dns_header h = {0};
	struct buf b = {0};
	struct dns_builder bld;

	dns_builder_init(&bld, &b, &h);
	CHECK_OK(dns_builder_add_question(&bld, "a-rather-long-name.example.com", 1, 1));
	CHECK_INT(dns_builder_finish(&bld, 20), ==, -EMSGSIZE);
	buf_done(&b);
}

/* --- caching, text -------------------------------------------------------------------------- */

TEST(min_ttl)
{
	struct dns_msg m;
	uint32_t ttl = 0;

	/* two answers: 300 and 0x80000001 (counts as 0) */
	REQUIRE(parse_hex("abcd 8180 0001 0002 0000 0000 01 61 00 0001 0001 "
			  "c00c 0001 0001 0000012c 0004 01020304 "
			  "c00c 0001 0001 80000001 0004 01020305",
			  &m) == 0);
	CHECK_INT(dns_msg_min_ttl(&m, &ttl), ==, 0);
	CHECK_UINT(ttl, ==, 0);
	dns_msg_done(&m);
	REQUIRE(parse_hex("abcd 8180 0001 0002 0000 0000 01 61 00 0001 0001 "
			  "c00c 0001 0001 0000012c 0004 01020304 "
			  "c00c 0001 0001 00000030 0004 01020305",
			  &m) == 0);
	CHECK_INT(dns_msg_min_ttl(&m, &ttl), ==, 0);
	CHECK_UINT(ttl, ==, 48);
	dns_msg_done(&m);
	/* NXDOMAIN with an SOA: min(TTL 600, MINIMUM 60) */
	REQUIRE(parse_hex("abcd 8183 0001 0000 0001 0000 01 61 00 0001 0001 "
			  "00 0006 0001 00000258 0016 00 00 00000001 00000002 00000003 00000004 "
			  "0000003c",
			  &m) == 0);
	CHECK_INT(dns_msg_min_ttl(&m, &ttl), ==, 0);
	CHECK_UINT(ttl, ==, 60);
	char *s = fmt_rr(&m.ns[0]);
	CHECK_STR(s, ". 600 IN SOA . . 1 2 3 4 60");
	free(s);
	dns_msg_done(&m);
	/* NXDOMAIN without SOA, SERVFAIL: nothing to cache */
	REQUIRE(parse_hex("abcd 8183 0001 0000 0000 0000 01 61 00 0001 0001", &m) == 0);
	CHECK_INT(dns_msg_min_ttl(&m, &ttl), ==, -ENODATA);
	dns_msg_done(&m);
	REQUIRE(parse_hex("abcd 8182 0001 0001 0000 0000 01 61 00 0001 0001 "
			  "c00c 0001 0001 0000012c 0004 01020304",
			  &m) == 0);
	CHECK_INT(dns_msg_min_ttl(&m, &ttl), ==, -ENODATA);
	dns_msg_done(&m);
}

TEST(format_records)
{
	struct buf b = {0};
	struct dns_msg m;
	static const char *const want[] = {
		"www.example.com. 300 IN A 192.0.2.1",
		"www.example.com. 301 IN AAAA 2001:db8::1",
		"alias.example.com. 302 IN CNAME www.example.com.",
		"1.2.0.192.in-addr.arpa. 303 IN PTR www.example.com.",
		"example.com. 304 IN MX 10 mail.example.com.",
		"_http._tcp.example.com. 305 IN SRV 1 2 8080 www.example.com.",
		"example.com. 306 IN TXT \"hello\" \"\" \"a\\\"\\001\"",
		"example.com. 307 IN TYPE99 \\# 4 deadbeef",
		"example.com. 308 IN NS ns1.example.com.",
		"example.com. 309 IN SOA ns1.example.com. host\\.master.example.com. 2024010101 "
		"7200 3600 1209600 60",
		"ns1.example.com. 310 IN A 192.0.2.53",
		"version.bind. 0 CLASS3 TXT \\# 6 0568656c6c6f",
		". 0 - OPT udp=1232 version=0 do=0 ext_rcode=0 options=0",
	};

	build_sample(&b);
	REQUIRE(dns_msg_parse(buf_data(&b), buf_len(&b), &m) == 0);
	REQUIRE(m.rrcount == ARRAY_SIZE(want));
	for (size_t i = 0; i < m.rrcount; i++) {
		char *s = fmt_rr(&m.rr[i]);
		CHECK_STR(s, want[i]);
		free(s);
	}
	dns_msg_done(&m);
	buf_done(&b);

	CHECK_STR(dns_type_name(DNS_TYPE_SRV), "SRV");
	CHECK(dns_type_name(99) == NULL);
	CHECK_INT(dns_type_parse("aaaa"), ==, DNS_TYPE_AAAA);
	CHECK_INT(dns_type_parse("TYPE65535"), ==, 65535);
	CHECK_INT(dns_type_parse("TYPE65536"), ==, -EINVAL);
	CHECK_INT(dns_type_parse("TYPE"), ==, -EINVAL);
	CHECK_INT(dns_type_parse("nope"), ==, -EINVAL);
}

/* --- captured from the mini cluster's dnsmasq ----------------------------------------------- */

/* Answers dnsmasq gave in tests/cluster (the pod's nameserver 10.213.0.10):
 * _http._tcp.api.default.svc.cluster.local SRV with EDNS (its additional
 * A and AAAA point into the uncompressed SRV target), many.default... A
 * over UDP without EDNS (truncated to 512 bytes by dnsmasq, TC set), and
 * nope.default... A (NXDOMAIN, no SOA). */
static const uint8_t cap_srv_edns[] = {
	0x11, 0x11, 0x85, 0x80, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x03, 0x05, 0x5f, 0x68,
	0x74, 0x74, 0x70, 0x04, 0x5f, 0x74, 0x63, 0x70, 0x03, 0x61, 0x70, 0x69, 0x07, 0x64, 0x65,
	0x66, 0x61, 0x75, 0x6c, 0x74, 0x03, 0x73, 0x76, 0x63, 0x07, 0x63, 0x6c, 0x75, 0x73, 0x74,
	0x65, 0x72, 0x05, 0x6c, 0x6f, 0x63, 0x61, 0x6c, 0x00, 0x00, 0x21, 0x00, 0x01, 0xc0, 0x0c,
	0x00, 0x21, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x25, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x50, 0x03, 0x61, 0x70, 0x69, 0x07, 0x64, 0x65, 0x66, 0x61, 0x75, 0x6c, 0x74, 0x03, 0x73,
	0x76, 0x63, 0x07, 0x63, 0x6c, 0x75, 0x73, 0x74, 0x65, 0x72, 0x05, 0x6c, 0x6f, 0x63, 0x61,
	0x6c, 0x00, 0xc0, 0x4c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x0a,
	0xd5, 0x00, 0x0b, 0xc0, 0x4c, 0x00, 0x1c, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
	0xfd, 0x00, 0x02, 0x13, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x11, 0x00, 0x00, 0x29, 0x04, 0xd0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};

static const uint8_t cap_many_udp[] = {
	0x44, 0x44, 0x87, 0x80, 0x00, 0x01, 0x00, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x04, 0x6d, 0x61,
	0x6e, 0x79, 0x07, 0x64, 0x65, 0x66, 0x61, 0x75, 0x6c, 0x74, 0x03, 0x73, 0x76, 0x63, 0x07,
	0x63, 0x6c, 0x75, 0x73, 0x74, 0x65, 0x72, 0x05, 0x6c, 0x6f, 0x63, 0x61, 0x6c, 0x00, 0x00,
	0x01, 0x00, 0x01, 0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04,
	0x0a, 0xd5, 0x00, 0x70, 0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x04, 0x0a, 0xd5, 0x00, 0x96, 0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x04, 0x0a, 0xd5, 0x00, 0x7d, 0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x04, 0x0a, 0xd5, 0x00, 0x97, 0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x04, 0x0a, 0xd5, 0x00, 0x6a, 0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x04, 0x0a, 0xd5, 0x00, 0x98, 0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x0a, 0xd5, 0x00, 0x7e, 0xc0, 0x0c, 0x00, 0x01, 0x00,
	0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x0a, 0xd5, 0x00, 0x99, 0xc0, 0x0c, 0x00, 0x01,
	0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x0a, 0xd5, 0x00, 0x71, 0xc0, 0x0c, 0x00,
	0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x0a, 0xd5, 0x00, 0x9a, 0xc0, 0x0c,
	0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x0a, 0xd5, 0x00, 0x7f, 0xc0,
	0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x0a, 0xd5, 0x00, 0x9b,
	0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x0a, 0xd5, 0x00,
	0x67, 0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x0a, 0xd5,
	0x00, 0x9c, 0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x0a,
	0xd5, 0x00, 0x80, 0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04,
	0x0a, 0xd5, 0x00, 0x9d, 0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x04, 0x0a, 0xd5, 0x00, 0x72, 0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x04, 0x0a, 0xd5, 0x00, 0x9e, 0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x04, 0x0a, 0xd5, 0x00, 0x81, 0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x04, 0x0a, 0xd5, 0x00, 0x9f, 0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x04, 0x0a, 0xd5, 0x00, 0x6b, 0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x0a, 0xd5, 0x00, 0xa0, 0xc0, 0x0c, 0x00, 0x01, 0x00,
	0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x0a, 0xd5, 0x00, 0x82, 0xc0, 0x0c, 0x00, 0x01,
	0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x0a, 0xd5, 0x00, 0xa1, 0xc0, 0x0c, 0x00,
	0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x0a, 0xd5, 0x00, 0x73, 0xc0, 0x0c,
	0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x0a, 0xd5, 0x00, 0xa2, 0xc0,
	0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x0a, 0xd5, 0x00, 0x83,
	0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x0a, 0xd5, 0x00,
	0xa3, 0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x0a, 0xd5,
	0x00, 0x64};

static const uint8_t cap_nxdomain[] = {
	0x33, 0x33, 0x81, 0x83, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x04, 0x6e, 0x6f,
	0x70, 0x65, 0x07, 0x64, 0x65, 0x66, 0x61, 0x75, 0x6c, 0x74, 0x03, 0x73, 0x76, 0x63, 0x07,
	0x63, 0x6c, 0x75, 0x73, 0x74, 0x65, 0x72, 0x05, 0x6c, 0x6f, 0x63, 0x61, 0x6c, 0x00, 0x00,
	0x01, 0x00, 0x01, 0x00, 0x00, 0x29, 0x04, 0xd0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};

TEST(captured_srv_answer)
{
	struct dns_msg m;
	struct buf b = {0};

	REQUIRE(dns_msg_parse(cap_srv_edns, sizeof(cap_srv_edns), &m) == 0);
	CHECK_INT(m.hdr.id, ==, 0x1111);
	CHECK(m.hdr.qr && m.hdr.aa && m.hdr.rd && m.edns);
	CHECK_INT(m.ancount, ==, 1);
	CHECK_INT(m.arcount, ==, 3);
	CHECK_STR(m.qd[0].name, "_http._tcp.api.default.svc.cluster.local");
	CHECK_INT(m.an[0].kind, ==, DNS_RDATA_SRV);
	CHECK_INT(m.an[0].u.srv.port, ==, 80);
	CHECK_STR(m.an[0].u.srv.target, "api.default.svc.cluster.local");
	CHECK_STR(m.ar[0].name, "api.default.svc.cluster.local");
	char *s = fmt_rr(&m.ar[1]);
	CHECK_STR(s, "api.default.svc.cluster.local. 0 IN AAAA fd00:213::11");
	free(s);
	CHECK_INT(m.edns_udp_size, ==, 1232);
	uint32_t ttl = 1;
	CHECK_INT(dns_msg_min_ttl(&m, &ttl), ==, 0);
	CHECK_UINT(ttl, ==, 0);

	/* rebuilt by us: the same records in the same size (our pointers go to
	 * the question's suffix, dnsmasq's to the SRV target) */
	struct dns_builder bld;
	dns_builder_init(&bld, &b, &m.hdr);
	CHECK_OK(dns_builder_add_question(&bld, m.qd[0].name, m.qd[0].type, m.qd[0].class));
	CHECK_OK(dns_builder_add(&bld, DNS_SECTION_ANSWER, &m.an[0]));
	CHECK_OK(dns_builder_add(&bld, DNS_SECTION_ADDITIONAL, &m.ar[0]));
	CHECK_OK(dns_builder_add(&bld, DNS_SECTION_ADDITIONAL, &m.ar[1]));
	dns_builder_set_edns(&bld, m.ar[2].u.opt.udp_size, false, NULL, 0);
	CHECK_INT(dns_builder_finish(&bld, 0), ==, sizeof(cap_srv_edns));
	struct dns_msg m2;
	REQUIRE(dns_msg_parse(buf_data(&b), buf_len(&b), &m2) == 0);
	REQUIRE(m2.rrcount == m.rrcount);
	for (size_t i = 0; i < m.rrcount; i++) {
		char *x = fmt_rr(&m.rr[i]), *y = fmt_rr(&m2.rr[i]);
		CHECK_STR(x, y);
		free(x);
		free(y);
	}
	dns_msg_done(&m2);
	dns_msg_done(&m);
	buf_done(&b);
}

TEST(captured_truncated_answer)
{
	struct dns_msg m;

	REQUIRE(dns_msg_parse(cap_many_udp, sizeof(cap_many_udp), &m) == 0);
	CHECK(m.hdr.tc && !m.partial);
	CHECK_INT(m.ancount, ==, 29);
	for (unsigned i = 0; i < m.ancount; i++) {
		CHECK_STR(m.an[i].name, "many.default.svc.cluster.local");
		CHECK(m.an[i].kind == DNS_RDATA_A && !memcmp(m.an[i].u.a, "\x0a\xd5\x00", 3));
		CHECK_INT(m.an[i].u.a[3], >=, 100);
	}
	CHECK_INT(dns_msg_min_ttl(&m, &(uint32_t){0}), ==, -ENODATA);
	dns_msg_done(&m);
}

TEST(captured_nxdomain)
{
	struct dns_msg m;

	REQUIRE(dns_msg_parse(cap_nxdomain, sizeof(cap_nxdomain), &m) == 0);
	CHECK_INT(m.hdr.rcode, ==, DNS_RCODE_NXDOMAIN);
	CHECK_STR(m.qd[0].name, "nope.default.svc.cluster.local");
	CHECK_INT(m.ancount + m.nscount, ==, 0);
	CHECK(m.edns);
	CHECK_INT(dns_msg_min_ttl(&m, &(uint32_t){0}), ==, -ENODATA);
	dns_msg_done(&m);
}

TAP_MAIN()
