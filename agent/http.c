/* HTTP/1.1 request splitting and filter matching for filtered incoming
 * ports (agent/http.h).
 *
 * The parser is a byte-at-a-time state machine over untrusted input. It
 * must frame requests exactly as the pod's own app will, or a request
 * could hide inside another's body (request smuggling, RFC 9112 §11.2);
 * so it takes the strict side of every MAY in RFC 9112 and hands the
 * connection over unsplit instead: bare CR or LF line ends, obs-fold,
 * whitespace before a header's colon, conflicting Content-Length,
 * Content-Length with Transfer-Encoding, Transfer-Encoding not ending in
 * chunked or in HTTP/1.0. A head is assembled in one buffer bounded by
 * AGENT_HTTP_HEAD_MAX, checked as it arrives only as far as needed to tell
 * non-HTTP bytes early (the method token) and to find its end; the header
 * lines are parsed once it is whole. Bodies are never buffered: only
 * counted, and for chunked, their framing and trailers checked as they
 * stream past.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agent/http.h"
#include "common/buf.h"
#include "common/macro.h"

enum state {
	/* head */
	S_START,    /* before the request line; empty lines allowed (RFC 9112 §2.2) */
	S_START_LF, /* CR of an empty line seen */
	S_METHOD,
	S_TARGET,
	S_STATUS, /* response: the status line */
	S_VERSION,
	S_RL_LF,
	S_LINE_START,
	S_LINE,
	S_LINE_LF,
	S_END_LF,
	S_HEAD_DONE, /* HEAD returned; the next call looks at the framing */
	/* body */
	S_BODY_LEN,
	S_BODY_CLOSE, /* response body delimited by the end of the connection */
	S_CHUNK_SIZE,
	S_CHUNK_BWS,
	S_CHUNK_EXT,
	S_CHUNK_SIZE_LF,
	S_CHUNK_DATA,
	S_CHUNK_DATA_CR,
	S_CHUNK_DATA_LF,
	S_TRAILER_START,
	S_TRAILER_NAME,
	S_TRAILER_VALUE,
	S_TRAILER_LF,
	S_FINAL_LF,
	S_ENDED, /* END returned; the next byte starts a request */
};

/* A method longer than this is not a method: the bytes are not HTTP. */
#define METHOD_MAX 32

struct agent_http_parser {
	enum state state;
	bool response;	   /* parses responses (agent_http_parser_new_response) */
	bool head_request; /* response: the request was HEAD (no body) */
	int terminal; /* the terminal event once reached, else 0 */
	const char *why;
	bool error_pending; /* MALFORMED (why) is the next event */
	uint64_t offset;    /* bytes consumed over the connection */

	/* the head being assembled */
	char *held;
	size_t held_len, held_cap;
	size_t rl_start;    /* held offset of the request line */
	size_t lines_start; /* held offset of the first header line */
	size_t mlen, tlen, vlen, nlines;
	bool have_head;
	uint64_t req_offset; /* stream offset of held[0] */
	struct agent_http_head head;
	struct agent_http_header *hdrs;
	size_t hdrs_cap;

	/* the body */
	uint64_t remaining; /* Content-Length or chunk bytes left */
	unsigned digits;    /* of the chunk size */
	size_t line_len;    /* of the chunk-size line */
	size_t trailer_len;
};

