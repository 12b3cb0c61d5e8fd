/* The wire protocol between the launcher (`podenv`) and the agent
 * (`podenv-agent`): framing, message codecs, the version handshake with
 * authentication, and per-stream flow-control accounting. The byte-level
 * specification is docs/PROTOCOL.md; this header is its C face.
 *
 * proto is a pure codec: it never touches sockets, FUSE or TUN. Both
 * programs and the fuzzers feed it bytes and get bytes back:
 *
 *	receive:  proto_decoder_reserve()/commit() (read(2) straight into it)
 *	          while ((r = proto_decoder_next(dec, &frame)) > 0)
 *	                  r = proto_msg_decode(&frame, &msg) ... dispatch(msg)
 *	send:     proto_msg_encode(&out, &msg) appends one frame to a struct buf
 *
 * Ownership: every pointer inside a decoded struct proto_msg (strings,
 * byte blobs, lists) borrows from the frame's payload, which lives in the
 * decoder until the next call on that decoder. Copy what must outlive it.
 * Encoding borrows the message and copies into the output buffer.
 *
 * Errors: -EPROTO (malformed), -EMSGSIZE (over a size limit),
 * -EOPNOTSUPP (well-formed frame of a type this version does not know),
 * -EINVAL (a caller passed a message that cannot be encoded).
 * Nothing here allocates except the growth of caller-owned buffers and
 * proto_decoder_new(); nothing logs; nothing is thread-safe, but separate
 * objects may be used from separate threads (the agent's workers encode
 * replies into their own buffers).
 */
#ifndef PODENV_PROTO_PROTO_H
#define PODENV_PROTO_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

/* --- limits and constants (docs/PROTOCOL.md, "Limits") ------------------- */

#define PROTO_VERSION 1 /* the only version this code speaks */
#define PROTO_VERSION_MIN 1
#define PROTO_HEADER_SIZE 16
#define PROTO_IO_MAX (1u << 20)			  /* largest READ/WRITE/OPEN_READ data */
#define PROTO_PAYLOAD_MAX (PROTO_IO_MAX + 16384u) /* data + paths + fields */
#define PROTO_FRAME_MAX (PROTO_HEADER_SIZE + PROTO_PAYLOAD_MAX)
#define PROTO_HELLO_MAX 4096	     /* payload limit before authentication */
#define PROTO_CHUNK_MAX (64u * 1024) /* largest STREAM_DATA payload */
#define PROTO_WINDOW_DEFAULT (256u * 1024)
#define PROTO_WINDOW_MAX 0x7fffffffu /* credit may never exceed this */
#define PROTO_TOKEN_SIZE 32
#define PROTO_MAGIC "podenv\r\n" /* 8 bytes at the start of HELLO */
#define PROTO_MAGIC_SIZE 8
#define PROTO_ERRNO_MAX 4095		   /* status values are 0..4095 */
#define PROTO_OFF_CUR UINT64_MAX	   /* READ/WRITE offset: the file position */
#define PROTO_ID_AGENT (UINT64_C(1) << 63) /* stream ids the agent allocates */

/* Frame flags. Every other bit is reserved and must be zero. */
#define PROTO_F_RESPONSE 0x0001

/* Capability bits (HELLO offers, WELCOME grants the intersection). */
#define PROTO_CAP_FILES (UINT64_C(1) << 0)
#define PROTO_CAP_QUERY (UINT64_C(1) << 1) /* env, hostname, resolv.conf */
#define PROTO_CAP_DNS (UINT64_C(1) << 2)
#define PROTO_CAP_TCP (UINT64_C(1) << 3) /* outgoing TCP streams */
#define PROTO_CAP_UDP (UINT64_C(1) << 4) /* outgoing UDP flows */
#define PROTO_CAP_MIRROR (UINT64_C(1) << 5)
#define PROTO_CAP_STEAL (UINT64_C(1) << 6)
#define PROTO_CAP_UNIX (UINT64_C(1) << 7) /* outgoing unix stream sockets */
#define PROTO_CAP_ALL (UINT64_C(0xff))

/* Message types (u16 on the wire). Grouped by range: 0x00xx control,
 * 0x01xx files, 0x02xx queries, 0x03xx streams, 0x04xx incoming. */
