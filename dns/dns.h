/* dns: the DNS server in the app's network namespace (docs/DESIGN.md).
 *
 * This header is its public interface. The first piece is the wire-format
 * codec (RFC 1035, with RFC 2782 SRV, RFC 3596 AAAA, RFC 6891 EDNS0 and
 * RFC 3597 unknown types): parsing untrusted messages, building queries and
 * responses (with name compression and UDP truncation), and the name, TTL
 * and text helpers the server, its cache and the DNS filter need. No
 * sockets, no loop, no allocation except the one arena of a parsed message;
 * every function may be called from any loop (they keep no global state).
 *
 * Names as text ("presentation format", RFC 1035 §5.1): labels separated by
 * dots; a dot, a backslash or a byte outside 0x21..0x7e inside a label is
 * written \. \\ or \DDD (decimal). Parsed names carry no trailing dot; the
 * root is ".". Names given to this module may end with a dot or not (both
 * mean the same fully-qualified name) and may use the escapes above.
 *
 * Exception to "public structs are opaque": a parsed message is plain
 * read-only data, like the parsed config; only dns_msg_parse() fills it.
 */
#ifndef PODENV_DNS_DNS_H
#define PODENV_DNS_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

/* Limits (RFC 1035 §2.3.4, §4.2.1). */
#define DNS_LABEL_MAX 63
#define DNS_NAME_MAX 255     /* wire bytes, length octets and the root included */
#define DNS_NAME_STRLEN 1024 /* text form of any valid name, NUL included */
#define DNS_UDP_MIN 512	     /* what every client accepts over UDP */
#define DNS_MSG_MAX 65535    /* a TCP message's 16-bit length */
#define DNS_HEADER_SIZE 12

enum dns_type {
	DNS_TYPE_A = 1,
	DNS_TYPE_NS = 2,
	DNS_TYPE_CNAME = 5,
	DNS_TYPE_SOA = 6,
	DNS_TYPE_PTR = 12,
	DNS_TYPE_MX = 15,
	DNS_TYPE_TXT = 16,
	DNS_TYPE_AAAA = 28,
	DNS_TYPE_SRV = 33,
	DNS_TYPE_OPT = 41,
	DNS_TYPE_ANY = 255,
};

#define DNS_CLASS_IN 1

enum dns_opcode {
	DNS_OPCODE_QUERY = 0,
};

enum dns_rcode {
	DNS_RCODE_NOERROR = 0,
	DNS_RCODE_FORMERR = 1,
	DNS_RCODE_SERVFAIL = 2,
	DNS_RCODE_NXDOMAIN = 3,
	DNS_RCODE_NOTIMP = 4,
	DNS_RCODE_REFUSED = 5,
	DNS_RCODE_BADVERS = 16, /* needs EDNS: the upper 8 bits travel in OPT */
};

enum dns_section {
	DNS_SECTION_ANSWER = 0,
	DNS_SECTION_AUTHORITY = 1,
	DNS_SECTION_ADDITIONAL = 2,
};

/* The header's fields. rcode is the full 12-bit value: the header's 4 bits
 * plus, when the message has an OPT record, its 8 extended bits. */
struct dns_header {
	uint16_t id;
	uint8_t opcode; /* 4 bits */
	uint16_t rcode; /* 12 bits */
	bool qr, aa, tc, rd, ra, ad, cd;
};

struct dns_question {
	const char *name;
	uint16_t type;
	uint16_t class;
};

/* What a record's rdata was decoded as. Records of class IN with a type
 * below, and OPT in the additional section, are decoded (and their rdata
 * checked exactly: a wrong length is a malformed message); everything else
 * is DNS_RDATA_RAW, the rdata bytes kept as they were. */
enum dns_rdata_kind {
	DNS_RDATA_RAW = 0,
	DNS_RDATA_A,
	DNS_RDATA_AAAA,
	DNS_RDATA_NAME, /* CNAME, NS, PTR: u.name */
	DNS_RDATA_MX,
	DNS_RDATA_SRV,
	DNS_RDATA_SOA,
	DNS_RDATA_TXT,
	DNS_RDATA_OPT,
};

/* One resource record. For OPT (RFC 6891 §6.1.3) the class and ttl fields
 * keep their raw wire values and u.opt has them decoded. */