/* tchar (RFC 9110 §5.6.2). */
static bool is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* field-vchar / SP / HTAB (RFC 9110 §5.5), obs-text included. */
static bool is_field_char(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool eq_nocase(const char *a, size_t alen, const char *b)
{
	return alen == strlen(b) && strncasecmp(a, b, alen) == 0;
}

static bool eq(const char *a, size_t alen, const char *b)
{
	return alen == strlen(b) && memcmp(a, b, alen) == 0;
}

struct agent_http_parser *agent_http_parser_new(void)
{
	return xcalloc(1, sizeof(struct agent_http_parser));
}

struct agent_http_parser *agent_http_parser_new_response(void)
{
	struct agent_http_parser *p = agent_http_parser_new();

	p->response = true;
	return p;
}

void agent_http_parser_expect(struct agent_http_parser *p, bool head_request)
{
	p->head_request = head_request;
}

void agent_http_parser_free(struct agent_http_parser *p)
{
	if (!p)
		return;
	free(p->held);
	free(p->hdrs);
	free(p);
}

const struct agent_http_head *agent_http_parser_head(const struct agent_http_parser *p)
{
	return p->have_head ? &p->head : NULL;
}

const void *agent_http_parser_held(const struct agent_http_parser *p, size_t *len)
{
	*len = p->have_head ? 0 : p->held_len;
	return p->held;
}

const char *agent_http_parser_why(const struct agent_http_parser *p)
{
	return p->why;
}

uint64_t agent_http_parser_offset(const struct agent_http_parser *p)
{
	return p->offset;
}

static int step_done(struct agent_http_parser *p, size_t n, size_t *used, int ev)
{
	*used = n;
	p->offset += n;
	return ev;
}

static int stop(struct agent_http_parser *p, size_t n, size_t *used, int ev, const char *why)
{
	p->terminal = ev;
	p->why = why;
	return step_done(p, n, used, ev);
}

/* --- the head ------------------------------------------------------------------ */

/* Splits a comma-separated list value (RFC 9110 §5.6.1) into trimmed
 * elements, empty ones skipped; calls fn for each, stops at its first
 * nonzero return. */
static int list_foreach(const char *v, size_t len, int (*fn)(const char *e, size_t n, void *u),
			void *u)
{
	size_t i = 0;

	while (i < len) {
		size_t s = i, e;
		int r;

		while (i < len && v[i] != ',')
			i++;
		e = i++;
		while (s < e && (v[s] == ' ' || v[s] == '\t'))
			s++;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (s == e)
			continue;
		r = fn(v + s, e - s, u);
		if (r)
			return r;
	}
	return 0;
}

struct framing {
	bool cl_seen;
	uint64_t cl;
	bool te_seen, te_chunked_last, te_bad;
	bool conn_upgrade, conn_close;
	const char *why;
};

static int cl_elem(const char *e, size_t n, void *u)
{
	struct framing *fr = u;
	uint64_t v = 0;

	/* 1*DIGIT; 18 digits cannot overflow. A list of equal values is one
	 * value (RFC 9110 §8.6); differing ones are an error. */
	if (n > 18) {
		fr->why = "Content-Length too large";
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (e[i] < '0' || e[i] > '9') {
			fr->why = "Content-Length not a number";
			return -1;
		}
		v = v * 10 + (uint64_t)(e[i] - '0');
	}
	if (fr->cl_seen && fr->cl != v) {
		fr->why = "conflicting Content-Length";
		return -1;
	}
	fr->cl_seen = true;
	fr->cl = v;
	return 0;
}

static int te_elem(const char *e, size_t n, void *u)
{
	struct framing *fr = u;
	size_t k = 0;

	/* transfer-coding = token *( OWS ";" OWS transfer-parameter ) */
	while (k < n && is_tchar((unsigned char)e[k]))
		k++;
	if (k == 0) {
		fr->why = "bad Transfer-Encoding";
		return -1;
	}
	/* chunked must be the last coding and appear once (RFC 9112 §6.1). */
	if (fr->te_chunked_last) {
		fr->why = "Transfer-Encoding with a coding after chunked";
		return -1;
	}
	fr->te_chunked_last = eq_nocase(e, k, "chunked");
	fr->te_seen = true;
	return 0;
}

static int conn_elem(const char *e, size_t n, void *u)
{
	struct framing *fr = u;

	if (eq_nocase(e, n, "upgrade"))
		fr->conn_upgrade = true;
	else if (eq_nocase(e, n, "close"))
		fr->conn_close = true;
	return 0;
}

/* The path and query of the target (struct agent_http_head's contract). */
static const char *split_target(struct agent_http_head *h)
{
	const char *t = h->target, *end = h->target + h->target_len;
	const char *path, *q;

	if (memchr(t, '#', h->target_len))
		return "fragment in request target";
	if (t[0] == '/') {
		path = t;
	} else if (h->target_len == 1 && t[0] == '*') {
		path = t;
	} else if (eq(h->method, h->method_len, "CONNECT")) {
		h->path = end;
		h->path_len = 0;
		return NULL;
	} else {
		/* absolute-form: scheme "://" authority path-abempty [ "?" query ] */
		const char *c = t;
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z')))
			return "bad request target";
		while (c < end && ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
				   (*c >= '0' && *c <= '9') || *c == '+' || *c == '-' || *c == '.'))
			c++;
		if (end - c < 3 || memcmp(c, "://", 3) != 0)
			return "bad request target";
		c += 3;
		while (c < end && *c != '/' && *c != '?')
			c++;
		path = c;
	}
	q = memchr(path, '?', (size_t)(end - path));
	h->path = path;
	h->path_len = (size_t)((q ? q : end) - path);
	if (q) {
		h->query = q + 1;
		h->query_len = (size_t)(end - q - 1);
	}
	return NULL;
}