enum proto_type {
	PROTO_HELLO = 0x0001,
	PROTO_WELCOME = 0x0002,
	PROTO_REFUSE = 0x0003,
	PROTO_PING = 0x0004,
	PROTO_PONG = 0x0005,
	PROTO_GOODBYE = 0x0006,

	PROTO_STAT = 0x0101,
	PROTO_FSTAT = 0x0102,
	PROTO_OPEN = 0x0103,
	PROTO_OPEN_READ = 0x0104,
	PROTO_READFILE = 0x0105,
	PROTO_READ = 0x0106,
	PROTO_WRITE = 0x0107,
	PROTO_TRUNCATE = 0x0108,
	PROTO_FTRUNCATE = 0x0109,
	PROTO_RELEASE = 0x010a,
	PROTO_OPENDIR = 0x010b,
	PROTO_READDIR = 0x010c,
	PROTO_READLINK = 0x010d,
	PROTO_MKDIR = 0x010e,
	PROTO_MKNOD = 0x010f,
	PROTO_RMDIR = 0x0110,
	PROTO_UNLINK = 0x0111,
	PROTO_RENAME = 0x0112,
	PROTO_SYMLINK = 0x0113,
	PROTO_LINK = 0x0114,
	PROTO_CHMOD = 0x0115,
	PROTO_CHOWN = 0x0116,
	PROTO_UTIMENS = 0x0117,
	PROTO_STATFS = 0x0118,
	PROTO_FSYNC = 0x0119,
	PROTO_GETXATTR = 0x011a,
	PROTO_LISTXATTR = 0x011b,
	PROTO_SETXATTR = 0x011c,
	PROTO_REMOVEXATTR = 0x011d,
	PROTO_ACCESS = 0x011e,

	PROTO_GETENV = 0x0201,
	PROTO_HOSTNAME = 0x0202,
	PROTO_RESOLVCONF = 0x0203,
	PROTO_DNS_RESOLVE = 0x0204,
	PROTO_DNS_QUERY = 0x0205,

	PROTO_STREAM_OPEN = 0x0301,
	PROTO_STREAM_DATA = 0x0302,
	PROTO_STREAM_WINDOW = 0x0303,
	PROTO_STREAM_SHUTDOWN = 0x0304,
	PROTO_STREAM_CLOSE = 0x0305,
	PROTO_STREAM_OPEN_UNIX = 0x0306,

	PROTO_SUBSCRIBE = 0x0401,
	PROTO_UNSUBSCRIBE = 0x0402,
	PROTO_INCOMING = 0x0403,
};

/* STAT, CHOWN, UTIMENS flags. */
#define PROTO_STAT_NOFOLLOW 0x1
/* FSYNC flags. */
#define PROTO_FSYNC_DATA 0x1
/* READDIR entry flags. */
#define PROTO_DIRENT_ATTR 0x1 /* attr is complete; else only ino and type bits */
/* CHOWN: leave this id unchanged. */
#define PROTO_ID_KEEP UINT32_MAX
/* UTIMENS nsec values, as in utimensat(2). */
#define PROTO_UTIME_NOW ((1u << 30) - 1)
#define PROTO_UTIME_OMIT ((1u << 30) - 2)

/* Address families on the wire (not the host's AF_* values). */
enum proto_af {
	PROTO_AF_NONE = 0,
	PROTO_AF_INET = 4,
	PROTO_AF_INET6 = 6,
};

/* STREAM_OPEN kind. */
enum proto_stream_kind {
	PROTO_STREAM_TCP = 1,
	PROTO_STREAM_UDP = 2,
	PROTO_STREAM_UNIX = 3, /* STREAM_OPEN_UNIX: a unix stream socket in the pod */
};

/* SUBSCRIBE / INCOMING mode. */
enum proto_incoming_mode {
	PROTO_MIRROR = 1,
	PROTO_STEAL = 2,
};

/* GOODBYE codes. */
enum proto_bye {
	PROTO_BYE_NORMAL = 0,
	PROTO_BYE_PROTOCOL = 1, /* the peer sent a malformed or unexpected frame */
	PROTO_BYE_SHUTDOWN = 2, /* the sender is shutting down (SIGTERM) */
	PROTO_BYE_TIMEOUT = 3,	/* no PONG / no traffic for too long */
	PROTO_BYE_INTERNAL = 4,
};