struct dns_rr {
	const char *name;
	uint16_t type;
	uint16_t class;
	uint32_t ttl; /* as sent; dns_ttl() applies RFC 2181 §8 */
	enum dns_rdata_kind kind;
	/* The rdata as on the wire. For DNS_RDATA_RAW that is the data; for
	 * decoded kinds it may hold compression pointers into the original
	 * message, so only the u fields are meaningful to rebuild it. */
	const uint8_t *rdata;
	uint16_t rdlen;
	union {
		uint8_t a[4];
		uint8_t aaaa[16];
		const char *name;
		struct {
			uint16_t preference;
			const char *exchange;
		} mx;
		struct {
			uint16_t priority, weight, port;
			const char *target;
		} srv;
		struct {
			const char *mname, *rname;
			uint32_t serial, refresh, retry, expire, minimum;
		} soa;
		/* One or more <length><bytes> character-strings, exactly filling
		 * len bytes (checked); dns_txt_next() walks them. */
		struct {
			const uint8_t *data;
			uint16_t len;
		} txt;
		/* Options as <code><length><value> TLVs (lengths checked). */
		struct {
			uint16_t udp_size; /* raw class value */
			uint8_t ext_rcode, version;
			bool do_bit;
			const uint8_t *options;
			uint16_t options_len;
		} opt;
	} u;
};

/* A parsed message: plain data, every pointer into one arena owned by the
 * struct (released by dns_msg_done). The parse copies what it needs: the
 * input buffer may be freed right after dns_msg_parse returns.
 *
 * rr holds all records in wire order; an, ns and ar point into it (each
 * with its count). The edns_* fields summarise the OPT record, if any
 * (edns_udp_size already raised to 512 as RFC 6891 §6.2.5 asks). */
struct dns_msg {
	struct dns_header hdr;
	struct dns_question *qd;
	uint16_t qdcount;
	struct dns_rr *rr;
	size_t rrcount;
	struct dns_rr *an, *ns, *ar;
	uint16_t ancount, nscount, arcount;
	bool edns;
	uint16_t edns_udp_size;
	uint8_t edns_version;
	bool edns_do;
	bool partial; /* TC was set and the message ended before its counts did */
	void *arena;  /* private */
};

/* --- parsing ----------------------------------------------------------------------------- */

/* Parses the n bytes at p (a whole message, as read from UDP or after a TCP
 * length prefix) into *ret. p is borrowed; on success *ret owns an arena
 * the caller frees with dns_msg_done(). On failure *ret is left empty (and
 * dns_msg_done on it is harmless).
 *
 * Strict: every count, length and pointer is checked and anything that does
 * not fit is refused rather than guessed: compression pointers must point
 * strictly before the place the name was being read from (so they cannot
 * loop) and after the header; names are at most 255 bytes expanded; rdata
 * of decoded kinds must be exactly consumed; at most one OPT record, only
 * in the additional section, owned by the root; no bytes after the last
 * record. One leniency (RFC 2181 §9): a message with TC set may end at a
 * record boundary before its counts are reached; the counts then say what
 * was there and `partial` is set.
 *
 * Returns 0, or -EBADMSG for a malformed message. */
int dns_msg_parse(const uint8_t *p, size_t n, struct dns_msg *ret);

/* Frees what dns_msg_parse allocated; m is empty afterwards. NULL is fine. */
void dns_msg_done(struct dns_msg *m);

/* Walks a TXT record's character-strings: *off starts at 0; each call sets
 * *s and *len to the next string and returns 1, or returns 0 at the end.
 * The strings point into the message's arena (not NUL-terminated). */
int dns_txt_next(const struct dns_rr *rr, size_t *off, const uint8_t **s, size_t *len);

/* The UDP size a response to this query may use: 512 without EDNS,
 * otherwise the client's advertised size clamped to [512, max]. */
size_t dns_msg_udp_limit(const struct dns_msg *query, size_t max);

/* For caching: the smallest TTL (RFC 2181 §8: a TTL with the top bit set
 * counts as 0) of a positive answer's answer records; of a negative one
 * (NXDOMAIN, or NOERROR without answers) the SOA's in the authority
 * section, min(its TTL, its MINIMUM) as RFC 2308 §5 says. Returns 0 and
 * sets *ttl, or -ENODATA when the message must not be cached (another
 * rcode, TC set, a negative answer without SOA). */
int dns_msg_min_ttl(const struct dns_msg *m, uint32_t *ttl);

