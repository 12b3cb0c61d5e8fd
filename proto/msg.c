/* Message codecs. Requests and their responses are table-driven: each
 * type lists the fields of its request and of its successful response as a
 * string of field codes, in wire order, and one encoder and one decoder
 * walk that string. So a request and its decoding can never disagree, and
 * the table below is the per-type field list of docs/PROTOCOL.md.
 * One-way messages (control, stream data, incoming) are coded by hand.
 *
 * Decoding is strict so that encoding is canonical: every length is
 * checked against the remaining bytes, the payload must be consumed
 * exactly, booleans are 0/1, enums are known values, and a failed
 * response carries no body. The fuzzer relies on encode(decode(x)) == x. */
#include <errno.h>

#include "proto/proto_int.h"

enum op_kind {
	OP_CONTROL,  /* id 0, no RESPONSE flag */
	OP_REQUEST,  /* client→agent request, agent→client response */
	OP_STREAM,   /* either direction, id = stream id */
	OP_INCOMING, /* agent→client, id = an agent stream id */
};

/* Request field codes (struct proto_req):
 *	p path   q path2   n name   x filter      (strings)
 *	h fh     o offset  z size   r rdev        (u64)
 *	f flags  m mode    c count  u uid  g gid  (u32)
 *	a atime  t mtime                         (time: i64 sec, u32 nsec)
 *	d data (blob)   A addr   P port (u16)   k kind (u8)
 * Response field codes (struct proto_rep):
 *	A attr   S statfs  h fh (u64)  c count (u32)  e eof (u8 0/1)
 *	s str    d data (blob)  l list  a addr  P port (u16) */
struct op_desc {
	uint16_t type;
	uint8_t kind;
	const char *name;
	const char *req;
	const char *rep;
};

static const struct op_desc ops[] = {
	{PROTO_HELLO, OP_CONTROL, "HELLO", NULL, NULL},
	{PROTO_WELCOME, OP_CONTROL, "WELCOME", NULL, NULL},
	{PROTO_REFUSE, OP_CONTROL, "REFUSE", NULL, NULL},
	{PROTO_PING, OP_CONTROL, "PING", NULL, NULL},
	{PROTO_PONG, OP_CONTROL, "PONG", NULL, NULL},
	{PROTO_GOODBYE, OP_CONTROL, "GOODBYE", NULL, NULL},

	{PROTO_STAT, OP_REQUEST, "STAT", "pf", "A"},
	{PROTO_FSTAT, OP_REQUEST, "FSTAT", "h", "A"},
	{PROTO_OPEN, OP_REQUEST, "OPEN", "pfm", "hA"},
	{PROTO_OPEN_READ, OP_REQUEST, "OPEN_READ", "pfmc", "hAed"},
	{PROTO_READFILE, OP_REQUEST, "READFILE", "pc", "Aed"},
	{PROTO_READ, OP_REQUEST, "READ", "hoc", "d"},
	{PROTO_WRITE, OP_REQUEST, "WRITE", "hod", "c"},
	{PROTO_TRUNCATE, OP_REQUEST, "TRUNCATE", "pz", "A"},
	{PROTO_FTRUNCATE, OP_REQUEST, "FTRUNCATE", "hz", "A"},
	{PROTO_RELEASE, OP_REQUEST, "RELEASE", "h", ""},
	{PROTO_OPENDIR, OP_REQUEST, "OPENDIR", "p", "h"},
	{PROTO_READDIR, OP_REQUEST, "READDIR", "hoc", "el"},
	{PROTO_READLINK, OP_REQUEST, "READLINK", "p", "s"},
	{PROTO_MKDIR, OP_REQUEST, "MKDIR", "pm", "A"},
	{PROTO_MKNOD, OP_REQUEST, "MKNOD", "pmr", "A"},
	{PROTO_RMDIR, OP_REQUEST, "RMDIR", "p", ""},
	{PROTO_UNLINK, OP_REQUEST, "UNLINK", "p", ""},
	{PROTO_RENAME, OP_REQUEST, "RENAME", "pqf", ""},
	{PROTO_SYMLINK, OP_REQUEST, "SYMLINK", "pq", "A"},
	{PROTO_LINK, OP_REQUEST, "LINK", "pq", "A"},
	{PROTO_CHMOD, OP_REQUEST, "CHMOD", "pm", "A"},
	{PROTO_CHOWN, OP_REQUEST, "CHOWN", "pugf", "A"},
	{PROTO_UTIMENS, OP_REQUEST, "UTIMENS", "patf", "A"},
	{PROTO_STATFS, OP_REQUEST, "STATFS", "p", "S"},
	{PROTO_FSYNC, OP_REQUEST, "FSYNC", "hf", ""},
	{PROTO_GETXATTR, OP_REQUEST, "GETXATTR", "pnc", "cd"},
	{PROTO_LISTXATTR, OP_REQUEST, "LISTXATTR", "pc", "cd"},
	{PROTO_SETXATTR, OP_REQUEST, "SETXATTR", "pndf", ""},
	{PROTO_REMOVEXATTR, OP_REQUEST, "REMOVEXATTR", "pn", ""},
	{PROTO_ACCESS, OP_REQUEST, "ACCESS", "pm", ""},

	{PROTO_GETENV, OP_REQUEST, "GETENV", "", "l"},
	{PROTO_HOSTNAME, OP_REQUEST, "HOSTNAME", "", "s"},
	{PROTO_RESOLVCONF, OP_REQUEST, "RESOLVCONF", "", "d"},
	{PROTO_DNS_RESOLVE, OP_REQUEST, "DNS_RESOLVE", "nk", "sl"},
	{PROTO_DNS_QUERY, OP_REQUEST, "DNS_QUERY", "d", "d"},

	{PROTO_STREAM_OPEN, OP_REQUEST, "STREAM_OPEN", "kAP", "aP"},
	{PROTO_STREAM_DATA, OP_STREAM, "STREAM_DATA", NULL, NULL},
	{PROTO_STREAM_WINDOW, OP_STREAM, "STREAM_WINDOW", NULL, NULL},
	{PROTO_STREAM_SHUTDOWN, OP_STREAM, "STREAM_SHUTDOWN", NULL, NULL},
	{PROTO_STREAM_CLOSE, OP_STREAM, "STREAM_CLOSE", NULL, NULL},
	{PROTO_STREAM_OPEN_UNIX, OP_REQUEST, "STREAM_OPEN_UNIX", "p", ""},

	{PROTO_SUBSCRIBE, OP_REQUEST, "SUBSCRIBE", "Pkx", ""},
	{PROTO_UNSUBSCRIBE, OP_REQUEST, "UNSUBSCRIBE", "P", ""},
	{PROTO_INCOMING, OP_INCOMING, "INCOMING", NULL, NULL},
};