/* REFUSE reasons. */
enum proto_refusal {
	PROTO_REFUSE_MAGIC = 1,	  /* not a podenv client */
	PROTO_REFUSE_VERSION = 2, /* no common protocol version */
	PROTO_REFUSE_AUTH = 3,	  /* wrong token */
	PROTO_REFUSE_BUSY = 4,	  /* too many sessions */
	PROTO_REFUSE_INTERNAL = 5,
};

/* --- plain data ------------------------------------------------------------ */

struct proto_time {
	int64_t sec;
	uint32_t nsec; /* < 1e9, or PROTO_UTIME_NOW/OMIT in UTIMENS */
};

/* File attributes; values are the target's (Linux) stat(2) fields. */
struct proto_attr {
	uint64_t ino;
	uint32_t mode; /* type and permission bits, Linux S_IF* values */
	uint32_t nlink;
	uint32_t uid;
	uint32_t gid;
	uint64_t rdev;
	uint64_t size;
	uint64_t blocks; /* 512-byte units */
	uint32_t blksize;
	struct proto_time atime, mtime, ctime;
};

struct proto_statfs {
	uint64_t blocks, bfree, bavail, files, ffree;
	uint32_t bsize, frsize, namemax;
};

struct proto_addr {
	uint8_t family;	   /* enum proto_af */
	uint8_t bytes[16]; /* 4 used for INET, 16 for INET6, none for NONE */
};

/* A borrowed byte range. */
struct proto_bytes {
	const uint8_t *data;
	uint32_t len;
};

/* A list of encoded items (READDIR entries, env strings, DNS addresses):
 * `count` items in data[0, len). Decoding has validated every item, so
 * iterating (proto_iter_*) a decoded list cannot fail. */
struct proto_list {
	uint32_t count;
	const uint8_t *data;
	uint32_t len;
};

struct proto_dirent {
	uint64_t cookie; /* READDIR offset that continues after this entry */
	uint8_t flags;	 /* PROTO_DIRENT_ATTR */
	struct proto_attr attr;
	const char *name; /* borrowed */
};

struct proto_dnsaddr {
	struct proto_addr addr;
	uint32_t ttl; /* seconds */
};

/* --- messages ------------------------------------------------------------- */

/* The fields of every request (file ops, queries, STREAM_OPEN, SUBSCRIBE,
 * UNSUBSCRIBE). Each type uses a fixed subset, listed per type in
 * docs/PROTOCOL.md and in proto/msg.c's table; unused fields are ignored by
 * the encoder and zeroed by the decoder. Strings are NUL-terminated and
 * never NULL after decoding (the encoder reads NULL as ""). */
struct proto_req {
	const char *path;   /* the file the op acts on (absolute, target's root) */
	const char *path2;  /* RENAME: new path; SYMLINK: target; LINK: new path */
	const char *name;   /* xattr name, DNS name */
	const char *filter; /* SUBSCRIBE: HTTP filter spec, "" = everything */
	uint64_t fh;
	uint64_t offset; /* READ/WRITE position, READDIR cookie */
	uint64_t size;	 /* TRUNCATE/FTRUNCATE length */
	uint64_t rdev;
	uint32_t flags; /* OPEN: Linux O_* flags; others: per type */
	uint32_t mode;	/* OPEN/MKDIR/MKNOD/CHMOD mode; ACCESS mask */
	uint32_t count; /* byte budget: READ, OPEN_READ, READFILE, READDIR, xattr */
	uint32_t uid, gid;
	struct proto_time atime, mtime;
	struct proto_bytes data; /* WRITE, SETXATTR value, DNS_QUERY */
	struct proto_addr addr;	 /* STREAM_OPEN remote address */
	uint16_t port;		 /* STREAM_OPEN remote port, (UN)SUBSCRIBE port */
	uint8_t kind;		 /* STREAM_OPEN kind, SUBSCRIBE mode, DNS_RESOLVE family */
};

/* The fields of every successful response; which ones are present per
 * type is listed like the request's. */