/* A record's TTL as RFC 2181 §8 asks to read it (top bit set = 0). */
static inline uint32_t dns_ttl(uint32_t ttl)
{
	return ttl & 0x80000000u ? 0 : ttl;
}

/* --- building ---------------------------------------------------------------------------- */

/* Appends a query for name/qtype/class IN to out: id as given, opcode
 * QUERY, RD as given, one question; with edns_udp_size > 0 an OPT record
 * advertising that size (DO clear). Returns the message's length, or
 * -EINVAL for an invalid name (out is then unchanged). */
int dns_query_build(uint16_t id, const char *name, uint16_t qtype, bool rd, uint16_t edns_udp_size,
		    struct buf *out);

/* Builds one message at the end of a struct buf: the header and questions
 * first, then records in section order (answer, authority, additional),
 * then dns_builder_finish(). Owner names and the names inside CNAME, NS,
 * PTR, MX and SOA rdata are compressed against names already written
 * (case-insensitively, RFC 1035 §4.1.4); SRV targets are not compressed
 * (RFC 2782) but may be pointed to.
 *
 * The builder borrows out (which must outlive it and must not be touched
 * by anyone else until finish) and allocates nothing beyond out's growth;
 * it needs no cleanup. To drop an unfinished message, the caller
 * truncates out back to b.start. Call dns_builder_finish once. */
struct dns_builder {
	struct buf *out;
	size_t start; /* offset of the message in out's readable bytes */
	struct dns_header hdr;
	uint16_t count[4]; /* questions, answer, authority, additional */
	int section;	   /* the last section written to (-1: questions) */
	bool edns, edns_do;
	uint16_t edns_udp_size;
	const uint8_t *edns_options; /* borrowed until finish */
	uint16_t edns_options_len;
	uint16_t ncomp;
	uint16_t comp[128]; /* message offsets of names usable as pointer targets */
};

/* Starts a message with header hdr (its counts come from what is added;
 * hdr->tc may be set by finish). */
void dns_builder_init(struct dns_builder *b, struct buf *out, const struct dns_header *hdr);

/* Starts the response to a parsed query: same id and opcode, QR and RA set,
 * RD and CD copied, rcode as given, the query's questions echoed, and if the
 * query had EDNS, an OPT record on the response (udp size DNS_EDNS_UDP_SIZE;
 * change it with dns_builder_set_edns). query is borrowed for the call.
 * Returns 0 or -EINVAL (a question name that cannot be written). */
int dns_response_start(struct dns_builder *b, struct buf *out, const struct dns_msg *query,
		       uint16_t rcode);
#define DNS_EDNS_UDP_SIZE 1232 /* the DNS flag day 2020 size: no IP fragmentation */

/* Adds a question. Only before any record. Returns 0 or -EINVAL. */
int dns_builder_add_question(struct dns_builder *b, const char *name, uint16_t type,
			     uint16_t class);

/* Adds a record to section s from its decoded fields (rr->kind says which:
 * DNS_RDATA_RAW writes rr->rdata/rdlen verbatim). Records go in section
 * order; an OPT record (kind DNS_RDATA_OPT) is not added here but through
 * dns_builder_set_edns. A decoded kind must match rr->type and needs
 * class IN (0 is taken as IN); raw records are written with their class
 * as it is. rr is borrowed for the call.
 * Returns 0, or -EINVAL (a name that cannot be written, a section out of
 * order, a kind that does not match, a malformed TXT, an OPT), or
 * -EMSGSIZE (beyond 65535 bytes). A failed add leaves the message as it
 * was. */
int dns_builder_add(struct dns_builder *b, enum dns_section s, const struct dns_rr *rr);

/* Gives the message an OPT record (written by finish, after every other
 * record, and kept when truncating), or removes it with udp_size 0.
 * options (<code><len><value> TLVs) is borrowed until finish. */
void dns_builder_set_edns(struct dns_builder *b, uint16_t udp_size, bool do_bit,
			  const uint8_t *options, uint16_t options_len);

/* Completes the message: counts and flags into the header, the OPT record
 * last. With limit > 0 (a UDP response: use dns_msg_udp_limit), records
 * that do not fit are dropped from the end, the OPT record always kept; TC
 * is set when an answer or authority record had to go (dropping only
 * additional records does not set it, as servers do). Returns the
 * message's length, or -EMSGSIZE when even the header, questions and OPT
 * exceed limit (or 65535), -EINVAL for an extended rcode without EDNS. */