/* A response's status line: HTTP-version SP 3DIGIT SP [reason]
 * (RFC 9112 §4; the reason may be absent with its space, as some servers
 * send it). */
static const char *status_parse(struct agent_http_parser *p, struct agent_http_head *h)
{
	const char *l = p->held + p->rl_start;
	size_t len = p->lines_start - 2 - p->rl_start;

	if (len < 12 || memcmp(l, "HTTP/1.", 7) != 0 || l[7] < '0' || l[7] > '9' || l[8] != ' ' ||
	    l[9] < '1' || l[9] > '5' || l[10] < '0' || l[10] > '9' || l[11] < '0' ||
	    l[11] > '9' || (len > 12 && l[12] != ' '))
		return "bad status line";
	h->version_minor = l[7] == '0' ? 0 : 1;
	h->status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
	return NULL;
}

/* Parses the complete head in held[0..held_len); NULL or why it is malformed. */
static const char *head_parse(struct agent_http_parser *p)
{
	struct agent_http_head *h = &p->head;
	struct framing fr = {0};
	bool upgrade_hdr = false;
	const char *why;
	size_t pos, end;

	memset(h, 0, sizeof(*h));
	h->offset = p->req_offset;
	h->raw = p->held;
	h->raw_len = p->held_len;
	if (p->response) {
		why = status_parse(p, h);
		if (why)
			return why;
	} else {
		h->method = p->held + p->rl_start;
		h->method_len = p->mlen;
		h->target = h->method + p->mlen + 1;
		h->target_len = p->tlen;
		/* The version was checked against "HTTP/1.d" on the way in. */
		h->version_minor = h->target[p->tlen + 1 + 7] == '0' ? 0 : 1;
		why = split_target(h);
		if (why)
			return why;
	}

	if (p->hdrs_cap < p->nlines) {
		p->hdrs = xrealloc(p->hdrs, p->nlines * sizeof(*p->hdrs));
		p->hdrs_cap = p->nlines;
	}
	h->headers = p->hdrs;
	/* Every line ends in CRLF (checked while assembling); the last one is
	 * the empty line. */
	end = p->held_len - 2;
	for (pos = p->lines_start; pos < end;) {
		const char *line = p->held + pos;
		const char *lf = memchr(line, '\n', end - pos);
		size_t llen = (size_t)(lf - line) - 1, n = 0, vs, ve;
		struct agent_http_header *hd;

		if (line[0] == ' ' || line[0] == '\t')
			return "obs-fold in header";
		while (n < llen && is_tchar((unsigned char)line[n]))
			n++;
		if (n == 0 || n == llen || line[n] != ':')
			return "bad header name";
		vs = n + 1;
		ve = llen;
		while (vs < ve && (line[vs] == ' ' || line[vs] == '\t'))
			vs++;
		while (ve > vs && (line[ve - 1] == ' ' || line[ve - 1] == '\t'))
			ve--;
		for (size_t i = vs; i < ve; i++)
			if (!is_field_char((unsigned char)line[i]))
				return "bad header value";
		hd = &p->hdrs[h->nheaders++];
		hd->name = line;
		hd->name_len = n;
		hd->value = line + vs;
		hd->value_len = ve - vs;
		pos += llen + 2;

		if (eq_nocase(hd->name, n, "content-length")) {
			if (hd->value_len == 0)
				return "empty Content-Length";
			if (list_foreach(hd->value, hd->value_len, cl_elem, &fr))
				return fr.why;
		} else if (eq_nocase(hd->name, n, "transfer-encoding")) {
			if (hd->value_len == 0)
				return "empty Transfer-Encoding";
			if (list_foreach(hd->value, hd->value_len, te_elem, &fr))
				return fr.why;
		} else if (eq_nocase(hd->name, n, "connection")) {
			list_foreach(hd->value, hd->value_len, conn_elem, &fr);
		} else if (eq_nocase(hd->name, n, "upgrade")) {
			upgrade_hdr = hd->value_len > 0;
		}
	}

	h->conn_close = fr.conn_close;
	if (p->response) {
		/* RFC 9112 §6.3: the order decides, Transfer-Encoding first. */
		if (h->status == 101)
			h->framing = AGENT_HTTP_UPGRADE;
		else if (h->status < 200 || p->head_request || h->status == 204 ||
			 h->status == 304)
			h->framing = AGENT_HTTP_NO_BODY;
		else if (fr.te_seen)
			h->framing = fr.te_chunked_last ? AGENT_HTTP_CHUNKED : AGENT_HTTP_UNTIL_CLOSE;
		else if (fr.cl_seen) {
			h->framing = AGENT_HTTP_LENGTH;
			h->content_length = fr.cl;
		} else
			h->framing = AGENT_HTTP_UNTIL_CLOSE;
		return NULL;
	}
	/* RFC 9112 §6.1, §6.3: a server MAY treat both, or Transfer-Encoding
	 * in HTTP/1.0, as an error — we must, not knowing what the app does. */
	if (fr.te_seen && fr.cl_seen)
		return "both Content-Length and Transfer-Encoding";
	if (fr.te_seen && h->version_minor == 0)
		return "Transfer-Encoding in HTTP/1.0";
	if (fr.te_seen && !fr.te_chunked_last)
		return "Transfer-Encoding not ending in chunked";
	/* Methods are case-sensitive (RFC 9110 §9.1). */
	if (eq(h->method, h->method_len, "CONNECT") || (upgrade_hdr && fr.conn_upgrade))
		h->framing = AGENT_HTTP_UPGRADE;
	else if (fr.te_seen)
		h->framing = AGENT_HTTP_CHUNKED;
	else if (fr.cl_seen) {
		h->framing = AGENT_HTTP_LENGTH;
		h->content_length = fr.cl;
	} else
		h->framing = AGENT_HTTP_NO_BODY;
	return NULL;
}