struct proto_rep {
	struct proto_attr attr;
	struct proto_statfs statfs;
	uint64_t fh;
	uint32_t count;		 /* WRITE: bytes written; xattr: full size */
	bool eof;		 /* OPEN_READ/READFILE: data reached end; READDIR: no more */
	const char *str;	 /* READLINK target, HOSTNAME, DNS canonical name */
	struct proto_bytes data; /* READ data, xattr value/names, DNS answer, resolv.conf */
	struct proto_list list;	 /* READDIR, GETENV, DNS_RESOLVE */
	struct proto_addr addr;	 /* STREAM_OPEN local address */
	uint16_t port;
};

struct proto_hello {
	uint16_t version_min, version_max;
	uint64_t caps;
	uint32_t window; /* initial credit the client grants per stream */
	uint8_t token[PROTO_TOKEN_SIZE];
	const char *name; /* free text for logs, e.g. "podenv 0.1" */
};

struct proto_welcome {
	uint16_t version;
	uint64_t caps;
	uint64_t session_id;
	uint32_t window; /* initial credit the agent grants per stream */
	const char *name;
};

struct proto_refuse {
	uint16_t reason;		   /* enum proto_refusal */
	uint16_t version_min, version_max; /* what the agent speaks */
	const char *message;
};

struct proto_goodbye {
	uint32_t code; /* enum proto_bye */
	const char *reason;
};

struct proto_incoming {
	uint16_t port; /* the subscribed port */
	uint8_t mode;  /* enum proto_incoming_mode */
	struct proto_addr remote, local;
	uint16_t remote_port, local_port;
};

/* One message: the frame header fields plus the body for `type`.
 * Responses (flags & PROTO_F_RESPONSE) carry `status`: 0 and `rep`, or a
 * positive Linux errno and no body. */
struct proto_msg {
	uint16_t type;
	uint16_t flags;
	uint64_t id; /* request id, stream id, or 0 for control messages */
	int32_t status;
	union {
		struct proto_req req; /* requests */
		struct proto_rep rep; /* responses with status 0 */
		struct proto_hello hello;
		struct proto_welcome welcome;
		struct proto_refuse refuse;
		uint64_t counter; /* PING, PONG */
		struct proto_goodbye goodbye;
		struct proto_bytes data; /* STREAM_DATA */
		uint32_t window;	 /* STREAM_WINDOW increment */
		int32_t error;		 /* STREAM_CLOSE: 0 or a Linux errno (reset) */
		struct proto_incoming incoming;
	};
};

/* --- encoding helpers (little-endian, docs/PROTOCOL.md "Encoding") ---------- */

void proto_put_u8(struct buf *b, uint8_t v);
void proto_put_u16(struct buf *b, uint16_t v);
void proto_put_u32(struct buf *b, uint32_t v);
void proto_put_u64(struct buf *b, uint64_t v);
/* u32 length, the bytes, a NUL (not counted). NULL is "". */
void proto_put_str(struct buf *b, const char *s);
/* u32 length and the bytes. */
void proto_put_blob(struct buf *b, const void *p, uint32_t len);
void proto_put_attr(struct buf *b, const struct proto_attr *a);
void proto_put_addr(struct buf *b, const struct proto_addr *a);

/* A bounds-checked reader over a borrowed byte range. Errors are sticky:
 * once a read runs past the end (or finds a malformed value) every later
 * read returns zeros and proto_reader_done() reports -EPROTO, so a decoder
 * reads all fields and checks once. */
struct proto_reader {
	const uint8_t *p;
	size_t len;
	size_t off;
	int error;
};

void proto_reader_init(struct proto_reader *r, const void *p, size_t len);
uint8_t proto_get_u8(struct proto_reader *r);
uint16_t proto_get_u16(struct proto_reader *r);
uint32_t proto_get_u32(struct proto_reader *r);
uint64_t proto_get_u64(struct proto_reader *r);
/* Returns a NUL-terminated string borrowed from the range ("" on error):
 * checks the terminating NUL and that no NUL is inside. */