int dns_builder_finish(struct dns_builder *b, size_t limit);

/* A complete error response (NXDOMAIN, SERVFAIL, REFUSED, ...) to query,
 * echoing its question, appended to out. Returns the length or -errno as
 * dns_builder_finish. */
int dns_response_error(const struct dns_msg *query, uint16_t rcode, struct buf *out);

/* --- names ------------------------------------------------------------------------------- */

/* Converts a text name to uncompressed wire form in out (DNS_NAME_MAX
 * bytes). Returns the wire length, or -EINVAL: empty, an empty label
 * ("a..b", ".a"), a label over 63 bytes, a name over 255 bytes, a bad
 * escape. "." is the root (1 byte). */
int dns_name_to_wire(const char *name, uint8_t out[DNS_NAME_MAX]);

/* Checks name as dns_name_to_wire does. Returns 0 or -EINVAL. */
int dns_name_validate(const char *name);

/* Writes the canonical key form of name to out (size bytes): valid, lower
 * case (ASCII only, RFC 4343), no trailing dot, escapes in their one
 * canonical spelling. Returns its length, -EINVAL (invalid name) or
 * -ENOSPC (out too small; DNS_NAME_STRLEN always suffices). */
int dns_name_normalize(const char *name, char *out, size_t size);

/* Whether two text names are the same DNS name: case-insensitively
 * (RFC 4343), trailing dot and escape spelling ignored. An invalid name
 * equals nothing. */
bool dns_name_equal(const char *a, const char *b);

/* --- text -------------------------------------------------------------------------------- */

/* "A", "AAAA", ... for the types this module knows, else NULL. */
const char *dns_type_name(uint16_t type);
/* A type from its name (case-insensitive) or "TYPEnnn" (RFC 3597 §5).
 * Returns the type, or -EINVAL. */
int dns_type_parse(const char *s);
/* "NOERROR", "NXDOMAIN", ... or NULL. */
const char *dns_rcode_name(uint16_t rcode);

/* Appends rr's rdata in presentation format to out (no NUL): addresses,
 * names with their trailing dot, "10 mx.example.", SRV "prio weight port
 * target.", SOA's seven fields, TXT as quoted escaped strings, OPT as
 * "udp=N version=N do=0|1 ext_rcode=N options=N", anything else as
 * RFC 3597's "\# LEN HEX". */
void dns_rdata_format(const struct dns_rr *rr, struct buf *out);

/* Appends "name. TTL CLASS TYPE rdata" (dig's layout, one space apart). */
void dns_rr_format(const struct dns_rr *rr, struct buf *out);

/* --- the server (server.c) ------------------------------------------------------------- */

struct loop;
struct proto_client;

/* Receives an answer (borrowed, valid during the call). Called exactly once
 * per query that was accepted (a message that is not a query is dropped
 * without a call). */
typedef void (*dns_answer_fn)(void *userdata, const uint8_t *answer, size_t len);

struct dns_server_cfg {
	struct loop *loop;
	struct proto_client *client; /* the pod's resolution (DNS_QUERY); borrowed */
	/* Sockets in the app's namespace (borrowed; -1: none): UDP and a
	 * listening TCP socket on the address resolv.conf names. */
	int udp_fd;
	int tcp_fd;
	/* True when name (normalised) must be resolved by the host's
	 * resolvers (DNS filter, or DNS disabled). NULL: everything remote. */
	bool (*resolve_local)(void *userdata, const char *name);
	/* Every answer that parses (for the outgoing filter's name table). */
	void (*resolved)(void *userdata, const struct dns_msg *answer);
	void *userdata;
};

struct dns_server;

int dns_server_new(const struct dns_server_cfg *cfg, struct dns_server **ret, struct err *reterr);
/* Frees the server; queries in flight are dropped. NULL is fine. */
void dns_server_free(struct dns_server *s);

/* Answers one query that arrived another way (the relay's port-53
 * interception); udp_limit: the transport's size (512 for classic UDP;
 * the query's EDNS size raises it), 0 for no limit. Returns 0 when reply
 * will be called (exactly once, maybe before this returns), -EBADMSG when
 * the message is not a query and was dropped (reply is never called). */
int dns_server_query(struct dns_server *s, const uint8_t *query, size_t len, size_t udp_limit,
		     dns_answer_fn reply, void *userdata);

#endif