static void held_push(struct agent_http_parser *p, char c)
{
	if (p->held_len == p->held_cap) {
		p->held_cap = p->held_cap ? MIN(2 * p->held_cap, (size_t)AGENT_HTTP_HEAD_MAX) : 512;
		p->held = xrealloc(p->held, p->held_cap);
	}
	p->held[p->held_len++] = c;
}

static int head_feed(struct agent_http_parser *p, const unsigned char *d, size_t len, size_t *used)
{
	static const char http[] = "HTTP/1.";

	for (size_t i = 0; i < len; i++) {
		unsigned char c = d[i];
		size_t n = i + 1;

		if (p->held_len == AGENT_HTTP_HEAD_MAX)
			return stop(p, i, used, AGENT_HTTP_MALFORMED, "request head too large");
		held_push(p, (char)c);
		switch (p->state) {
		case S_START:
			if (p->response) {
				if (c != 'H')
					return stop(p, n, used, AGENT_HTTP_NOT_HTTP,
						    "not a status line");
				p->rl_start = p->held_len - 1;
				p->vlen = 1;
				p->state = S_STATUS;
			} else if (c == '\r') {
				p->state = S_START_LF;
			} else if (is_tchar(c)) {
				p->rl_start = p->held_len - 1;
				p->mlen = 1;
				p->state = S_METHOD;
			} else {
				return stop(p, n, used, AGENT_HTTP_NOT_HTTP, "not a request line");
			}
			break;
		case S_START_LF:
			if (c != '\n')
				return stop(p, n, used, AGENT_HTTP_NOT_HTTP, "not a request line");
			p->state = S_START;
			break;
		case S_METHOD:
			if (c == ' ') {
				p->tlen = 0;
				p->state = S_TARGET;
			} else if (!is_tchar(c) || ++p->mlen > METHOD_MAX) {
				return stop(p, n, used, AGENT_HTTP_NOT_HTTP, "not a request line");
			}
			break;
		case S_TARGET:
			if (c == ' ' && p->tlen > 0) {
				p->vlen = 0;
				p->state = S_VERSION;
			} else if (c <= ' ' || c == 0x7f) {
				return stop(p, n, used, AGENT_HTTP_MALFORMED, "bad request target");
			} else {
				p->tlen++;
			}
			break;
		case S_VERSION:
			if (c == '\r') {
				if (p->vlen != 8)
					return stop(p, n, used, AGENT_HTTP_MALFORMED,
						    "bad HTTP version");
				const char *m = p->held + p->rl_start;
				const char *v = m + p->mlen + 1 + p->tlen + 1;
				if (memcmp(v, "HTTP/2.0", 8) == 0 && p->mlen == 3 &&
				    memcmp(m, "PRI", 3) == 0 && p->tlen == 1 && m[4] == '*')
					return stop(p, n, used, AGENT_HTTP_H2, "HTTP/2 preface");
				if (memcmp(v, http, 7) != 0 || v[7] < '0' || v[7] > '9')
					return stop(p, n, used, AGENT_HTTP_MALFORMED,
						    "unsupported HTTP version");
				p->state = S_RL_LF;
			} else if (p->vlen >= 8 || c <= ' ' || c >= 0x7f ||
				   (p->vlen < 5 && c != (unsigned char)http[p->vlen])) {
				return stop(p, n, used, AGENT_HTTP_MALFORMED, "bad HTTP version");
			} else {
				p->vlen++;
			}
			break;
		case S_STATUS:
			if (p->vlen < 7 && c != (unsigned char)http[p->vlen])
				return stop(p, n, used, AGENT_HTTP_NOT_HTTP, "not a status line");
			if (c == '\r')
				p->state = S_RL_LF;
			else if ((c < 0x20 && c != '\t') || c == 0x7f)
				return stop(p, n, used, AGENT_HTTP_MALFORMED, "bad status line");
			p->vlen++;
			break;
		case S_RL_LF:
		case S_LINE_LF:
			if (c != '\n')
				return stop(p, n, used, AGENT_HTTP_MALFORMED, "bare CR");
			if (p->state == S_RL_LF)
				p->lines_start = p->held_len;
			p->state = S_LINE_START;
			break;
		case S_LINE_START:
			if (c == '\r') {
				p->state = S_END_LF;
				break;
			}
			if (c == '\n')
				return stop(p, n, used, AGENT_HTTP_MALFORMED, "bare LF");
			if (++p->nlines > AGENT_HTTP_HEADERS_MAX)
				return stop(p, n, used, AGENT_HTTP_MALFORMED, "too many headers");
			p->state = S_LINE;
			break;
		case S_LINE:
			if (c == '\r')
				p->state = S_LINE_LF;
			else if (c == '\n')
				return stop(p, n, used, AGENT_HTTP_MALFORMED, "bare LF");
			break;
		case S_END_LF: {
			const char *why;
			if (c != '\n')
				return stop(p, n, used, AGENT_HTTP_MALFORMED, "bare CR");
			why = head_parse(p);
			if (why)
				return stop(p, n, used, AGENT_HTTP_MALFORMED, why);
			p->have_head = true;
			p->state = S_HEAD_DONE;
			return step_done(p, n, used, AGENT_HTTP_HEAD);
		}
		default:
			abort();
		}
	}
	return step_done(p, len, used, AGENT_HTTP_NEED_MORE);
}