const char *proto_get_str(struct proto_reader *r);
struct proto_bytes proto_get_blob(struct proto_reader *r);
/* n raw bytes; NULL on error. */
const uint8_t *proto_get_raw(struct proto_reader *r, size_t n);
void proto_get_attr(struct proto_reader *r, struct proto_attr *a);
void proto_get_addr(struct proto_reader *r, struct proto_addr *a);
/* 0 if no error occurred and every byte was read, else -EPROTO. */
int proto_reader_done(const struct proto_reader *r);

/* --- frames ---------------------------------------------------------------- */

/* A complete frame; payload borrows from the decoder (or the caller). */
struct proto_frame {
	uint16_t type;
	uint16_t flags;
	uint64_t id;
	uint32_t len;
	const uint8_t *payload;
};

/* Writes the 16-byte header for a payload of `len` bytes into hdr (for
 * writev of large data without copying). */
void proto_header_format(uint8_t hdr[PROTO_HEADER_SIZE], uint16_t type, uint16_t flags, uint64_t id,
			 uint32_t len);
/* Parses a header; -EMSGSIZE if len > max_payload, -EPROTO on reserved flags. */
int proto_header_parse(const uint8_t hdr[PROTO_HEADER_SIZE], uint32_t max_payload,
		       struct proto_frame *f);

/* Building a frame in place: begin appends a header with a placeholder
 * length and returns its position; append the payload with proto_put_*();
 * end patches the length. -EMSGSIZE (and the frame is removed from b) if
 * the payload exceeds PROTO_PAYLOAD_MAX. Nothing may be consumed from b
 * between begin and end. */
size_t proto_frame_begin(struct buf *b, uint16_t type, uint16_t flags, uint64_t id);
int proto_frame_end(struct buf *b, size_t start);

/* The incremental decoder: owns the receive buffer; bytes arrive in any
 * chunking, complete frames come out. After an error it stays failed (the
 * session must end: send GOODBYE and close). */
struct proto_decoder;

/* max_payload: PROTO_HELLO_MAX on the agent until the handshake succeeds,
 * PROTO_PAYLOAD_MAX otherwise. Caller frees with proto_decoder_free(). */
int proto_decoder_new(uint32_t max_payload, struct proto_decoder **ret);
void proto_decoder_free(struct proto_decoder *d);
void proto_decoder_max_set(struct proto_decoder *d, uint32_t max_payload);
/* Copy n bytes in. */
void proto_decoder_feed(struct proto_decoder *d, const void *p, size_t n);
/* Zero-copy receive: room for n bytes (read(2) into it), then commit how
 * many arrived. */
void *proto_decoder_reserve(struct proto_decoder *d, size_t n);
void proto_decoder_commit(struct proto_decoder *d, size_t n);
/* 1 and a frame, 0 when more bytes are needed, -EPROTO or -EMSGSIZE (an
 * oversized frame is rejected as soon as its header arrives). The frame's
 * payload is valid until the next call on d. */
int proto_decoder_next(struct proto_decoder *d, struct proto_frame *f);
/* Bytes buffered and not yet returned as frames. */
size_t proto_decoder_pending(const struct proto_decoder *d);

/* --- messages ---------------------------------------------------------------- */

/* Appends m as one frame to b. 0, or -EINVAL (unknown type, bad field
 * such as an address family), -EMSGSIZE (too large); b is unchanged on
 * error. Borrows m. */
int proto_msg_encode(struct buf *b, const struct proto_msg *m);
/* Decodes a frame into m, whose pointers then borrow from f->payload.
 * Validates every length, that the payload is consumed exactly, enum and
 * boolean values, and id/flag rules per type. -EPROTO malformed,
 * -EOPNOTSUPP unknown type (the receiver answers a request with ENOSYS,
 * see proto_type_is_request()). */
int proto_msg_decode(const struct proto_frame *f, struct proto_msg *m);

/* A readable name ("STAT", "STREAM_DATA"), or NULL for an unknown type. */
const char *proto_type_name(uint16_t type);
/* True for type ranges a receiver answers with ENOSYS when it does not
 * know the type (files, queries, incoming requests). */
bool proto_type_is_request(uint16_t type);
/* Who may send a message: checks direction (from_agent) and the
 * RESPONSE flag against the type. 0 or -EPROTO. */
int proto_msg_check(const struct proto_msg *m, bool from_agent);