static const struct op_desc *op_find(uint16_t type)
{
	/* The table is short and sorted; a linear scan is cheaper than its
	 * maintenance as an index. */
	for (size_t i = 0; i < ARRAY_SIZE(ops); i++)
		if (ops[i].type == type)
			return &ops[i];
	return NULL;
}

const char *proto_type_name(uint16_t type)
{
	const struct op_desc *d = op_find(type);

	return d ? d->name : NULL;
}

bool proto_type_is_request(uint16_t type)
{
	unsigned range = type >> 8;

	return range == 0x01 || range == 0x02 || range == 0x04;
}

/* --- lists ---------------------------------------------------------------- */

void proto_dirent_put(struct buf *items, const struct proto_dirent *e)
{
	proto_put_u64(items, e->cookie);
	proto_put_u8(items, e->flags);
	proto_put_attr(items, &e->attr);
	proto_put_str(items, e->name);
}

size_t proto_dirent_size(size_t name_len)
{
	return 8 + 1 + PROTO_ATTR_SIZE + 4 + name_len + 1;
}

void proto_dnsaddr_put(struct buf *items, const struct proto_dnsaddr *a)
{
	proto_put_addr(items, &a->addr);
	proto_put_u32(items, a->ttl);
}

static void get_dirent(struct proto_reader *r, struct proto_dirent *e)
{
	e->cookie = proto_get_u64(r);
	e->flags = proto_get_u8(r);
	if (e->flags & ~PROTO_DIRENT_ATTR)
		proto_reader_fail(r);
	proto_get_attr(r, &e->attr);
	e->name = proto_get_str(r);
}

static void get_dnsaddr(struct proto_reader *r, struct proto_dnsaddr *a)
{
	proto_get_addr(r, &a->addr);
	a->ttl = proto_get_u32(r);
}

static void get_item(struct proto_reader *r, uint16_t type)
{
	struct proto_dirent e;
	struct proto_dnsaddr a;

	switch (type) {
	case PROTO_READDIR:
		get_dirent(r, &e);
		break;
	case PROTO_DNS_RESOLVE:
		get_dnsaddr(r, &a);
		break;
	default:
		proto_get_str(r);
		break;
	}
}