/* --- the body ------------------------------------------------------------------ */

/* Body bytes d[0..i) are fine and d[i] is not: hand out the good ones
 * first, so that MALFORMED comes with used 0 (the caller's data from d[i]
 * on is the unsplittable rest); the next call reports it. */
static int body_error(struct agent_http_parser *p, size_t i, size_t *used, const char *why)
{
	if (i > 0) {
		p->why = why;
		p->error_pending = true;
		return step_done(p, i, used, AGENT_HTTP_BODY);
	}
	return stop(p, 0, used, AGENT_HTTP_MALFORMED, why);
}

static int chunked_feed(struct agent_http_parser *p, const unsigned char *d, size_t len,
			size_t *used)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = d[i];

		if (p->state == S_CHUNK_DATA) {
			size_t n = (size_t)MIN((uint64_t)(len - i), p->remaining);
			p->remaining -= n;
			i += n;
			if (p->remaining == 0)
				p->state = S_CHUNK_DATA_CR;
			continue;
		}
		if (p->state >= S_CHUNK_SIZE && p->state <= S_CHUNK_SIZE_LF &&
		    ++p->line_len > AGENT_HTTP_CHUNK_LINE_MAX)
			return body_error(p, i, used, "chunk-size line too long");
		if (p->state >= S_TRAILER_START && p->state <= S_FINAL_LF &&
		    ++p->trailer_len > AGENT_HTTP_TRAILERS_MAX)
			return body_error(p, i, used, "trailer section too large");
		switch (p->state) {
		case S_CHUNK_SIZE: {
			int v = hexval(c);
			if (v >= 0) {
				/* 15 hex digits stay below 2^60: no overflow. */
				if (++p->digits > 15)
					goto bad_size;
				p->remaining = p->remaining * 16 + (uint64_t)v;
				break;
			}
			if (p->digits == 0)
				goto bad_size;
			if (c == '\r')
				p->state = S_CHUNK_SIZE_LF;
			else if (c == ';')
				p->state = S_CHUNK_EXT;
			else if (c == ' ' || c == '\t')
				p->state = S_CHUNK_BWS;
			else
				goto bad_size;
			break;
		bad_size:
			return body_error(p, i, used, "bad chunk size");
		}
		case S_CHUNK_BWS:
			/* chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ) */
			if (c == ';')
				p->state = S_CHUNK_EXT;
			else if (c == '\r')
				p->state = S_CHUNK_SIZE_LF;
			else if (c != ' ' && c != '\t')
				return body_error(p, i, used, "bad chunk extension");
			break;
		case S_CHUNK_EXT:
			/* Names, values and quoted-strings hold no CTL, so the
			 * line ends at the first CR, which must precede LF. */
			if (c == '\r')
				p->state = S_CHUNK_SIZE_LF;
			else if (!is_field_char(c))
				return body_error(p, i, used, "bad chunk extension");
			break;
		case S_CHUNK_SIZE_LF:
			if (c != '\n')
				return body_error(p, i, used, "bare CR in chunk-size line");
			if (p->remaining == 0) {
				p->trailer_len = 0;
				p->state = S_TRAILER_START;
			} else {
				p->state = S_CHUNK_DATA;
			}
			break;
		case S_CHUNK_DATA_CR:
			if (c != '\r')
				return body_error(p, i, used, "chunk data not followed by CRLF");
			p->state = S_CHUNK_DATA_LF;
			break;
		case S_CHUNK_DATA_LF:
			if (c != '\n')
				return body_error(p, i, used, "chunk data not followed by CRLF");
			p->digits = 0;
			p->remaining = 0;
			p->line_len = 0;
			p->state = S_CHUNK_SIZE;
			break;
		case S_TRAILER_START:
			if (c == '\r') {
				p->state = S_FINAL_LF;
			} else if (is_tchar(c)) {
				p->state = S_TRAILER_NAME;
			} else
				return body_error(p, i, used, "bad trailer line");
			break;
		case S_TRAILER_NAME:
			if (c == ':') {
				p->state = S_TRAILER_VALUE;
			} else if (!is_tchar(c))
				return body_error(p, i, used, "bad trailer name");
			break;
		case S_TRAILER_VALUE:
			if (c == '\r') {
				p->state = S_TRAILER_LF;
			} else if (!is_field_char(c))
				return body_error(p, i, used, "bad trailer value");
			break;
		case S_TRAILER_LF:
		case S_FINAL_LF:
			if (c != '\n')
				return body_error(p, i, used, "bare CR in trailer section");
			if (p->state == S_FINAL_LF) {
				p->state = S_ENDED;
				return step_done(p, i + 1, used, AGENT_HTTP_END);
			}
			p->state = S_TRAILER_START;
			break;
		default:
			abort();
		}
		i++;
	}
	return step_done(p, len, used, len ? AGENT_HTTP_BODY : AGENT_HTTP_NEED_MORE);
}