/* Fills m as the response header for request `req` with an errno. */
void proto_msg_error(struct proto_msg *m, const struct proto_msg *req, int err);

/* List items: append one item to `items` (the caller counts them), and
 * iterate a decoded list. Iterators return 1 and an item, 0 at the end. */
struct proto_iter {
	struct proto_reader r;
	uint32_t left;
};
void proto_dirent_put(struct buf *items, const struct proto_dirent *e);
/* Encoded size of a dirent with this name length (READDIR budgets). */
size_t proto_dirent_size(size_t name_len);
void proto_dnsaddr_put(struct buf *items, const struct proto_dnsaddr *a);
/* GETENV items are strings ("NAME=value"). */
void proto_iter_init(struct proto_iter *it, const struct proto_list *l);
int proto_iter_dirent(struct proto_iter *it, struct proto_dirent *e);
int proto_iter_dnsaddr(struct proto_iter *it, struct proto_dnsaddr *a);
int proto_iter_str(struct proto_iter *it, const char **s);

/* --- handshake and authentication --------------------------------------------- */

/* Constant-time comparison of two tokens: the time taken does not depend
 * on where they differ. */
bool proto_token_equal(const uint8_t a[PROTO_TOKEN_SIZE], const uint8_t b[PROTO_TOKEN_SIZE]);
/* 64 hex digits (surrounding whitespace allowed, as read from a token
 * file) → token. -EINVAL otherwise. */
int proto_token_parse(const char *hex, uint8_t token[PROTO_TOKEN_SIZE]);
/* Token → 64 lowercase hex digits and a NUL. */
void proto_token_format(const uint8_t token[PROTO_TOKEN_SIZE], char hex[2 * PROTO_TOKEN_SIZE + 1]);

/* Client: fills m with a HELLO offering versions PROTO_VERSION_MIN..
 * PROTO_VERSION. Borrows token and name. */
void proto_hello_init(struct proto_msg *m, const uint8_t token[PROTO_TOKEN_SIZE], uint64_t caps,
		      uint32_t window, const char *name);

struct proto_server_params {
	const uint8_t *token; /* PROTO_TOKEN_SIZE bytes, borrowed */
	uint64_t caps;	      /* what the agent can serve */
	uint64_t session_id;
	uint32_t window;
	const char *name;
};

/* Agent: decides on the decoded first message (which must be a HELLO;
 * NULL when the first frame did not decode, e.g. a wrong magic) and fills
 * reply with a WELCOME or a REFUSE to send. Returns 0 when accepted,
 * else -EPROTO (not a HELLO / bad magic), -EPROTONOSUPPORT (no common
 * version) or -EACCES (wrong token); the agent sends the REFUSE (if
 * reply->type is PROTO_REFUSE) and closes. The token is compared in
 * constant time, and only after the version check passed. reply borrows
 * strings from p. */
int proto_handshake_server(const struct proto_msg *first, const struct proto_server_params *p,
			   struct proto_msg *reply);

/* Client: checks the agent's first message. 0 when it is a WELCOME with a
 * version we speak (then *welcome is a copy; its name borrows from the
 * frame); else a negative errno and a readable reason in reterr
 * (-EACCES: refused for the token, -EPROTONOSUPPORT: version, -ECONNREFUSED:
 * other refusals, -EPROTO: not a handshake reply). */
int proto_handshake_client(const struct proto_msg *first, struct proto_welcome *welcome,
			   struct err *reterr);

/* --- flow control (docs/PROTOCOL.md "Flow control") --------------------------- */

/* Per-stream credit. `send`: bytes we may still send; `recv`: bytes the
 * peer may still send us; `unacked`: bytes we consumed and have not yet
 * returned in a STREAM_WINDOW. */
struct proto_credit {
	uint32_t send;
	uint32_t recv;
	uint32_t window; /* our initial grant, the reference for updates */
	uint32_t unacked;
};

/* send_window: the peer's initial grant (from HELLO/WELCOME); recv_window:
 * ours. */
void proto_credit_init(struct proto_credit *c, uint32_t send_window, uint32_t recv_window);
/* How many of `want` bytes may go into the next STREAM_DATA frame now:
 * min(want, send credit, PROTO_CHUNK_MAX). 0 means wait for a window. */