struct proto_list proto_get_list(struct proto_reader *r, uint16_t type)
{
	struct proto_list l = {.count = proto_get_u32(r)};
	size_t start = r->off;

	/* Every item takes at least one byte, so a bad count fails within
	 * the payload's length: the loop is bounded by the input. */
	for (uint32_t i = 0; i < l.count && !r->error; i++)
		get_item(r, type);
	if (r->error)
		return (struct proto_list){0};
	l.data = r->p + start;
	l.len = (uint32_t)(r->off - start);
	return l;
}

void proto_put_list(struct buf *b, const struct proto_list *l)
{
	proto_put_u32(b, l->count);
	buf_append(b, l->data, l->len);
}

void proto_iter_init(struct proto_iter *it, const struct proto_list *l)
{
	proto_reader_init(&it->r, l->data, l->len);
	it->left = l->count;
}

int proto_iter_dirent(struct proto_iter *it, struct proto_dirent *e)
{
	if (it->left == 0)
		return 0;
	get_dirent(&it->r, e);
	it->left--;
	return it->r.error ? -EPROTO : 1;
}

int proto_iter_dnsaddr(struct proto_iter *it, struct proto_dnsaddr *a)
{
	if (it->left == 0)
		return 0;
	get_dnsaddr(&it->r, a);
	it->left--;
	return it->r.error ? -EPROTO : 1;
}

int proto_iter_str(struct proto_iter *it, const char **s)
{
	if (it->left == 0)
		return 0;
	*s = proto_get_str(&it->r);
	it->left--;
	return it->r.error ? -EPROTO : 1;
}

/* --- table-driven requests and responses ------------------------------------ */

static void put_req(struct buf *b, const char *spec, const struct proto_req *q)
{
	for (const char *c = spec; *c; c++) {
		switch (*c) {
		case 'p':
			proto_put_str(b, q->path);
			break;
		case 'q':
			proto_put_str(b, q->path2);
			break;
		case 'n':
			proto_put_str(b, q->name);
			break;
		case 'x':
			proto_put_str(b, q->filter);
			break;
		case 'h':
			proto_put_u64(b, q->fh);
			break;
		case 'o':
			proto_put_u64(b, q->offset);
			break;
		case 'z':
			proto_put_u64(b, q->size);
			break;
		case 'r':
			proto_put_u64(b, q->rdev);
			break;
		case 'f':
			proto_put_u32(b, q->flags);
			break;
		case 'm':
			proto_put_u32(b, q->mode);
			break;
		case 'c':
			proto_put_u32(b, q->count);
			break;
		case 'u':
			proto_put_u32(b, q->uid);
			break;
		case 'g':
			proto_put_u32(b, q->gid);
			break;
		case 'a':
			proto_put_time(b, &q->atime);
			break;
		case 't':
			proto_put_time(b, &q->mtime);
			break;
		case 'd':
			proto_put_blob(b, q->data.data, q->data.len);
			break;
		case 'A':
			proto_put_addr(b, &q->addr);
			break;
		case 'P':
			proto_put_u16(b, q->port);
			break;
		case 'k':
			proto_put_u8(b, q->kind);
			break;
		default:
			abort(); /* a typo in the table */
		}
	}
}

static void get_req(struct proto_reader *r, const char *spec, struct proto_req *q)
{
	*q = (struct proto_req){.path = "", .path2 = "", .name = "", .filter = ""};
	for (const char *c = spec; *c; c++) {
		switch (*c) {
		case 'p':
			q->path = proto_get_str(r);
			break;
		case 'q':
			q->path2 = proto_get_str(r);
			break;
		case 'n':
			q->name = proto_get_str(r);
			break;
		case 'x':
			q->filter = proto_get_str(r);
			break;
		case 'h':
			q->fh = proto_get_u64(r);
			break;
		case 'o':
			q->offset = proto_get_u64(r);
			break;
		case 'z':
			q->size = proto_get_u64(r);
			break;
		case 'r':
			q->rdev = proto_get_u64(r);
			break;
		case 'f':
			q->flags = proto_get_u32(r);
			break;
		case 'm':
			q->mode = proto_get_u32(r);
			break;
		case 'c':
			q->count = proto_get_u32(r);
			break;
		case 'u':
			q->uid = proto_get_u32(r);
			break;
		case 'g':
			q->gid = proto_get_u32(r);
			break;
		case 'a':
			q->atime = proto_get_time(r);
			break;
		case 't':
			q->mtime = proto_get_time(r);
			break;
		case 'd':
			q->data = proto_get_blob(r);
			break;
		case 'A':
			proto_get_addr(r, &q->addr);
			break;
		case 'P':
			q->port = proto_get_u16(r);
			break;
		case 'k':
			q->kind = proto_get_u8(r);
			break;
		default:
			abort();
		}
	}
}