int agent_http_parser_feed(struct agent_http_parser *p, const void *data, size_t len, size_t *used)
{
	const unsigned char *d = data;

	*used = 0;
	if (p->terminal)
		return p->terminal;
	if (p->error_pending)
		return stop(p, 0, used, AGENT_HTTP_MALFORMED, p->why);
	if (p->state == S_ENDED) {
		p->held_len = 0;
		p->have_head = false;
		p->mlen = p->tlen = p->vlen = p->nlines = 0;
		p->state = S_START;
	}
	if (p->state == S_HEAD_DONE) {
		switch (p->head.framing) {
		case AGENT_HTTP_NO_BODY:
			p->state = S_ENDED;
			return AGENT_HTTP_END;
		case AGENT_HTTP_LENGTH:
			if (p->head.content_length == 0) {
				p->state = S_ENDED;
				return AGENT_HTTP_END;
			}
			p->remaining = p->head.content_length;
			p->state = S_BODY_LEN;
			break;
		case AGENT_HTTP_CHUNKED:
			p->remaining = 0;
			p->digits = 0;
			p->line_len = 0;
			p->state = S_CHUNK_SIZE;
			break;
		case AGENT_HTTP_UPGRADE:
			return stop(p, 0, used, AGENT_HTTP_TUNNEL, "upgrade or CONNECT");
		case AGENT_HTTP_UNTIL_CLOSE:
			p->state = S_BODY_CLOSE;
			break;
		}
	}
	if (p->state < S_HEAD_DONE) {
		if (p->state == S_START && p->held_len == 0)
			p->req_offset = p->offset;
		return head_feed(p, d, len, used);
	}
	if (p->state == S_BODY_CLOSE)
		return step_done(p, len, used, len ? AGENT_HTTP_BODY : AGENT_HTTP_NEED_MORE);
	if (p->state == S_BODY_LEN) {
		size_t n = (size_t)MIN((uint64_t)len, p->remaining);
		p->remaining -= n;
		if (p->remaining == 0) {
			p->state = S_ENDED;
			return step_done(p, n, used, AGENT_HTTP_END);
		}
		return step_done(p, n, used, n ? AGENT_HTTP_BODY : AGENT_HTTP_NEED_MORE);
	}
	return chunked_feed(p, d, len, used);
}

