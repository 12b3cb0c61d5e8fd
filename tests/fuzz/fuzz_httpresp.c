/* FUZZ_MODULE agent */
/* Fuzz target for agent/http.c's response side (the framing of the app's
 * answers to stolen requests). Input: a control byte (piece sizes, as in
 * fuzz_http), a byte whose bits say which responses answer HEAD requests
 * (bit k for the k-th final response), then the server's bytes. The stream
 * is fed once whole and once in pieces; each run must hand out exactly the
 * input, in order (head bytes, body bytes, held bytes and the unsplit
 * rest), keep every head's pointers inside its bytes and its status in
 * 100..599, and both runs must report the same responses and end. */
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
			fprintf(stderr, "fuzz_httpresp: %s:%d: %s\n", __FILE__, __LINE__, #c);     \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

struct trace {
	struct buf out;	   /* everything handed out, in order */
	struct buf events; /* (event, status) per HEAD and END, then the terminal */
	int terminal;
};

static bool inside(const char *p, size_t n, const struct agent_http_head *h)
{
	return p >= h->raw && p + n <= h->raw + h->raw_len;
}

static void check_head(const struct agent_http_head *h)
{
	check(h->raw_len >= 14 && h->raw_len <= AGENT_HTTP_HEAD_MAX);
	check(memcmp(h->raw, "HTTP/1.", 7) == 0);
	check(h->status >= 100 && h->status <= 599);
	check(h->method_len == 0 && h->target_len == 0);
	check(h->nheaders <= AGENT_HTTP_HEADERS_MAX);
	for (size_t i = 0; i < h->nheaders; i++) {
		check(inside(h->headers[i].name, h->headers[i].name_len, h));
		check(inside(h->headers[i].value, h->headers[i].value_len, h));
	}
	if (h->status == 101)
		check(h->framing == AGENT_HTTP_UPGRADE);
	else if (h->status < 200 || h->status == 204 || h->status == 304)
		check(h->framing == AGENT_HTTP_NO_BODY);
}

static void run(const uint8_t *d, size_t len, unsigned seed, uint8_t heads, struct trace *t)
{
	struct agent_http_parser *p = agent_http_parser_new_response();
	unsigned state = seed, finals = 0;
	size_t off = 0;

	memset(t, 0, sizeof(*t));
	agent_http_parser_expect(p, heads & 1);
	do {
		size_t piece = len - off;
		const uint8_t *c = d + off;

		if (seed == 1) {
			piece = MIN(piece, 1);
		} else if (seed) {
			state = state * 1103515245u + 12345u;
			piece = MIN(piece, 1 + ((state >> 16) & 15));
		}
		off += piece;
		for (;;) {
			size_t used = SIZE_MAX, hlen;
			int ev = agent_http_parser_feed(p, c, piece, &used);
			const struct agent_http_head *h = agent_http_parser_head(p);
			int32_t rec[2];

			check(used <= piece);
			if (ev == AGENT_HTTP_NEED_MORE) {
				check(used == piece);
				break;
			}
			rec[0] = ev;
			rec[1] = h ? h->status : -1;
			if (ev == AGENT_HTTP_HEAD) {
				check(h);
				check_head(h);
				if (heads >> (finals % 8) & 1)
					check(h->status < 200 || h->framing == AGENT_HTTP_NO_BODY ||
					      h->framing == AGENT_HTTP_UPGRADE);
				buf_append(&t->out, h->raw, h->raw_len);
				buf_append(&t->events, rec, sizeof(rec));
			} else if (ev == AGENT_HTTP_BODY || ev == AGENT_HTTP_END) {
				check(h);
				buf_append(&t->out, c, used);
				if (ev == AGENT_HTTP_END) {
					buf_append(&t->events, rec, sizeof(rec));
					if (h->status >= 200) {
						finals++;
						agent_http_parser_expect(p,
									 heads >> (finals % 8) & 1);
					}
				}
			} else {
				const void *held;
				check(ev >= AGENT_HTTP_TUNNEL && ev <= AGENT_HTTP_NOT_HTTP);
				check(ev != AGENT_HTTP_H2);
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
		size_t hlen;
		const void *held = agent_http_parser_held(p, &hlen);
		buf_append(&t->out, held, hlen);
	}
	agent_http_parser_free(p);
	check(buf_len(&t->out) == len);
	check(len == 0 || memcmp(buf_data(&t->out), d, len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct trace whole, pieces;
	unsigned seed;
	uint8_t heads;

	if (size < 2)
		return 0;
	seed = data[0] & 0x7f;
	heads = data[1];
	data += 2;
	size -= 2;
	run(data, size, 0, heads, &whole);
	run(data, size, seed ? seed : 1, heads, &pieces);
	check(whole.terminal == pieces.terminal);
	check(buf_len(&whole.events) == buf_len(&pieces.events));
	check(memcmp(buf_data(&whole.events) ? buf_data(&whole.events) : (uint8_t *)"",
		     buf_data(&pieces.events) ? buf_data(&pieces.events) : (uint8_t *)"",
		     buf_len(&whole.events)) == 0);
	buf_done(&whole.out);
	buf_done(&whole.events);
	buf_done(&pieces.out);
	buf_done(&pieces.events);
	return 0;
}