static void put_rep(struct buf *b, const char *spec, const struct proto_rep *p)
{
	for (const char *c = spec; *c; c++) {
		switch (*c) {
		case 'A':
			proto_put_attr(b, &p->attr);
			break;
		case 'S':
			proto_put_statfs(b, &p->statfs);
			break;
		case 'h':
			proto_put_u64(b, p->fh);
			break;
		case 'c':
			proto_put_u32(b, p->count);
			break;
		case 'e':
			proto_put_u8(b, p->eof ? 1 : 0);
			break;
		case 's':
			proto_put_str(b, p->str);
			break;
		case 'd':
			proto_put_blob(b, p->data.data, p->data.len);
			break;
		case 'l':
			proto_put_list(b, &p->list);
			break;
		case 'a':
			proto_put_addr(b, &p->addr);
			break;
		case 'P':
			proto_put_u16(b, p->port);
			break;
		default:
			abort();
		}
	}
}

static void get_rep(struct proto_reader *r, const char *spec, uint16_t type, struct proto_rep *p)
{
	*p = (struct proto_rep){.str = ""};
	for (const char *c = spec; *c; c++) {
		switch (*c) {
		case 'A':
			proto_get_attr(r, &p->attr);
			break;
		case 'S':
			proto_get_statfs(r, &p->statfs);
			break;
		case 'h':
			p->fh = proto_get_u64(r);
			break;
		case 'c':
			p->count = proto_get_u32(r);
			break;
		case 'e':
			p->eof = proto_get_bool(r);
			break;
		case 's':
			p->str = proto_get_str(r);
			break;
		case 'd':
			p->data = proto_get_blob(r);
			break;
		case 'l':
			p->list = proto_get_list(r, type);
			break;
		case 'a':
			proto_get_addr(r, &p->addr);
			break;
		case 'P':
			p->port = proto_get_u16(r);
			break;
		default:
			abort();
		}
	}
}

static bool af_valid(uint8_t af)
{
	return af == PROTO_AF_NONE || af == PROTO_AF_INET || af == PROTO_AF_INET6;
}

static bool mode_valid(uint8_t mode)
{
	return mode == PROTO_MIRROR || mode == PROTO_STEAL;
}

/* Value rules beyond the layout, shared by encode (-EINVAL) and decode
 * (-EPROTO). */
static bool req_valid(uint16_t type, const struct proto_req *q)
{
	switch (type) {
	case PROTO_DNS_RESOLVE:
		return af_valid(q->kind);
	case PROTO_STREAM_OPEN:
		return (q->kind == PROTO_STREAM_TCP || q->kind == PROTO_STREAM_UDP) &&
		       (q->addr.family == PROTO_AF_INET || q->addr.family == PROTO_AF_INET6);
	case PROTO_STREAM_OPEN_UNIX:
		/* an absolute path in the target's root, or "@" + an abstract name */
		return q->path && (q->path[0] == '/' || (q->path[0] == '@' && q->path[1]));
	case PROTO_SUBSCRIBE:
		return mode_valid(q->kind);
	default:
		return true;
	}
}

static bool rep_valid(uint16_t type, const struct proto_rep *p)
{
	return type != PROTO_STREAM_OPEN || af_valid(p->addr.family);
}

/* --- one-way messages --------------------------------------------------------- */