/* --- filters: the SUBSCRIBE string ------------------------------------------- */

static int format_node(struct buf *b, const struct cfg_http_filter *f, unsigned depth)
{
	const char *kw = NULL;

	switch (f->kind) {
	case CFG_HTTP_HEADER:
		kw = "header";
		break;
	case CFG_HTTP_PATH:
		kw = "path";
		break;
	case CFG_HTTP_METHOD:
		kw = "method";
		break;
	case CFG_HTTP_ALL_OF:
	case CFG_HTTP_ANY_OF:
		if (depth >= AGENT_HTTP_FILTER_DEPTH_MAX || f->nsub == 0 ||
		    f->nsub > AGENT_HTTP_FILTER_GROUP_MAX)
			return -EINVAL;
		buf_printf(b, "%s %zu\n", f->kind == CFG_HTTP_ALL_OF ? "all_of" : "any_of",
			   f->nsub);
		for (size_t i = 0; i < f->nsub; i++) {
			int r = format_node(b, &f->sub[i], depth + 1);
			if (r < 0)
				return r;
		}
		return 0;
	case CFG_HTTP_HEADER_JQ:
	case CFG_HTTP_BODY:
		return -EOPNOTSUPP;
	case CFG_HTTP_NONE:
		return -EINVAL;
	}
	if (!f->value || !*f->value || strchr(f->value, '\n'))
		return -EINVAL;
	buf_printf(b, "%s %s\n", kw, f->value);
	return 0;
}

int agent_http_filter_format(const struct cfg_http_filter *f, char **ret)
{
	struct buf b = {0};
	int r;

	if (f->kind == CFG_HTTP_NONE) {
		*ret = xstrdup("");
		return 0;
	}
	r = format_node(&b, f, 0);
	if (r < 0) {
		buf_done(&b);
		return r;
	}
	*ret = buf_steal(&b, NULL);
	buf_done(&b);
	return 0;
}

static void filter_done(struct agent_http_filter *f)
{
	free(f->value);
	cfg_regex_free(f->re);
	for (size_t i = 0; i < f->nsub; i++)
		filter_done(&f->sub[i]);
	free(f->sub);
}

void agent_http_filter_free(struct agent_http_filter *f)
{
	if (!f)
		return;
	filter_done(f);
	free(f);
}

struct reader {
	const char *s;
	size_t len, pos;
	unsigned line;
};

static int parse_node(struct reader *rd, struct agent_http_filter *f, unsigned depth,
		      struct err *reterr)
{
	const char *line = rd->s + rd->pos, *lf, *sp, *arg;
	size_t llen, kwlen, alen;
	unsigned no = ++rd->line;
	char where[64];

	if (rd->pos == rd->len)
		return err_set(reterr, -EINVAL, "filter line %u: missing (a group is short)", no);
	lf = memchr(line, '\n', rd->len - rd->pos);
	if (!lf)
		return err_set(reterr, -EINVAL, "filter line %u: no line feed at its end", no);
	llen = (size_t)(lf - line);
	rd->pos += llen + 1;
	if (memchr(line, '\0', llen))
		return err_set(reterr, -EINVAL, "filter line %u: NUL byte", no);
	sp = memchr(line, ' ', llen);
	if (!sp || sp + 1 == lf)
		return err_set(reterr, -EINVAL, "filter line %u: expected \"<kind> <value>\"", no);
	kwlen = (size_t)(sp - line);
	arg = sp + 1;
	alen = (size_t)(lf - arg);
	snprintf(where, sizeof(where), "filter line %u", no);

