/* HTTP/1.1 request splitting and HTTP filters for incoming traffic
 * (PROTOCOL.md §4.4, research/mirrord.md §4.2).
 *
 * A filtered port's client→server byte stream goes through one
 * agent_http_parser per connection. The parser cuts the stream into whole
 * requests (head, then body framed by Content-Length or the chunked
 * transfer-coding; RFC 9112 §6) so that each request of a kept-alive or
 * pipelined connection can go its own way, and it gives up — without ever
 * guessing — on anything it cannot frame exactly: bytes that are not
 * HTTP/1.x, the HTTP/2 prior-knowledge preface, malformed or oversized
 * heads. Then the caller relays the rest of the connection raw to the
 * pod's own app. Nothing here does I/O; memory per parser is bounded by
 * AGENT_HTTP_HEAD_MAX.
 *
 * The filter is what SUBSCRIBE carries (PROTOCOL.md §4.4 gives the text
 * format): agent_http_filter_format() writes it from the configuration on
 * the launcher's side, agent_http_filter_parse() reads it back and compiles
 * its regexes with config's PCRE2 flags, agent_http_filter_match() tests a
 * request head against it.
 *
 * Nothing here is thread-safe per object; a parsed filter is read-only and
 * may be matched from any thread.
 */
#ifndef PODENV_AGENT_HTTP_H
#define PODENV_AGENT_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "config/config.h"

/* A request head larger than this (leading empty lines, request line,
 * header lines and the empty line) is malformed for us: pass through. */
#define AGENT_HTTP_HEAD_MAX (64 * 1024)
/* At most this many header lines (trailer lines are only counted in bytes). */
#define AGENT_HTTP_HEADERS_MAX 256
/* A chunk-size line (with its extensions) or a trailer section longer
 * than these is malformed. */
#define AGENT_HTTP_CHUNK_LINE_MAX 4096
#define AGENT_HTTP_TRAILERS_MAX (64 * 1024)

/* What one agent_http_parser_feed() step found. */
enum agent_http_event {
	/* Every input byte was taken (into the head being assembled); feed
	 * more when the connection has more. */
	AGENT_HTTP_NEED_MORE = 0,
	/* A request head is complete: agent_http_parser_head(). The used
	 * bytes are its last bytes; forward head->raw, which holds all of
	 * them. */
	AGENT_HTTP_HEAD,
	/* The used bytes are body bytes of the current request (chunk framing
	 * and trailers included): forward them where its head went. */
	AGENT_HTTP_BODY,
	/* The current request ends with the used bytes (maybe 0 of them),
	 * which are forwarded like BODY. The next byte starts a new request. */
	AGENT_HTTP_END,
	/* The request whose head was just returned is CONNECT or an upgrade
	 * (Connection: upgrade + Upgrade): nothing after its head can be
	 * split any more; relay the rest of the connection raw to where that
	 * request went. used is 0. Terminal. */
	AGENT_HTTP_TUNNEL,
	/* Terminal: the connection cannot be split; relay to the pod's own
	 * app agent_http_parser_held() (the bytes of the current request that
	 * were taken but not handed out, including this step's used bytes),
	 * then the input after the used bytes, then the rest of the
	 * connection raw. After a HEAD of this request held() is empty and
	 * used is 0: the request was malformed in its body. */
	AGENT_HTTP_MALFORMED, /* HTTP/1.x, but not well-formed or too large */
	AGENT_HTTP_H2,	      /* the HTTP/2 prior-knowledge preface (PRI * HTTP/2.0) */
	AGENT_HTTP_NOT_HTTP,  /* the first bytes are not an HTTP request line */
};

/* How the body of a request is delimited. */
enum agent_http_framing {
	AGENT_HTTP_NO_BODY = 0, /* no Content-Length, no Transfer-Encoding */
	AGENT_HTTP_LENGTH,	/* Content-Length: content_length bytes */
	AGENT_HTTP_CHUNKED,	/* Transfer-Encoding ending in chunked */
	AGENT_HTTP_UPGRADE,	/* CONNECT or upgrade: the rest of the connection */
	AGENT_HTTP_UNTIL_CLOSE, /* response: until the server closes */
};

struct agent_http_header {
	const char *name; /* as received (not lowercased) */
	size_t name_len;
	const char *value; /* without leading and trailing spaces/tabs */
	size_t value_len;
};

/* A parsed request head. Every pointer points into raw (not
 * NUL-terminated). Borrowed from the parser: valid until the feed() call
 * after this request's END, or until the parser is freed. */