static int put_oneway(struct buf *b, const struct proto_msg *m)
{
	const struct proto_incoming *in = &m->incoming;

	switch (m->type) {
	case PROTO_HELLO:
		buf_append(b, PROTO_MAGIC, PROTO_MAGIC_SIZE);
		proto_put_u16(b, m->hello.version_min);
		proto_put_u16(b, m->hello.version_max);
		proto_put_u64(b, m->hello.caps);
		proto_put_u32(b, m->hello.window);
		buf_append(b, m->hello.token, PROTO_TOKEN_SIZE);
		proto_put_str(b, m->hello.name);
		return 0;
	case PROTO_WELCOME:
		proto_put_u16(b, m->welcome.version);
		proto_put_u64(b, m->welcome.caps);
		proto_put_u64(b, m->welcome.session_id);
		proto_put_u32(b, m->welcome.window);
		proto_put_str(b, m->welcome.name);
		return 0;
	case PROTO_REFUSE:
		proto_put_u16(b, m->refuse.reason);
		proto_put_u16(b, m->refuse.version_min);
		proto_put_u16(b, m->refuse.version_max);
		proto_put_str(b, m->refuse.message);
		return 0;
	case PROTO_PING:
	case PROTO_PONG:
		proto_put_u64(b, m->counter);
		return 0;
	case PROTO_GOODBYE:
		proto_put_u32(b, m->goodbye.code);
		proto_put_str(b, m->goodbye.reason);
		return 0;
	case PROTO_STREAM_DATA:
		if (m->data.len > PROTO_CHUNK_MAX)
			return -EMSGSIZE;
		buf_append(b, m->data.data, m->data.len);
		return 0;
	case PROTO_STREAM_WINDOW:
		if (m->window == 0 || m->window > PROTO_WINDOW_MAX)
			return -EINVAL;
		proto_put_u32(b, m->window);
		return 0;
	case PROTO_STREAM_SHUTDOWN:
		return 0;
	case PROTO_STREAM_CLOSE:
		if (m->error < 0 || m->error > PROTO_ERRNO_MAX)
			return -EINVAL;
		proto_put_u32(b, (uint32_t)m->error);
		return 0;
	case PROTO_INCOMING:
		if (!mode_valid(in->mode) || !af_valid(in->remote.family) ||
		    !af_valid(in->local.family))
			return -EINVAL;
		proto_put_u16(b, in->port);
		proto_put_u8(b, in->mode);
		proto_put_addr(b, &in->remote);
		proto_put_u16(b, in->remote_port);
		proto_put_addr(b, &in->local);
		proto_put_u16(b, in->local_port);
		return 0;
	default:
		return -EINVAL;
	}
}

static void get_oneway(struct proto_reader *r, struct proto_msg *m)
{
	struct proto_incoming *in = &m->incoming;
	const uint8_t *p;

	switch (m->type) {
	case PROTO_HELLO:
		p = proto_get_raw(r, PROTO_MAGIC_SIZE);
		if (!p || memcmp(p, PROTO_MAGIC, PROTO_MAGIC_SIZE) != 0) {
			proto_reader_fail(r);
			return;
		}
		m->hello.version_min = proto_get_u16(r);
		m->hello.version_max = proto_get_u16(r);
		m->hello.caps = proto_get_u64(r);
		m->hello.window = proto_get_u32(r);
		p = proto_get_raw(r, PROTO_TOKEN_SIZE);
		if (p)
			memcpy(m->hello.token, p, PROTO_TOKEN_SIZE);
		m->hello.name = proto_get_str(r);
		break;
	case PROTO_WELCOME:
		m->welcome.version = proto_get_u16(r);
		m->welcome.caps = proto_get_u64(r);
		m->welcome.session_id = proto_get_u64(r);
		m->welcome.window = proto_get_u32(r);
		m->welcome.name = proto_get_str(r);
		break;
	case PROTO_REFUSE:
		m->refuse.reason = proto_get_u16(r);
		m->refuse.version_min = proto_get_u16(r);
		m->refuse.version_max = proto_get_u16(r);
		m->refuse.message = proto_get_str(r);
		break;
	case PROTO_PING:
	case PROTO_PONG:
		m->counter = proto_get_u64(r);
		break;
	case PROTO_GOODBYE:
		m->goodbye.code = proto_get_u32(r);
		m->goodbye.reason = proto_get_str(r);
		break;
	case PROTO_STREAM_DATA:
		if (r->len > PROTO_CHUNK_MAX) {
			proto_reader_fail(r);
			return;
		}
		m->data.len = (uint32_t)r->len;
		m->data.data = proto_get_raw(r, r->len);
		break;
	case PROTO_STREAM_WINDOW:
		m->window = proto_get_u32(r);
		if (m->window == 0 || m->window > PROTO_WINDOW_MAX)
			proto_reader_fail(r);
		break;
	case PROTO_STREAM_SHUTDOWN:
		break;
	case PROTO_STREAM_CLOSE: {
		uint32_t e = proto_get_u32(r);

		if (e > PROTO_ERRNO_MAX)
			proto_reader_fail(r);
		m->error = (int32_t)e;
		break;
	}
	case PROTO_INCOMING:
		in->port = proto_get_u16(r);
		in->mode = proto_get_u8(r);
		if (!mode_valid(in->mode))
			proto_reader_fail(r);
		proto_get_addr(r, &in->remote);
		in->remote_port = proto_get_u16(r);
		proto_get_addr(r, &in->local);
		in->local_port = proto_get_u16(r);
		break;
	default:
		proto_reader_fail(r);
		break;
	}
}