	if (eq(line, kwlen, "all_of") || eq(line, kwlen, "any_of")) {
		unsigned long n = 0;

		if (depth >= AGENT_HTTP_FILTER_DEPTH_MAX)
			return err_set(reterr, -EINVAL, "%s: groups nested deeper than %d", where,
				       AGENT_HTTP_FILTER_DEPTH_MAX);
		for (size_t i = 0; i < alen; i++) {
			if (arg[i] < '0' || arg[i] > '9' || (i == 0 && arg[i] == '0') || i > 3)
				return err_set(reterr, -EINVAL, "%s: expected a count 1..%d", where,
					       AGENT_HTTP_FILTER_GROUP_MAX);
			n = n * 10 + (unsigned long)(arg[i] - '0');
		}
		if (n > AGENT_HTTP_FILTER_GROUP_MAX)
			return err_set(reterr, -EINVAL, "%s: expected a count 1..%d", where,
				       AGENT_HTTP_FILTER_GROUP_MAX);
		f->kind = line[1] == 'l' ? CFG_HTTP_ALL_OF : CFG_HTTP_ANY_OF;
		f->sub = xcalloc(n, sizeof(*f->sub));
		for (size_t i = 0; i < n; i++) {
			int r = parse_node(rd, &f->sub[f->nsub++], depth + 1, reterr);
			if (r < 0)
				return r;
		}
		return 0;
	}
	if (eq(line, kwlen, "header") || eq(line, kwlen, "path")) {
		f->kind = line[0] == 'h' ? CFG_HTTP_HEADER : CFG_HTTP_PATH;
		f->value = xstrndup(arg, alen);
		return cfg_regex_new(f->value, true, &f->re, where, reterr);
	}
	if (eq(line, kwlen, "method")) {
		for (size_t i = 0; i < alen; i++)
			if (!is_tchar((unsigned char)arg[i]))
				return err_set(reterr, -EINVAL, "%s: bad method name", where);
		f->kind = CFG_HTTP_METHOD;
		f->value = xstrndup(arg, alen);
		return 0;
	}
	return err_set(reterr, -EINVAL,
		       "%s: unknown filter \"%.*s\" (expected header, path, method, all_of or "
		       "any_of)",
		       where, (int)MIN(kwlen, (size_t)32), line);
}

int agent_http_filter_parse(const char *s, size_t len, struct agent_http_filter **ret,
			    struct err *reterr)
{
	struct reader rd = {.s = s, .len = len};
	struct agent_http_filter *f;
	int r;

	*ret = NULL;
	if (len == 0)
		return 0;
	f = xcalloc(1, sizeof(*f));
	r = parse_node(&rd, f, 0, reterr);
	if (r >= 0 && rd.pos != len)
		r = err_set(reterr, -EINVAL, "filter line %u: text after the filter", rd.line + 1);
	if (r < 0) {
		agent_http_filter_free(f);
		return r;
	}
	*ret = f;
	return 0;
}

/* --- filters: matching ------------------------------------------------------- */

static bool match_node(const struct agent_http_filter *f, const struct agent_http_head *h,
		       char *scratch)
{
	switch (f->kind) {
	case CFG_HTTP_HEADER:
		for (size_t i = 0; i < h->nheaders; i++) {
			const struct agent_http_header *hd = &h->headers[i];
			size_t n = hd->name_len;

			/* mirrord matches hyper's HeaderName (lowercase), then
			 * ": ", then the value. */
			for (size_t k = 0; k < n; k++) {
				char c = hd->name[k];
				scratch[k] = c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
			}
			scratch[n] = ':';
			scratch[n + 1] = ' ';
			memcpy(scratch + n + 2, hd->value, hd->value_len);
			if (cfg_regex_match(f->re, scratch, n + 2 + hd->value_len))
				return true;
		}
		return false;
	case CFG_HTTP_PATH:
		if (cfg_regex_match(f->re, h->path, h->path_len))
			return true;
		return h->query &&
		       cfg_regex_match(f->re, h->path, (size_t)(h->query + h->query_len - h->path));
	case CFG_HTTP_METHOD:
		return eq_nocase(h->method, h->method_len, f->value);
	case CFG_HTTP_ALL_OF:
		for (size_t i = 0; i < f->nsub; i++)
			if (!match_node(&f->sub[i], h, scratch))
				return false;
		return true;
	case CFG_HTTP_ANY_OF:
		for (size_t i = 0; i < f->nsub; i++)
			if (match_node(&f->sub[i], h, scratch))
				return true;
		return false;
	default:
		return false;
	}
}

bool agent_http_filter_match(const struct agent_http_filter *f, const struct agent_http_head *h)
{
	size_t max = 0;
	bool m;
	char *scratch;

	/* One buffer for every rendered header line; a line is never longer
	 * than the head it came from. */
	for (size_t i = 0; i < h->nheaders; i++)
		max = MAX(max, h->headers[i].name_len + 2 + h->headers[i].value_len);
	scratch = xmalloc(max + 1);
	m = match_node(f, h, scratch);
	free(scratch);
	return m;
}