struct agent_http_head {
	const char *raw; /* the head's bytes exactly as received */
	size_t raw_len;
	uint64_t offset; /* stream offset of raw[0] (bytes fed before it) */
	const char *method;
	size_t method_len;
	const char *target; /* request-target as sent */
	size_t target_len;
	/* The path: the target up to '?' (origin-form), the part after the
	 * authority (absolute-form, empty if it has none), "*" for the
	 * asterisk-form, empty for CONNECT's authority-form. */
	const char *path;
	size_t path_len;
	/* After '?', without it; NULL when the target has no '?'. It directly
	 * follows the path, so path..query end is path+query as sent. */
	const char *query;
	size_t query_len;
	int version_minor; /* HTTP/1.<version_minor>: 0 or 1 */
	int status;	   /* responses: the status code (100..599); requests: 0 */
	bool conn_close;   /* a Connection header lists "close" */
	size_t nheaders;
	const struct agent_http_header *headers;
	enum agent_http_framing framing;
	uint64_t content_length; /* for AGENT_HTTP_LENGTH */
};

struct agent_http_parser;

/* A parser for one connection, at the start of its byte stream. Caller
 * frees with agent_http_parser_free(). Allocation failure aborts. */
struct agent_http_parser *agent_http_parser_new(void);
void agent_http_parser_free(struct agent_http_parser *p); /* accepts NULL */

/* A parser for the server's side of a connection: responses, one per
 * request, framed by RFC 9112 §6.3 (1xx interim responses are heads
 * without body: the final one follows; 101 is a TUNNEL; a body without
 * Content-Length or chunked runs to the end of the connection: BODY until
 * the caller sees EOF). The method and target fields of its heads are
 * empty. Call agent_http_parser_expect() before each response. */
struct agent_http_parser *agent_http_parser_new_response(void);
/* Responses only: whether the next response answers a HEAD request (so
 * has no body whatever its headers say). */
void agent_http_parser_expect(struct agent_http_parser *p, bool head_request);

/* Takes one step over data[0..len) (borrowed, may be len 0): sets *used to
 * how many leading bytes the step consumed and returns what it found (an
 * enum agent_http_event). Call in a loop, advancing data by *used, until
 * it returns AGENT_HTTP_NEED_MORE (all input consumed) or a terminal event;
 * after a terminal event every call returns it again with *used 0. Never
 * fails: anything malformed is an event. */
int agent_http_parser_feed(struct agent_http_parser *p, const void *data, size_t len, size_t *used);

/* The head of the current request after AGENT_HTTP_HEAD, else NULL. */
const struct agent_http_head *agent_http_parser_head(const struct agent_http_parser *p);

/* The bytes taken and not handed out (see AGENT_HTTP_MALFORMED); borrowed
 * until the next call. */
const void *agent_http_parser_held(const struct agent_http_parser *p, size_t *len);

/* Why the parser stopped (a static phrase for logs), or NULL. */
const char *agent_http_parser_why(const struct agent_http_parser *p);

/* Bytes consumed so far over the whole connection. */
uint64_t agent_http_parser_offset(const struct agent_http_parser *p);

/* --- filters ----------------------------------------------------------------- */

/* A decoded filter: plain read-only data. kind is CFG_HTTP_HEADER,
 * CFG_HTTP_PATH, CFG_HTTP_METHOD (leaves, value + for the first two re) or
 * CFG_HTTP_ALL_OF, CFG_HTTP_ANY_OF (sub[0..nsub), nsub ≥ 1). */
struct agent_http_filter {
	enum cfg_http_kind kind;
	char *value;
	struct cfg_regex *re;
	size_t nsub;
	struct agent_http_filter *sub;
};

/* Nesting depth and group size accepted by agent_http_filter_parse(). */
#define AGENT_HTTP_FILTER_DEPTH_MAX 8
#define AGENT_HTTP_FILTER_GROUP_MAX 64

/* Writes the configuration's http_filter (its ports excepted: they decide
 * which ports the launcher subscribes with it) as SUBSCRIBE's filter
 * string. Returns 0 with *ret = a new string (caller frees; "" for
 * CFG_HTTP_NONE), -EOPNOTSUPP for a filter the agent cannot apply
 * (header_filter_jq, body_filter), -EINVAL for a value holding a line feed
 * or groups nested or sized beyond the limits above. Borrows f. */
int agent_http_filter_format(const struct cfg_http_filter *f, char **ret);

/* Reads a filter string (s[0..len), borrowed, need not be NUL-terminated)
 * and compiles its regexes caseless as config does. Returns 0 with *ret =
 * a new filter (free with agent_http_filter_free), or NULL for "" (every
 * connection, no filter); -EINVAL with reterr set when it is not in the
 * format or a regex does not compile. */
int agent_http_filter_parse(const char *s, size_t len, struct agent_http_filter **ret,
			    struct err *reterr);
void agent_http_filter_free(struct agent_http_filter *f); /* accepts NULL */

/* Does the request head match f (research/mirrord.md §4.2)? header: some
 * header line rendered "name: value" (name lowercased, as mirrord's hyper
 * gives it) matches; path: the path matches, or the path with its query;
 * method: equal ignoring case; all_of/any_of over sub. Both borrowed. */
bool agent_http_filter_match(const struct agent_http_filter *f, const struct agent_http_head *h);

#endif