uint32_t proto_credit_sendable(const struct proto_credit *c, size_t want);
/* Record a sent STREAM_DATA of n bytes (n <= proto_credit_sendable()). */
void proto_credit_sent(struct proto_credit *c, uint32_t n);
/* A STREAM_WINDOW arrived. -EPROTO for 0 or a total above PROTO_WINDOW_MAX. */
int proto_credit_on_window(struct proto_credit *c, uint32_t increment);
/* A STREAM_DATA of n bytes arrived. -EPROTO if it exceeds our grant. */
int proto_credit_on_data(struct proto_credit *c, uint32_t n);
/* The application took n received bytes (written to the socket). Returns
 * the increment to send in a STREAM_WINDOW now, or 0 to wait: updates are
 * batched until half the window is unacknowledged. */
uint32_t proto_credit_consumed(struct proto_credit *c, uint32_t n);

/* --- client session (the launcher's side) ------------------------------------
 *
 * struct proto_client is the launcher's half of one session as a state
 * machine over bytes: the link (launcher/link.c) moves bytes between it and
 * the socket; vfs, vnet and dns call it to make requests and open streams.
 * It implements docs/PROTOCOL.md §6: control frames first, then stream data
 * round-robin, one chunk per stream per turn within the stream's credit.
 *
 * Callbacks run from proto_client_input() (replies, stream events, ready,
 * lost). A callback may make new requests, write to or close streams,
 * but must not free the client. Single-threaded. */

struct proto_client;
struct proto_stream;

struct proto_client_ops {
	/* The handshake succeeded; welcome borrows from the frame. */
	void (*ready)(void *userdata, const struct proto_welcome *welcome);
	/* The session is over: refused, GOODBYE from the agent, or a malformed
	 * frame (err: -EACCES, -EPROTONOSUPPORT, -ECONNREFUSED, -EPROTO,
	 * -ECONNRESET for GOODBYE). reason is readable. Called once. */
	void (*lost)(void *userdata, int err, const char *reason);
	/* Output became available: flush soon. */
	void (*wake)(void *userdata);
};

/* Callback for a request's response: m->status is 0 (m->rep valid) or a
 * positive errno. m borrows from the frame: copy what must outlive it. */
typedef void (*proto_reply_fn)(void *userdata, const struct proto_msg *m);

struct proto_stream_ops {
	/* STREAM_OPEN answered: err 0 (local address and port of the agent's
	 * socket) or a positive errno; on error the stream is freed after. */
	void (*opened)(void *userdata, int err, const struct proto_addr *addr, uint16_t port);
	/* Bytes from the peer. The consumer returns credit with
	 * proto_stream_consumed() once they left its buffers. */
	void (*data)(void *userdata, const uint8_t *p, size_t n);
	/* The peer will send no more (half-close). */
	void (*shutdown)(void *userdata);
	/* The stream is gone (err 0: orderly; else a reset with that errno,
	 * or ECONNABORTED when the session ended). Freed after this returns. */
	void (*closed)(void *userdata, int err);
	/* Room freed in the stream's send queue (after proto_stream_write
	 * accepted less than offered). */
	void (*writable)(void *userdata);
};

/* Caller frees with proto_client_free(), which fails every outstanding
 * request with ECONNABORTED (callbacks called) and closes every stream. */
int proto_client_new(const struct proto_client_ops *ops, void *userdata,
		     struct proto_client **ret);
void proto_client_free(struct proto_client *c);

/* Queues the HELLO. Borrows token and name only for the call. */
void proto_client_start(struct proto_client *c, const uint8_t token[PROTO_TOKEN_SIZE],
			uint64_t caps, const char *name);
bool proto_client_ready(const struct proto_client *c);
/* Capabilities the agent granted (0 before ready). */
uint64_t proto_client_caps(const struct proto_client *c);

/* Input: reserve room, read(2) into it, commit; frames are processed and
 * callbacks called during commit. Returns 0, or a negative errno once the
 * session is over (lost() has been called). */
void *proto_client_input_reserve(struct proto_client *c, size_t n);
int proto_client_input_commit(struct proto_client *c, size_t n);

