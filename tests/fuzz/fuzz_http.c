/* FUZZ_MODULE agent */
/* Fuzz target for agent/http.c. Input: one control byte, then, when its
 * top bit is set, a SUBSCRIBE filter string up to the first NUL; the rest
 * is a connection's client bytes. The stream is fed once whole and once
 * in pieces whose sizes come from the control byte (1 byte at a time
 * included). Each run must forward exactly the input (head bytes, body
 * bytes, held bytes and the unsplit rest, in order), keep every head's
 * pointers inside its bytes, and both runs must report the same requests
 * and the same end. A filter that parses must format back to the same
 * string, and every head is matched against it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/http.h"
#include "common/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define check(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "fuzz_http: %s:%d: %s\n", __FILE__, __LINE__, #c);         \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

struct trace {
	struct buf out;	   /* everything forwarded, in order */
	struct buf events; /* (event, head offset) per HEAD and END, then the terminal */
	int terminal;
};

static bool inside(const char *p, size_t n, const struct agent_http_head *h)
{
	return p >= h->raw && p + n <= h->raw + h->raw_len;
}

static void check_head(const struct agent_http_head *h, const struct agent_http_filter *f)
{
	check(h->raw_len > 0 && h->raw_len <= AGENT_HTTP_HEAD_MAX);
	check(inside(h->method, h->method_len, h) && h->method_len > 0);
	check(inside(h->target, h->target_len, h) && h->target_len > 0);
	check(h->path >= h->target && h->path + h->path_len <= h->target + h->target_len);
	if (h->query)
		check(h->query == h->path + h->path_len + 1 &&
		      h->query + h->query_len <= h->target + h->target_len);
	check(h->nheaders <= AGENT_HTTP_HEADERS_MAX);
	for (size_t i = 0; i < h->nheaders; i++) {
		check(inside(h->headers[i].name, h->headers[i].name_len, h));
		check(inside(h->headers[i].value, h->headers[i].value_len, h));
	}
	check(h->version_minor == 0 || h->version_minor == 1);
	if (f)
		(void)agent_http_filter_match(f, h);
}

static void run(const uint8_t *d, size_t len, unsigned seed, const struct agent_http_filter *f,
		struct trace *t)
{
	struct agent_http_parser *p = agent_http_parser_new();
	unsigned state = seed;
	size_t off = 0;

	memset(t, 0, sizeof(*t));
	do {
		size_t piece = len - off;
		const uint8_t *c = d + off;

		if (seed == 1) {
			piece = MIN(piece, 1); /* one byte at a time */
		} else if (seed) {
			state = state * 1103515245u + 12345u; /* sizes 1..16 */
			piece = MIN(piece, 1 + ((state >> 16) & 15));
		}
		off += piece;
		for (;;) {
			size_t used = SIZE_MAX, hlen;
			const void *held;
			int ev = agent_http_parser_feed(p, c, piece, &used);
			const struct agent_http_head *h = agent_http_parser_head(p);
			uint64_t rec[2];

			check(used <= piece);
			if (ev == AGENT_HTTP_NEED_MORE) {
				check(used == piece);
				break;
			}
			rec[0] = (uint64_t)ev;
			rec[1] = h ? h->offset : UINT64_MAX;
			if (ev == AGENT_HTTP_HEAD) {
				check(h);
				check_head(h, f);
				buf_append(&t->out, h->raw, h->raw_len);
				buf_append(&t->events, rec, sizeof(rec));
			} else if (ev == AGENT_HTTP_BODY || ev == AGENT_HTTP_END) {
				check(h);
				buf_append(&t->out, c, used);
				if (ev == AGENT_HTTP_END)
					buf_append(&t->events, rec, sizeof(rec));
			} else {
				check(ev >= AGENT_HTTP_TUNNEL && ev <= AGENT_HTTP_NOT_HTTP);
				check(agent_http_parser_why(p));
				held = agent_http_parser_held(p, &hlen);
				check(hlen <= AGENT_HTTP_HEAD_MAX);
				if (h)
					check(hlen == 0 && used == 0);
				buf_append(&t->out, held, hlen);
				buf_append(&t->out, c + used, piece - used);
				buf_append(&t->out, d + off, len - off);
				off = len;
				t->terminal = ev;
				check(agent_http_parser_feed(p, c, piece, &used) == ev &&
				      used == 0);
				break;
			}
			c += used;
			piece -= used;
		}
	} while (off < len && !t->terminal);
	check(t->terminal || agent_http_parser_offset(p) == len);
	if (!t->terminal) {
		/* an unfinished head: its bytes are still held */
		size_t hlen;
		const void *held = agent_http_parser_held(p, &hlen);
		buf_append(&t->out, held, hlen);
	}
	agent_http_parser_free(p);
	check(buf_len(&t->out) == len);
	check(len == 0 || memcmp(buf_data(&t->out), d, len) == 0);
}

/* The agent's filter as the configuration's, for the round trip. */
static void to_cfg(const struct agent_http_filter *a, struct cfg_http_filter *c)
{
	memset(c, 0, sizeof(*c));
	c->kind = a->kind;
	c->value = a->value;
	c->nsub = a->nsub;
	if (a->nsub) {
		c->sub = calloc(a->nsub, sizeof(*c->sub));
		check(c->sub);
	}
	for (size_t i = 0; i < a->nsub; i++)
		to_cfg(&a->sub[i], &c->sub[i]);
}

static void cfg_done(struct cfg_http_filter *c)
{
	for (size_t i = 0; i < c->nsub; i++)
		cfg_done(&c->sub[i]);
	free(c->sub);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct agent_http_filter *f = NULL;
	struct trace whole, pieces;
	unsigned seed;

	if (size < 1)
		return 0;
	seed = data[0] & 0x7f;
	data++;
	size--;
	if (data[-1] & 0x80) {
		const uint8_t *nul = memchr(data, 0, size);
		size_t n = nul ? (size_t)(nul - data) : size;
		struct err e = {0};

		if (agent_http_filter_parse((const char *)data, n, &f, &e) == 0 && f) {
			struct cfg_http_filter c;
			char *s = NULL;

			to_cfg(f, &c);
			check(agent_http_filter_format(&c, &s) == 0);
			check(strlen(s) == n && memcmp(s, data, n) == 0);
			free(s);
			cfg_done(&c);
		}
		data += nul ? n + 1 : n;
		size -= nul ? n + 1 : n;
	}
	run(data, size, 0, f, &whole);
	run(data, size, seed ? seed : 1, f, &pieces);
	check(whole.terminal == pieces.terminal);
	check(buf_len(&whole.events) == buf_len(&pieces.events));
	check(memcmp(buf_data(&whole.events) ? buf_data(&whole.events) : (uint8_t *)"",
		     buf_data(&pieces.events) ? buf_data(&pieces.events) : (uint8_t *)"",
		     buf_len(&whole.events)) == 0);
	buf_done(&whole.out);
	buf_done(&whole.events);
	buf_done(&pieces.out);
	buf_done(&pieces.events);
	agent_http_filter_free(f);
	return 0;
}