/* --- entry points ------------------------------------------------------------ */

/* Header rules per kind: which ids and flags a type may carry. */
static bool header_valid(const struct op_desc *d, uint16_t flags, uint64_t id)
{
	switch (d->kind) {
	case OP_CONTROL:
		return flags == 0 && id == 0;
	case OP_REQUEST:
		if (id == 0)
			return false;
		/* Stream ids name who allocated them. */
		if (d->type == PROTO_STREAM_OPEN || d->type == PROTO_STREAM_OPEN_UNIX)
			return !(id & PROTO_ID_AGENT);
		return true;
	case OP_STREAM:
		return flags == 0 && id != 0;
	case OP_INCOMING:
		return flags == 0 && (id & PROTO_ID_AGENT) && id != PROTO_ID_AGENT;
	}
	return false;
}

int proto_msg_encode(struct buf *b, const struct proto_msg *m)
{
	const struct op_desc *d = op_find(m->type);
	size_t start;
	int r = 0;

	if (!d || !header_valid(d, m->flags, m->id))
		return -EINVAL;
	start = proto_frame_begin(b, m->type, m->flags, m->id);
	if (d->kind != OP_REQUEST) {
		r = put_oneway(b, m);
	} else if (m->flags & PROTO_F_RESPONSE) {
		if (m->status < 0 || m->status > PROTO_ERRNO_MAX)
			r = -EINVAL;
		else if (m->status == 0 && !rep_valid(m->type, &m->rep))
			r = -EINVAL;
		else {
			proto_put_u32(b, (uint32_t)m->status);
			if (m->status == 0)
				put_rep(b, d->rep, &m->rep);
		}
	} else if (!req_valid(m->type, &m->req)) {
		r = -EINVAL;
	} else {
		put_req(b, d->req, &m->req);
	}
	if (r < 0) {
		b->end = b->start + start;
		return r;
	}
	return proto_frame_end(b, start);
}

int proto_msg_decode(const struct proto_frame *f, struct proto_msg *m)
{
	const struct op_desc *d = op_find(f->type);
	struct proto_reader r;

	*m = (struct proto_msg){.type = f->type, .flags = f->flags, .id = f->id};
	if (!d)
		return -EOPNOTSUPP;
	if (!header_valid(d, f->flags, f->id))
		return -EPROTO;
	proto_reader_init(&r, f->payload, f->len);
	if (d->kind != OP_REQUEST) {
		get_oneway(&r, m);
	} else if (f->flags & PROTO_F_RESPONSE) {
		uint32_t status = proto_get_u32(&r);

		if (status > PROTO_ERRNO_MAX)
			return -EPROTO;
		m->status = (int32_t)status;
		if (status == 0) {
			get_rep(&r, d->rep, f->type, &m->rep);
			if (!r.error && !rep_valid(f->type, &m->rep))
				return -EPROTO;
		}
	} else {
		get_req(&r, d->req, &m->req);
		if (!r.error && !req_valid(f->type, &m->req))
			return -EPROTO;
	}
	return proto_reader_done(&r);
}

int proto_msg_check(const struct proto_msg *m, bool from_agent)
{
	const struct op_desc *d = op_find(m->type);
	bool response = m->flags & PROTO_F_RESPONSE;

	if (!d)
		return -EPROTO;
	switch (m->type) {
	case PROTO_HELLO:
		return from_agent ? -EPROTO : 0;
	case PROTO_WELCOME:
	case PROTO_REFUSE:
	case PROTO_INCOMING:
		return from_agent ? 0 : -EPROTO;
	default:
		break;
	}
	if (d->kind == OP_REQUEST)
		return response == from_agent ? 0 : -EPROTO;
	return 0;
}

void proto_msg_error(struct proto_msg *m, const struct proto_msg *req, int err)
{
	if (err < 0)
		err = -err;
	if (err == 0 || err > PROTO_ERRNO_MAX)
		err = EIO;
	*m = (struct proto_msg){
		.type = req->type,
		.flags = PROTO_F_RESPONSE,
		.id = req->id,
		.status = err,
	};
}