/* Output: the next bytes to write (schedules control and stream data into
 * an internal buffer of at most about `max` bytes), and how many were
 * written. Returns the length available at *p; 0 means nothing to send. */
size_t proto_client_output(struct proto_client *c, size_t max, const uint8_t **p);
void proto_client_output_consume(struct proto_client *c, size_t n);
/* True when output is waiting (control, or stream data with credit). */
bool proto_client_has_output(const struct proto_client *c);

/* Sends a request (m->type and m->req; id assigned here) and calls cb with
 * the response (cb NULL: the response is not wanted, e.g. RELEASE). Returns the id (> 0) or a negative errno (-EINVAL: cannot
 * encode; -ENOTCONN: session over). */
int64_t proto_client_request(struct proto_client *c, struct proto_msg *m, proto_reply_fn cb,
			     void *userdata);
/* The response to request id will not be delivered (its owner is gone). */
void proto_client_cancel(struct proto_client *c, uint64_t id);
/* Requests sent and not yet answered or cancelled. */
size_t proto_client_pending(const struct proto_client *c);

void proto_client_ping(struct proto_client *c);
/* Frames received so far (a liveness counter for the link's heartbeat). */
uint64_t proto_client_frames_in(const struct proto_client *c);
/* Ends the session from outside (the connection is gone, or its owners
 * are shutting down): lost() is called, then every request and stream
 * fails with ECONNABORTED, while their owners still exist. New requests
 * fail at once. Does nothing when already lost. */
void proto_client_abort(struct proto_client *c, int err, const char *reason);

/* Queues GOODBYE; the link closes after flushing. */
void proto_client_goodbye(struct proto_client *c, uint32_t code, const char *reason);

/* Opens an outgoing stream to addr:port (kind PROTO_STREAM_TCP/UDP).
 * ops->opened() tells the outcome. The stream is freed after closed() (or
 * a failed opened()), or by proto_stream_close(). */
int proto_stream_open(struct proto_client *c, uint8_t kind, const struct proto_addr *addr,
		      uint16_t port, const struct proto_stream_ops *ops, void *userdata,
		      struct proto_stream **ret);
/* Opens a stream to the unix stream socket at path in the pod: absolute in
 * the target's root, or "@name" for an abstract socket (needs
 * PROTO_CAP_UNIX). Then like a TCP stream; opened() gets no address. */
int proto_stream_open_unix(struct proto_client *c, const char *path,
			   const struct proto_stream_ops *ops, void *userdata,
			   struct proto_stream **ret);
/* An INCOMING frame announced stream `id` (docs/PROTOCOL.md §4.4); in
 * borrows from the frame. Take it with proto_stream_accept() before
 * returning, or it is refused (STREAM_CLOSE ECONNREFUSED). */
typedef void (*proto_incoming_fn)(void *userdata, uint64_t id, const struct proto_incoming *in);
/* Sets who takes INCOMING streams (fn NULL: nobody, every one is refused). */
void proto_client_set_incoming(struct proto_client *c, proto_incoming_fn fn, void *userdata);
/* Takes the INCOMING stream `id`, from inside the incoming callback: its
 * frames go to ops from now on (no opened() call: it is open). The stream
 * is freed after closed(), or by proto_stream_close(). Errors: -ENOTCONN
 * session over, -EINVAL not an agent stream id or already taken. */
int proto_stream_accept(struct proto_client *c, uint64_t id, const struct proto_stream_ops *ops,
			void *userdata, struct proto_stream **ret);
/* Queues up to n bytes (UDP: one datagram, all or nothing); returns how
 * many were accepted: less than n when the queue is full (then writable()
 * follows). */
size_t proto_stream_write(struct proto_stream *st, const void *p, size_t n);
/* Bytes the stream would accept now; when 0, writable() follows once
 * there is room. */
size_t proto_stream_write_space(struct proto_stream *st);
/* The consumer took n received bytes: return credit. */
void proto_stream_consumed(struct proto_stream *st, size_t n);
/* Half-close after the queued data. */
void proto_stream_shutdown(struct proto_stream *st);
/* Closes (err 0) or resets (err: a positive errno) after the queued data;
 * no further callbacks; the stream is freed. */
void proto_stream_close(struct proto_stream *st, int err);

#endif
