/* The FUSE filesystem (libfuse low-level API on the launcher's loop).
 *
 * Every operation names a node; a node is an absolute path in the app's
 * view. Each operation routes its path (route.c) and is served either
 * straight from the host (local: the launcher runs in a private copy of
 * the host's mount namespace, so the host path is just the path) or by the
 * agent (remote: an asynchronous proto request, answered to the kernel from
 * the response callback). Nothing blocks the loop on the network; local
 * disk calls are plain syscalls (the local side is the user's own disk).
 *
 * Directory listings merge both sides by the routing rules: a name shows
 * when the side its path routes to has it. A listing is built whole at
 * opendir and served from that snapshot, so offsets stay stable.
 *
 * The FUSE server never touches its own mounts: local paths under the
 * session's private directory (where the mounts live) are refused, or a
 * lookup through them would wait on this very loop.
 */
#define LOG_TARGET "podenv::vfs"
#define FUSE_USE_VERSION 314
#include <dirent.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/loop.h"
#include "common/map.h"
#include "proto/proto.h"
#include "vfs/vfs.h"

#define ATTR_TIMEOUT 1.0
#define ENTRY_TIMEOUT 1.0
#define PREFETCH (128u * 1024)
#define READDIR_BUDGET (256u * 1024)

struct vfs_node {
	fuse_ino_t ino;
	char *path; /* absolute, in the app's view */
	uint64_t nlookup;
	struct vfs_node *hash_next; /* same path hash */
	/* For keep_cache: what the file looked like when last opened. */
	int64_t cached_mtime;
	uint32_t cached_mtime_ns;
	uint64_t cached_size;
};

struct vfs_mount {
	struct loop *loop;
	struct proto_client *client;
	const struct vfs_router *router; /* NULL: the raw pod view */
	bool read_only;
	bool allow_local; /* routed view: local files may be served */
	struct fuse_session *se;
	struct loop_source *src;
	struct fuse_buf fbuf;
	char *mountpoint;
	char *private_prefix; /* local paths under this are ours: refused */
	struct map nodes;     /* ino -> node */
	struct map by_path;   /* path hash -> chain of nodes */
	fuse_ino_t next_ino;
	char **synthetic; /* directories shown empty (mount points) */
	size_t nsynthetic;
	char **anchors; /* local paths whose ancestors must be traversable */
	size_t nanchors;
	struct vfs_file_override *overrides; /* files served from memory */
	size_t noverrides;
	bool gone;	  /* unmounted from outside or FUSE connection ended */
	struct vfs_handle *handles; /* open files (handle_new) */
	/* Paths a skipped process (skip_processes) reached locally while they
	 * route elsewhere for everyone else: one name, two files. The kernel
	 * caches one inode per name, so these are never cached (attribute and
	 * entry timeouts 0, direct I/O). Keyed by path hash. */
	struct map mixed;
	vfs_trace_fn trace;
	void *trace_userdata;
};

/* --- nodes ----------------------------------------------------------------- */

static uint64_t path_hash(const char *p)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return h ? h : 1;
}

static struct vfs_node *node_by_ino(struct vfs_mount *m, fuse_ino_t ino)
{
	return map_get(&m->nodes, ino);
}

static struct vfs_node *node_by_path(struct vfs_mount *m, const char *path)
{
	for (struct vfs_node *n = map_get(&m->by_path, path_hash(path)); n; n = n->hash_next)
		if (!strcmp(n->path, path))
			return n;
	return NULL;
}

static void path_index_add(struct vfs_mount *m, struct vfs_node *n)
{
	uint64_t h = path_hash(n->path);

	n->hash_next = map_get(&m->by_path, h);
	map_put(&m->by_path, h, n);
}

static void path_index_remove(struct vfs_mount *m, struct vfs_node *n)
{
	uint64_t h = path_hash(n->path);
	struct vfs_node *head = map_get(&m->by_path, h), *prev = NULL;

	for (struct vfs_node *p = head; p; prev = p, p = p->hash_next) {
		if (p != n)
			continue;
		if (prev)
			prev->hash_next = p->hash_next;
		else if (p->hash_next)
			map_put(&m->by_path, h, p->hash_next);
		else
			map_remove(&m->by_path, h);
		break;
	}
	n->hash_next = NULL;
}

/* The node for path, created if new; one more lookup reference. */
static struct vfs_node *node_get(struct vfs_mount *m, const char *path)
{
	struct vfs_node *n = node_by_path(m, path);

	if (!n) {
		n = xcalloc(1, sizeof(*n));
		n->ino = m->next_ino++;
		n->path = xstrdup(path);
		map_put(&m->nodes, n->ino, n);
		path_index_add(m, n);
	}
	n->nlookup++;
	return n;
}

static void node_forget(struct vfs_mount *m, struct vfs_node *n, uint64_t count)
{
	if (n->ino == FUSE_ROOT_ID)
		return;
	n->nlookup = count >= n->nlookup ? 0 : n->nlookup - count;
	if (n->nlookup > 0)
		return;
	map_remove(&m->nodes, n->ino);
	path_index_remove(m, n);
	free(n->path);
	free(n);
}

/* After a rename: every node at or below oldp now lives at newp. */
static void nodes_renamed(struct vfs_mount *m, const char *oldp, const char *newp)
{
	size_t ol = strlen(oldp);
	uint64_t key;
	void *v;

	for (size_t pos = 0; map_next(&m->nodes, &pos, &key, &v);) {
		struct vfs_node *n = v;
		if (strncmp(n->path, oldp, ol) != 0 || (n->path[ol] && n->path[ol] != '/'))
			continue;
		path_index_remove(m, n);
		char *p = xasprintf("%s%s", newp, n->path + ol);
		free(n->path);
		n->path = p;
		path_index_add(m, n);
	}
}

static int child_path(const char *parent, const char *name, char out[VFS_PATH_MAX])
{
	int n;

	if (!strcmp(name, ".") || !strcmp(name, "..") || strchr(name, '/'))
		return -EINVAL;
	n = snprintf(out, VFS_PATH_MAX, "%s/%s", strcmp(parent, "/") ? parent : "", name);
	return n >= VFS_PATH_MAX ? -ENAMETOOLONG : 0;
}

/* --- routing ---------------------------------------------------------------- */

static bool is_synthetic(struct vfs_mount *m, const char *path)
{
	for (size_t i = 0; i < m->nsynthetic; i++)
		if (!strcmp(m->synthetic[i], path))
			return true;
	return false;
}

static const struct vfs_file_override *override_of(struct vfs_mount *m, const char *path)
{
	for (size_t i = 0; i < m->noverrides; i++)
		if (!strcmp(m->overrides[i].path, path))
			return &m->overrides[i];
	return NULL;
}

static void override_stat(const struct vfs_file_override *o, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = S_IFREG | 0644;
	st->st_nlink = 1;
	st->st_size = (off_t)strlen(o->content);
	st->st_blksize = 4096;
	st->st_blocks = (st->st_size + 511) / 512;
}

static bool is_anchor_or_ancestor(struct vfs_mount *m, const char *path)
{
	size_t pl = strlen(path);

	for (size_t i = 0; i < m->nanchors; i++) {
		const char *a = m->anchors[i];
		if (!strncmp(a, path, pl) && (a[pl] == '/' || a[pl] == '\0'))
			return true;
	}
	return false;
}

/* Is this process one whose file operations are served locally
 * (skip_processes / skip_build_tools)? Asked per request: a PID's program
 * changes at exec, and the kernel walks the new program's path while the
 * process still runs the old one, so no per-PID answer can be kept. */
static bool caller_skipped(struct vfs_mount *m, fuse_req_t req)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	char path[64], exe[4096];
	ssize_t n;

	if (!m->router || !ctx || ctx->pid <= 0)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)ctx->pid);
	n = readlink(path, exe, sizeof(exe) - 1);
	if (n <= 0)
		return false;
	exe[n] = '\0';
	return vfs_router_skips_process(m->router, exe);
}

/* Decides where path goes for this request. Returns 0 and fills d, or a
 * negative errno to reply with. */
static int route(struct vfs_mount *m, fuse_req_t req, const char *path, unsigned flags,
		 struct vfs_decision *d)
{
	int r;

	if (!m->router) {
		/* The raw pod view: everything remote. */
		d->verdict = m->read_only ? VFS_REMOTE_RO : VFS_REMOTE_RW;
		if (snprintf(d->path, sizeof(d->path), "%s", path) >= (int)sizeof(d->path))
			return -ENAMETOOLONG;
		if ((flags & VFS_ROUTE_WRITE) && m->read_only)
			return -EROFS;
		return 0;
	}
	if (caller_skipped(m, req)) {
		r = vfs_route(m->router, path, flags, d);
		if (r == 0 && m->trace)
			m->trace(m->trace_userdata, path, flags, d, VFS_LOCAL,
				 d->verdict != VFS_LOCAL ? "skip_processes" : NULL);
		if (r == 0 && d->verdict != VFS_LOCAL)
			map_put(&m->mixed, path_hash(path), (void *)1);
		d->verdict = VFS_LOCAL;
		snprintf(d->path, sizeof(d->path), "%s", path);
	} else {
		r = vfs_route(m->router, path, flags, d);
		if (r < 0)
			return r;
		/* The kernel walks a path one component at a time: the
		 * directories above the working directory and the program (both
		 * local) must be there to reach them, whatever their own route. */
		bool anchored = d->verdict != VFS_LOCAL && !(flags & VFS_ROUTE_WRITE) &&
				is_anchor_or_ancestor(m, path);
		if (m->trace)
			m->trace(m->trace_userdata, path, flags, d, anchored ? VFS_LOCAL : d->verdict,
				 anchored ? "traversal anchor" : NULL);
		if (anchored) {
			d->verdict = VFS_LOCAL;
			snprintf(d->path, sizeof(d->path), "%s", path);
		}
	}
	if (d->verdict == VFS_NOT_FOUND)
		return -ENOENT;
	if (d->verdict == VFS_LOCAL) {
		size_t pl = strlen(m->private_prefix);
		if (!strncmp(d->path, m->private_prefix, pl) &&
		    (d->path[pl] == '\0' || d->path[pl] == '/'))
			return -EACCES;
	}
	if (d->verdict == VFS_REMOTE_RO && (flags & VFS_ROUTE_WRITE))
		return -EROFS; /* cannot happen: the router sends writes local */
	return 0;
}

/* --- replies ------------------------------------------------------------------ */

static bool is_mixed(struct vfs_mount *m, const char *path)
{
	return map_len(&m->mixed) && map_get(&m->mixed, path_hash(path));
}

static double attr_timeout(struct vfs_mount *m, const char *path)
{
	return is_mixed(m, path) ? 0.0 : ATTR_TIMEOUT;
}

static void stat_from_attr(struct stat *st, const struct proto_attr *a)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = a->ino;
	st->st_mode = a->mode;
	st->st_nlink = a->nlink;
	st->st_uid = a->uid;
	st->st_gid = a->gid;
	st->st_rdev = a->rdev;
	st->st_size = (off_t)a->size;
	st->st_blocks = (blkcnt_t)a->blocks;
	st->st_blksize = a->blksize;
	st->st_atim = (struct timespec){ a->atime.sec, a->atime.nsec };
	st->st_mtim = (struct timespec){ a->mtime.sec, a->mtime.nsec };
	st->st_ctim = (struct timespec){ a->ctime.sec, a->ctime.nsec };
}

static void synthetic_stat(struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = S_IFDIR | 0755;
	st->st_nlink = 2;
	st->st_blksize = 4096;
}

static void reply_entry(struct vfs_mount *m, fuse_req_t req, const char *path,
			const struct stat *st)
{
	struct fuse_entry_param e = { 0 };
	struct vfs_node *n = node_get(m, path);

	e.ino = n->ino;
	e.attr = *st;
	e.attr_timeout = attr_timeout(m, path);
	e.entry_timeout = is_mixed(m, path) ? 0.0 : ENTRY_TIMEOUT;
	if (fuse_reply_entry(req, &e) != 0)
		node_forget(m, n, 1); /* the kernel did not take it */
}

static int map_err(int status)
{
	/* The link went away: the app sees an I/O error, as on a dead disk. */
	return status == ECONNABORTED ? EIO : status;
}

/* A remote request in flight: what to do with the answer. */
struct vfs_call {
	struct vfs_mount *m;
	fuse_req_t req;
	char path[VFS_PATH_MAX]; /* the node's path (app view) */
	char path2[VFS_PATH_MAX];
	struct fuse_file_info fi;
	bool has_fi;
	int kind;
};

enum { CALL_ENTRY, CALL_ATTR, CALL_EMPTY, CALL_READLINK, CALL_CREATE, CALL_RENAME };

static struct vfs_call *call_new(struct vfs_mount *m, fuse_req_t req, int kind, const char *path)
{
	struct vfs_call *c = xcalloc(1, sizeof(*c));

	c->m = m;
	c->req = req;
	c->kind = kind;
	snprintf(c->path, sizeof(c->path), "%s", path ? path : "");
	return c;
}

struct vfs_handle {
	bool remote;
	int fd;		/* local */
	uint64_t fh;	/* remote */
	uint8_t *prefetch; /* remote: the first bytes, from OPEN_READ */
	uint32_t prefetch_len;
	bool prefetch_eof;
	bool memory; /* an override: nothing on the agent to release */
	/* Every handle is on its mount's list: files still open when the
	 * mount goes away (the kernel sends no RELEASE then) are freed there. */
	struct vfs_handle *prev, *next;
};

static struct vfs_handle *handle_new(struct vfs_mount *m)
{
	struct vfs_handle *h = xcalloc(1, sizeof(*h));

	h->fd = -1;
	h->next = m->handles;
	if (m->handles)
		m->handles->prev = h;
	m->handles = h;
	return h;
}

/* Unlinks and frees h (its fd and remote handle are the caller's). */
static void handle_drop(struct vfs_mount *m, struct vfs_handle *h)
{
	if (h->prev)
		h->prev->next = h->next;
	else
		m->handles = h->next;
	if (h->next)
		h->next->prev = h->prev;
	free(h->prefetch);
	free(h);
}

static void on_reply(void *userdata, const struct proto_msg *msg)
{
	struct vfs_call *c = userdata;
	struct vfs_mount *m = c->m;
	struct stat st;

	if (msg->status) {
		fuse_reply_err(c->req, map_err(msg->status));
		goto out;
	}
	switch (c->kind) {
	case CALL_ENTRY:
		stat_from_attr(&st, &msg->rep.attr);
		reply_entry(m, c->req, c->path, &st);
		break;
	case CALL_ATTR:
		stat_from_attr(&st, &msg->rep.attr);
		fuse_reply_attr(c->req, &st, attr_timeout(m, c->path));
		break;
	case CALL_EMPTY:
		fuse_reply_err(c->req, 0);
		break;
	case CALL_READLINK:
		fuse_reply_readlink(c->req, msg->rep.str);
		break;
	case CALL_RENAME:
		nodes_renamed(m, c->path, c->path2);
		fuse_reply_err(c->req, 0);
		break;
	case CALL_CREATE: {
		struct vfs_handle *h = handle_new(m);
		struct fuse_entry_param e = { 0 };
		struct vfs_node *n = node_get(m, c->path);
		h->remote = true;
		h->fd = -1;
		h->fh = msg->rep.fh;
		stat_from_attr(&e.attr, &msg->rep.attr);
		e.ino = n->ino;
		e.attr_timeout = ATTR_TIMEOUT;
		e.entry_timeout = ENTRY_TIMEOUT;
		c->fi.fh = (uint64_t)(uintptr_t)h;
		if (fuse_reply_create(c->req, &e, &c->fi) != 0) {
			node_forget(m, n, 1);
			handle_drop(m, h);
		}
		break;
	}
	}
out:
	free(c);
}

static void send_call(struct vfs_mount *m, struct vfs_call *c, struct proto_msg *msg)
{
	if (proto_client_request(m->client, msg, on_reply, c) < 0) {
		fuse_reply_err(c->req, EIO);
		free(c);
	}
}

/* --- path helpers --------------------------------------------------------------- */

static const char *node_path(struct vfs_mount *m, fuse_ino_t ino)
{
	struct vfs_node *n = node_by_ino(m, ino);

	return n ? n->path : NULL;
}

#define NODE_OR_REPLY(m, req, ino, var)                                                            \
	const char *var = node_path(m, ino);                                                       \
	if (!var) {                                                                                \
		fuse_reply_err(req, ESTALE);                                                       \
		return;                                                                            \
	}

/* --- operations ------------------------------------------------------------------- */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	/* Large requests: 1 MiB reads and writes, readdirplus, and the page
	 * cache kept across opens when the file did not change. */
	conn->max_write = 1u << 20;
	conn->max_readahead = 1u << 20;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	if (conn->capable & FUSE_CAP_READDIRPLUS_AUTO)
		conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE;
	if (conn->capable & FUSE_CAP_WRITEBACK_CACHE)
		conn->want &= ~FUSE_CAP_WRITEBACK_CACHE; /* remote writes must be seen at once */
	if (conn->capable & FUSE_CAP_EXPORT_SUPPORT)
		conn->want &= ~FUSE_CAP_EXPORT_SUPPORT;
}

static void do_lookup(struct vfs_mount *m, fuse_req_t req, const char *path)
{
	struct vfs_decision d;
	struct stat st;
	int r;

	if (is_synthetic(m, path)) {
		synthetic_stat(&st);
		reply_entry(m, req, path, &st);
		return;
	}
	if (override_of(m, path)) {
		override_stat(override_of(m, path), &st);
		reply_entry(m, req, path, &st);
		return;
	}
	r = route(m, req, path, 0, &d);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	if (d.verdict == VFS_LOCAL) {
		if (lstat(d.path, &st) < 0) {
			fuse_reply_err(req, errno);
			return;
		}
		reply_entry(m, req, path, &st);
		return;
	}
	struct proto_msg msg = { .type = PROTO_STAT };
	msg.req.path = d.path;
	msg.req.flags = PROTO_STAT_NOFOLLOW;
	send_call(m, call_new(m, req, CALL_ENTRY, path), &msg);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct vfs_mount *m = fuse_req_userdata(req);
	char path[VFS_PATH_MAX];
	NODE_OR_REPLY(m, req, parent, ppath);

	if (child_path(ppath, name, path) < 0) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	do_lookup(m, req, path);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct vfs_mount *m = fuse_req_userdata(req);
	struct vfs_node *n = node_by_ino(m, ino);

	if (n)
		node_forget(m, n, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct vfs_mount *m = fuse_req_userdata(req);

	for (size_t i = 0; i < count; i++) {
		struct vfs_node *n = node_by_ino(m, forgets[i].ino);
		if (n)
			node_forget(m, n, forgets[i].nlookup);
	}
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vfs_mount *m = fuse_req_userdata(req);
	struct vfs_decision d;
	struct stat st;
	int r;
	NODE_OR_REPLY(m, req, ino, path);

	if (fi && fi->fh) {
		struct vfs_handle *h = (struct vfs_handle *)(uintptr_t)fi->fh;
		if (!h->remote) {
			if (fstat(h->fd, &st) < 0)
				fuse_reply_err(req, errno);
			else
				fuse_reply_attr(req, &st, ATTR_TIMEOUT);
			return;
		}
	}
	if (ino == FUSE_ROOT_ID && m->router) {
		/* The root is the host's / as a directory; its contents merge. */
		if (lstat("/", &st) < 0)
			fuse_reply_err(req, errno);
		else
			fuse_reply_attr(req, &st, ATTR_TIMEOUT);
		return;
	}
	if (is_synthetic(m, path)) {
		synthetic_stat(&st);
		fuse_reply_attr(req, &st, ATTR_TIMEOUT);
		return;
	}
	if (override_of(m, path)) {
		override_stat(override_of(m, path), &st);
		fuse_reply_attr(req, &st, ATTR_TIMEOUT);
		return;
	}
	r = route(m, req, path, 0, &d);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	if (d.verdict == VFS_LOCAL) {
		if (lstat(d.path, &st) < 0)
			fuse_reply_err(req, errno);
		else
			fuse_reply_attr(req, &st, attr_timeout(m, path));
		return;
	}
	struct proto_msg msg = { .type = PROTO_STAT };
	msg.req.path = d.path;
	msg.req.flags = PROTO_STAT_NOFOLLOW;
	send_call(m, call_new(m, req, CALL_ATTR, path), &msg);
}

/* Remote setattr: one request per attribute group (size, mode, owner,
 * times), in that order; the last answer's attributes go to the kernel. */
struct setattr_call {
	struct vfs_mount *m;
	fuse_req_t req;
	struct stat attr;
	int to_set;
	uint64_t fh;
	bool has_fh;
	char path[VFS_PATH_MAX]; /* remote path */
};

static void setattr_next(struct setattr_call *c);

static void on_setattr_reply(void *userdata, const struct proto_msg *msg)
{
	struct setattr_call *c = userdata;
	struct stat st;

	if (msg->status) {
		fuse_reply_err(c->req, map_err(msg->status));
		free(c);
		return;
	}
	if (c->to_set) {
		setattr_next(c);
		return;
	}
	stat_from_attr(&st, &msg->rep.attr);
	fuse_reply_attr(c->req, &st, ATTR_TIMEOUT);
	free(c);
}

static void setattr_next(struct setattr_call *c)
{
	struct proto_msg msg = { 0 };
	const struct stat *attr = &c->attr;
	int to_set = c->to_set;

	msg.req.path = c->path;
	if (to_set & FUSE_SET_ATTR_SIZE) {
		msg.type = c->has_fh ? PROTO_FTRUNCATE : PROTO_TRUNCATE;
		msg.req.fh = c->fh;
		msg.req.size = (uint64_t)attr->st_size;
		to_set &= ~FUSE_SET_ATTR_SIZE;
	} else if (to_set & FUSE_SET_ATTR_MODE) {
		msg.type = PROTO_CHMOD;
		msg.req.mode = attr->st_mode & 07777;
		to_set &= ~FUSE_SET_ATTR_MODE;
	} else if (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		msg.type = PROTO_CHOWN;
		msg.req.uid = (to_set & FUSE_SET_ATTR_UID) ? attr->st_uid : PROTO_ID_KEEP;
		msg.req.gid = (to_set & FUSE_SET_ATTR_GID) ? attr->st_gid : PROTO_ID_KEEP;
		msg.req.flags = PROTO_STAT_NOFOLLOW;
		to_set &= ~(FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID);
	} else if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW |
			     FUSE_SET_ATTR_MTIME_NOW)) {
		msg.type = PROTO_UTIMENS;
		msg.req.atime.nsec = PROTO_UTIME_OMIT;
		msg.req.mtime.nsec = PROTO_UTIME_OMIT;
		if (to_set & FUSE_SET_ATTR_ATIME_NOW)
			msg.req.atime.nsec = PROTO_UTIME_NOW;
		else if (to_set & FUSE_SET_ATTR_ATIME)
			msg.req.atime = (struct proto_time){ attr->st_atim.tv_sec,
							     (uint32_t)attr->st_atim.tv_nsec };
		if (to_set & FUSE_SET_ATTR_MTIME_NOW)
			msg.req.mtime.nsec = PROTO_UTIME_NOW;
		else if (to_set & FUSE_SET_ATTR_MTIME)
			msg.req.mtime = (struct proto_time){ attr->st_mtim.tv_sec,
							     (uint32_t)attr->st_mtim.tv_nsec };
		msg.req.flags = PROTO_STAT_NOFOLLOW;
		to_set &= ~(FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW |
			    FUSE_SET_ATTR_MTIME_NOW);
	} else {
		/* Nothing (left) that needs the pod: report the attributes. */
		msg.type = PROTO_STAT;
		msg.req.flags = PROTO_STAT_NOFOLLOW;
	}
	/* ctime and the kill-suid bits follow from the changes themselves. */
	c->to_set = to_set & (FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID |
			      FUSE_SET_ATTR_GID | FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME |
			      FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW);
	if (proto_client_request(c->m->client, &msg, on_setattr_reply, c) < 0) {
		fuse_reply_err(c->req, EIO);
		free(c);
	}
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct vfs_mount *m = fuse_req_userdata(req);
	struct vfs_handle *h = fi ? (struct vfs_handle *)(uintptr_t)fi->fh : NULL;
	struct vfs_decision d;
	struct stat st;
	int r;
	NODE_OR_REPLY(m, req, ino, path);

	r = route(m, req, path, VFS_ROUTE_WRITE, &d);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	if (d.verdict == VFS_LOCAL) {
		r = 0;
		if ((to_set & FUSE_SET_ATTR_MODE) && chmod(d.path, attr->st_mode) < 0)
			r = errno;
		if (!r && (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) &&
		    lchown(d.path, (to_set & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1,
			   (to_set & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1) < 0)
			r = errno;
		if (!r && (to_set & FUSE_SET_ATTR_SIZE)) {
			int rr = h && !h->remote ? ftruncate(h->fd, attr->st_size)
						 : truncate(d.path, attr->st_size);
			if (rr < 0)
				r = errno;
		}
		if (!r && (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME))) {
			struct timespec ts[2] = { { 0, UTIME_OMIT }, { 0, UTIME_OMIT } };
			if (to_set & FUSE_SET_ATTR_ATIME_NOW)
				ts[0].tv_nsec = UTIME_NOW;
			else if (to_set & FUSE_SET_ATTR_ATIME)
				ts[0] = attr->st_atim;
			if (to_set & FUSE_SET_ATTR_MTIME_NOW)
				ts[1].tv_nsec = UTIME_NOW;
			else if (to_set & FUSE_SET_ATTR_MTIME)
				ts[1] = attr->st_mtim;
			if (utimensat(AT_FDCWD, d.path, ts, AT_SYMLINK_NOFOLLOW) < 0)
				r = errno;
		}
		if (!r && lstat(d.path, &st) < 0)
			r = errno;
		if (r)
			fuse_reply_err(req, r);
		else
			fuse_reply_attr(req, &st, ATTR_TIMEOUT);
		return;
	}
	struct setattr_call *c = xcalloc(1, sizeof(*c));
	c->m = m;
	c->req = req;
	c->attr = *attr;
	c->to_set = to_set;
	c->fh = h && h->remote ? h->fh : 0;
	c->has_fh = h && h->remote;
	snprintf(c->path, sizeof(c->path), "%s", d.path);
	setattr_next(c);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct vfs_mount *m = fuse_req_userdata(req);
	struct vfs_decision d;
	char buf[VFS_PATH_MAX];
	int r;
	NODE_OR_REPLY(m, req, ino, path);

	r = route(m, req, path, 0, &d);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	if (d.verdict == VFS_LOCAL) {
		ssize_t n = readlink(d.path, buf, sizeof(buf) - 1);
		if (n < 0) {
			fuse_reply_err(req, errno);
			return;
		}
		buf[n] = '\0';
		fuse_reply_readlink(req, buf);
		return;
	}
	struct proto_msg msg = { .type = PROTO_READLINK };
	msg.req.path = d.path;
	send_call(m, call_new(m, req, CALL_READLINK, path), &msg);
}

/* mkdir, mknod, symlink, link: create a name, answer with its entry. */
static void make_entry(fuse_req_t req, fuse_ino_t parent, const char *name, int type,
		       mode_t mode, dev_t rdev, const char *target, fuse_ino_t link_from)
{
	struct vfs_mount *m = fuse_req_userdata(req);
	char path[VFS_PATH_MAX];
	struct vfs_decision d, d_from;
	struct stat st;
	int r;
	NODE_OR_REPLY(m, req, parent, ppath);

	if (child_path(ppath, name, path) < 0) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	r = route(m, req, path, VFS_ROUTE_WRITE, &d);
	const char *from_path = NULL;
	if (!r && type == PROTO_LINK) {
		from_path = node_path(m, link_from);
		if (!from_path)
			r = -ESTALE;
		else
			r = route(m, req, from_path, VFS_ROUTE_WRITE, &d_from);
		if (!r && (d_from.verdict == VFS_LOCAL) != (d.verdict == VFS_LOCAL))
			r = -EXDEV; /* a hard link cannot cross sides */
	}
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	if (d.verdict == VFS_LOCAL) {
		switch (type) {
		case PROTO_MKDIR:
			r = mkdir(d.path, mode);
			break;
		case PROTO_MKNOD:
			r = mknod(d.path, mode, rdev);
			break;
		case PROTO_SYMLINK:
			r = symlink(target, d.path);
			break;
		default:
			r = link(d_from.path, d.path);
			break;
		}
		if (r < 0 || lstat(d.path, &st) < 0) {
			fuse_reply_err(req, errno);
			return;
		}
		reply_entry(m, req, path, &st);
		return;
	}
	struct proto_msg msg = { .type = (uint16_t)type };
	msg.req.path = d.path;
	msg.req.mode = mode;
	msg.req.rdev = rdev;
	if (type == PROTO_SYMLINK)
		msg.req.path2 = target;
	if (type == PROTO_LINK) {
		msg.req.path = d_from.path;
		msg.req.path2 = d.path;
	}
	send_call(m, call_new(m, req, CALL_ENTRY, path), &msg);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	make_entry(req, parent, name, PROTO_MKDIR, mode, 0, NULL, 0);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	make_entry(req, parent, name, PROTO_MKNOD, mode, rdev, NULL, 0);
}

static void op_symlink(fuse_req_t req, const char *target, fuse_ino_t parent, const char *name)
{
	make_entry(req, parent, name, PROTO_SYMLINK, 0, 0, target, 0);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	make_entry(req, newparent, newname, PROTO_LINK, 0, 0, NULL, ino);
}

static void remove_entry(fuse_req_t req, fuse_ino_t parent, const char *name, bool dir)
{
	struct vfs_mount *m = fuse_req_userdata(req);
	char path[VFS_PATH_MAX];
	struct vfs_decision d;
	int r;
	NODE_OR_REPLY(m, req, parent, ppath);

	r = child_path(ppath, name, path);
	if (r == 0)
		r = route(m, req, path, VFS_ROUTE_WRITE, &d);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	if (d.verdict == VFS_LOCAL) {
		r = dir ? rmdir(d.path) : unlink(d.path);
		fuse_reply_err(req, r < 0 ? errno : 0);
		return;
	}
	struct proto_msg msg = { .type = dir ? PROTO_RMDIR : PROTO_UNLINK };
	msg.req.path = d.path;
	send_call(m, call_new(m, req, CALL_EMPTY, path), &msg);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_entry(req, parent, name, false);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_entry(req, parent, name, true);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	struct vfs_mount *m = fuse_req_userdata(req);
	char oldp[VFS_PATH_MAX], newp[VFS_PATH_MAX];
	struct vfs_decision d1, d2;
	int r;
	NODE_OR_REPLY(m, req, parent, pp);
	NODE_OR_REPLY(m, req, newparent, np);

	if (child_path(pp, name, oldp) < 0 || child_path(np, newname, newp) < 0) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	r = route(m, req, oldp, VFS_ROUTE_WRITE, &d1);
	if (!r)
		r = route(m, req, newp, VFS_ROUTE_WRITE, &d2);
	if (!r && (d1.verdict == VFS_LOCAL) != (d2.verdict == VFS_LOCAL))
		r = -EXDEV; /* tools then copy and delete, as across filesystems */
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	if (d1.verdict == VFS_LOCAL) {
		r = renameat2(AT_FDCWD, d1.path, AT_FDCWD, d2.path, flags);
		if (r == 0)
			nodes_renamed(m, oldp, newp);
		fuse_reply_err(req, r < 0 ? errno : 0);
		return;
	}
	struct proto_msg msg = { .type = PROTO_RENAME };
	msg.req.path = d1.path;
	msg.req.path2 = d2.path;
	msg.req.flags = flags;
	struct vfs_call *c = call_new(m, req, CALL_RENAME, oldp);
	snprintf(c->path2, sizeof(c->path2), "%s", newp);
	send_call(m, c, &msg);
}

/* --- files ------------------------------------------------------------------------ */

static unsigned open_route_flags(int flags)
{
	unsigned f = 0;

	if ((flags & O_ACCMODE) != O_RDONLY || (flags & (O_TRUNC | O_CREAT | O_APPEND)))
		f |= VFS_ROUTE_WRITE;
	/* execve opens with __FMODE_EXEC (0x20), which FUSE passes on. */
	if (flags & 0x20)
		f |= VFS_ROUTE_EXEC;
	return f;
}

struct open_call {
	struct vfs_mount *m;
	fuse_req_t req;
	struct fuse_file_info fi;
	fuse_ino_t ino;
};

static void on_open_reply(void *userdata, const struct proto_msg *msg)
{
	struct open_call *c = userdata;
	struct vfs_node *n = node_by_ino(c->m, c->ino);
	struct vfs_handle *h;

	if (msg->status) {
		fuse_reply_err(c->req, map_err(msg->status));
		free(c);
		return;
	}
	h = handle_new(c->m);
	h->remote = true;
	h->fd = -1;
	h->fh = msg->rep.fh;
	if (msg->type == PROTO_OPEN_READ) {
		const struct proto_attr *a = &msg->rep.attr;
		h->prefetch_len = msg->rep.data.len;
		h->prefetch_eof = msg->rep.eof;
		if (h->prefetch_len) {
			h->prefetch = xmalloc(h->prefetch_len);
			memcpy(h->prefetch, msg->rep.data.data, h->prefetch_len);
		}
		/* Keep the page cache when the file is as it was last time. */
		if (n && !c->fi.direct_io && n->cached_mtime == a->mtime.sec &&
		    n->cached_mtime_ns == a->mtime.nsec && n->cached_size == a->size)
			c->fi.keep_cache = 1;
		if (n) {
			n->cached_mtime = a->mtime.sec;
			n->cached_mtime_ns = a->mtime.nsec;
			n->cached_size = a->size;
		}
	}
	c->fi.fh = (uint64_t)(uintptr_t)h;
	if (fuse_reply_open(c->req, &c->fi) != 0) {
		/* The opener went away (interrupted): release on the agent. */
		struct proto_msg rel = { .type = PROTO_RELEASE };
		rel.req.fh = h->fh;
		proto_client_request(c->m->client, &rel, NULL, NULL);
		handle_drop(c->m, h);
	}
	free(c);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vfs_mount *m = fuse_req_userdata(req);
	struct vfs_decision d;
	int r;
	NODE_OR_REPLY(m, req, ino, path);

	const struct vfs_file_override *ov = override_of(m, path);
	if (ov) {
		/* podenv's own version of the file (the app's resolv.conf):
		 * read-only, served from memory like a prefetched head. */
		if ((fi->flags & O_ACCMODE) != O_RDONLY) {
			fuse_reply_err(req, EACCES);
			return;
		}
		struct vfs_handle *h = handle_new(m);
		h->remote = true;
		h->fd = -1;
		h->fh = 0;
		h->prefetch_len = (uint32_t)strlen(ov->content);
		h->prefetch = (uint8_t *)xstrdup(ov->content);
		h->prefetch_eof = true;
		h->memory = true;
		fi->fh = (uint64_t)(uintptr_t)h;
		fi->direct_io = 1;
		if (fuse_reply_open(req, fi) != 0) {
			handle_drop(m, h);
		}
		return;
	}
	r = route(m, req, path, open_route_flags(fi->flags), &d);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	if (d.verdict == VFS_LOCAL) {
		int fd = open(d.path, (fi->flags & ~(O_NOFOLLOW | 0x20)) | O_CLOEXEC);
		if (fd < 0) {
			fuse_reply_err(req, errno);
			return;
		}
		struct vfs_handle *h = handle_new(m);
		h->fd = fd;
		fi->fh = (uint64_t)(uintptr_t)h;
		/* Local files change only through us, or outside. */
		fi->keep_cache = !is_mixed(m, path);
		fi->direct_io = is_mixed(m, path);
		if (fuse_reply_open(req, fi) != 0) {
			close(fd);
			handle_drop(m, h);
		}
		return;
	}
	struct open_call *c = xcalloc(1, sizeof(*c));
	struct proto_msg msg = { 0 };
	c->m = m;
	c->req = req;
	c->fi = *fi;
	c->fi.direct_io = is_mixed(m, path);
	c->ino = ino;
	msg.req.path = d.path;
	msg.req.flags = (uint32_t)(fi->flags & ~(0x20 | O_NOCTTY));
	if ((fi->flags & O_ACCMODE) == O_RDONLY && !(fi->flags & O_TRUNC)) {
		msg.type = PROTO_OPEN_READ;
		msg.req.count = PREFETCH;
	} else {
		msg.type = PROTO_OPEN;
	}
	if (proto_client_request(m->client, &msg, on_open_reply, c) < 0) {
		fuse_reply_err(req, EIO);
		free(c);
	}
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct vfs_mount *m = fuse_req_userdata(req);
	char path[VFS_PATH_MAX];
	struct vfs_decision d;
	struct stat st;
	int r;
	NODE_OR_REPLY(m, req, parent, ppath);

	if (child_path(ppath, name, path) < 0) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	r = route(m, req, path, VFS_ROUTE_WRITE, &d);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	if (d.verdict == VFS_LOCAL) {
		int fd = open(d.path, fi->flags | O_CREAT | O_CLOEXEC, mode);
		if (fd < 0 || fstat(fd, &st) < 0) {
			fuse_reply_err(req, errno);
			if (fd >= 0)
				close(fd);
			return;
		}
		struct vfs_handle *h = handle_new(m);
		struct fuse_entry_param e = { 0 };
		struct vfs_node *n = node_get(m, path);
		h->fd = fd;
		fi->fh = (uint64_t)(uintptr_t)h;
		e.ino = n->ino;
		e.attr = st;
		e.attr_timeout = ATTR_TIMEOUT;
		e.entry_timeout = ENTRY_TIMEOUT;
		if (fuse_reply_create(req, &e, fi) != 0) {
			node_forget(m, n, 1);
			close(fd);
			handle_drop(m, h);
		}
		return;
	}
	struct proto_msg msg = { .type = PROTO_OPEN };
	msg.req.path = d.path;
	msg.req.flags = (uint32_t)(fi->flags | O_CREAT);
	msg.req.mode = mode;
	struct vfs_call *c = call_new(m, req, CALL_CREATE, path);
	c->fi = *fi;
	send_call(m, c, &msg);
}

struct read_call {
	fuse_req_t req;
};

static void on_read_reply(void *userdata, const struct proto_msg *msg)
{
	fuse_req_t req = userdata;

	if (msg->status)
		fuse_reply_err(req, map_err(msg->status));
	else
		fuse_reply_buf(req, (const char *)msg->rep.data.data, msg->rep.data.len);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct vfs_mount *m = fuse_req_userdata(req);
	struct vfs_handle *h = (struct vfs_handle *)(uintptr_t)fi->fh;
	(void)ino;

	if (!h->remote) {
		/* Splice from the file: no copy through our memory. */
		struct fuse_bufvec bv = FUSE_BUFVEC_INIT(size);
		bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
		bv.buf[0].fd = h->fd;
		bv.buf[0].pos = off;
		fuse_reply_data(req, &bv, FUSE_BUF_SPLICE_MOVE);
		return;
	}
	if (h->memory) {
		size_t n = (uint64_t)off < h->prefetch_len
				   ? MIN(size, (size_t)(h->prefetch_len - (uint64_t)off))
				   : 0;
		fuse_reply_buf(req, n ? (const char *)h->prefetch + off : NULL, n);
		return;
	}
	/* The prefetched head of the file answers without a round trip when
	 * it covers the request (or the file ends inside it). */
	if (h->prefetch && (uint64_t)off <= h->prefetch_len &&
	    ((uint64_t)off + size <= h->prefetch_len || h->prefetch_eof)) {
		size_t n = MIN(size, (size_t)(h->prefetch_len - (uint64_t)off));
		fuse_reply_buf(req, (const char *)h->prefetch + off, n);
		return;
	}
	struct proto_msg msg = { .type = PROTO_READ };
	msg.req.fh = h->fh;
	msg.req.offset = (uint64_t)off;
	msg.req.count = (uint32_t)MIN(size, (size_t)PROTO_IO_MAX);
	if (proto_client_request(m->client, &msg, on_read_reply, req) < 0)
		fuse_reply_err(req, EIO);
}

static void on_write_reply(void *userdata, const struct proto_msg *msg)
{
	fuse_req_t req = userdata;

	if (msg->status)
		fuse_reply_err(req, map_err(msg->status));
	else
		fuse_reply_write(req, msg->rep.count);
}

static void op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in, off_t off,
			 struct fuse_file_info *fi)
{
	struct vfs_mount *m = fuse_req_userdata(req);
	struct vfs_handle *h = (struct vfs_handle *)(uintptr_t)fi->fh;
	size_t size = fuse_buf_size(in);
	(void)ino;

	if (!h->remote) {
		struct fuse_bufvec out = FUSE_BUFVEC_INIT(size);
		out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
		out.buf[0].fd = h->fd;
		out.buf[0].pos = off;
		ssize_t n = fuse_buf_copy(&out, in, 0);
		if (n < 0)
			fuse_reply_err(req, (int)-n);
		else
			fuse_reply_write(req, (size_t)n);
		return;
	}
	if (h->memory) {
		fuse_reply_err(req, EBADF);
		return;
	}
	/* Remote: the data must be in memory to go into the frame. */
	_cleanup_free_ uint8_t *data = xmalloc(size ? size : 1);
	struct fuse_bufvec mem = FUSE_BUFVEC_INIT(size);
	mem.buf[0].mem = data;
	ssize_t n = fuse_buf_copy(&mem, in, 0);
	if (n < 0) {
		fuse_reply_err(req, (int)-n);
		return;
	}
	/* The prefetched head may now be stale. */
	free(h->prefetch);
	h->prefetch = NULL;
	h->prefetch_len = 0;
	struct proto_msg msg = { .type = PROTO_WRITE };
	msg.req.fh = h->fh;
	msg.req.offset = (fi->flags & O_APPEND) ? PROTO_OFF_CUR : (uint64_t)off;
	msg.req.data.data = data;
	msg.req.data.len = (uint32_t)MIN((size_t)n, (size_t)PROTO_IO_MAX);
	if (proto_client_request(m->client, &msg, on_write_reply, req) < 0)
		fuse_reply_err(req, EIO);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void handle_release(struct vfs_mount *m, struct vfs_handle *h)
{
	if (!h)
		return;
	if (h->remote && !h->memory) {
		struct proto_msg msg = { .type = PROTO_RELEASE };
		msg.req.fh = h->fh;
		proto_client_request(m->client, &msg, NULL, NULL);
	} else if (!h->remote) {
		close(h->fd);
	}
	handle_drop(m, h);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vfs_mount *m = fuse_req_userdata(req);
	(void)ino;

	handle_release(m, (struct vfs_handle *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct vfs_mount *m = fuse_req_userdata(req);
	struct vfs_handle *h = (struct vfs_handle *)(uintptr_t)fi->fh;
	(void)ino;

	if (!h->remote) {
		int r = datasync ? fdatasync(h->fd) : fsync(h->fd);
		fuse_reply_err(req, r < 0 ? errno : 0);
		return;
	}
	struct proto_msg msg = { .type = PROTO_FSYNC };
	msg.req.fh = h->fh;
	msg.req.flags = datasync ? PROTO_FSYNC_DATA : 0;
	send_call(m, call_new(m, req, CALL_EMPTY, NULL), &msg);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct vfs_mount *m = fuse_req_userdata(req);
	struct statvfs sv;
	(void)ino;

	/* The filesystem as a whole is the host's root when routed. */
	if (m->router) {
		if (statvfs("/", &sv) < 0)
			fuse_reply_err(req, errno);
		else
			fuse_reply_statfs(req, &sv);
		return;
	}
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = sv.f_frsize = 4096;
	sv.f_namemax = 255;
	fuse_reply_statfs(req, &sv);
}

/* --- xattrs: local only through the host; remote ones via the agent ----------------- */

struct xattr_call {
	fuse_req_t req;
	size_t size;
};

static void on_xattr_reply(void *userdata, const struct proto_msg *msg)
{
	struct xattr_call *c = userdata;

	if (msg->status)
		fuse_reply_err(c->req, map_err(msg->status));
	else if (c->size == 0)
		fuse_reply_xattr(c->req, msg->rep.count);
	else if (msg->rep.count > c->size)
		fuse_reply_err(c->req, ERANGE);
	else
		fuse_reply_buf(c->req, (const char *)msg->rep.data.data, msg->rep.data.len);
	free(c);
}

static void do_xattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size, bool list)
{
	struct vfs_mount *m = fuse_req_userdata(req);
	struct vfs_decision d;
	int r;
	NODE_OR_REPLY(m, req, ino, path);

	r = route(m, req, path, 0, &d);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	if (d.verdict == VFS_LOCAL) {
		_cleanup_free_ char *buf = size ? xmalloc(size) : NULL;
		ssize_t n = list ? llistxattr(d.path, buf, size) : lgetxattr(d.path, name, buf, size);
		if (n < 0)
			fuse_reply_err(req, errno);
		else if (size == 0)
			fuse_reply_xattr(req, (size_t)n);
		else
			fuse_reply_buf(req, buf, (size_t)n);
		return;
	}
	struct xattr_call *c = xcalloc(1, sizeof(*c));
	struct proto_msg msg = { .type = list ? PROTO_LISTXATTR : PROTO_GETXATTR };
	c->req = req;
	c->size = size;
	msg.req.path = d.path;
	msg.req.name = name;
	msg.req.count = (uint32_t)MIN(size, (size_t)PROTO_IO_MAX);
	if (proto_client_request(m->client, &msg, on_xattr_reply, c) < 0) {
		fuse_reply_err(req, EIO);
		free(c);
	}
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	do_xattr(req, ino, name, size, false);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	do_xattr(req, ino, NULL, size, true);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	struct vfs_mount *m = fuse_req_userdata(req);
	struct vfs_decision d;
	int r;
	NODE_OR_REPLY(m, req, ino, path);

	r = route(m, req, path, VFS_ROUTE_WRITE, &d);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	if (d.verdict == VFS_LOCAL) {
		r = lsetxattr(d.path, name, value, size, flags);
		fuse_reply_err(req, r < 0 ? errno : 0);
		return;
	}
	struct proto_msg msg = { .type = PROTO_SETXATTR };
	msg.req.path = d.path;
	msg.req.name = name;
	msg.req.data.data = (const uint8_t *)value;
	msg.req.data.len = (uint32_t)size;
	msg.req.flags = (uint32_t)flags;
	send_call(m, call_new(m, req, CALL_EMPTY, NULL), &msg);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct vfs_mount *m = fuse_req_userdata(req);
	struct vfs_decision d;
	int r;
	NODE_OR_REPLY(m, req, ino, path);

	r = route(m, req, path, VFS_ROUTE_WRITE, &d);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	if (d.verdict == VFS_LOCAL) {
		r = lremovexattr(d.path, name);
		fuse_reply_err(req, r < 0 ? errno : 0);
		return;
	}
	struct proto_msg msg = { .type = PROTO_REMOVEXATTR };
	msg.req.path = d.path;
	msg.req.name = name;
	send_call(m, call_new(m, req, CALL_EMPTY, NULL), &msg);
}

/* --- directories ---------------------------------------------------------------------- */

struct dir_entry {
	char *name;
	struct stat st;
};

struct vfs_dir {
	struct dir_entry *e;
	size_t n, cap;
};

/* Building a listing: the remote side's entries arrive over several
 * READDIR answers; then the local side is read and the two merged. */
struct dir_build {
	struct vfs_mount *m;
	fuse_req_t req;
	struct fuse_file_info fi;
	char path[VFS_PATH_MAX];   /* app view */
	char remote[VFS_PATH_MAX]; /* the remote path (mapped) */
	char local[VFS_PATH_MAX];  /* the local path (mapped), "" if none */
	uint64_t fh;
	uint64_t cookie;
	struct vfs_dir remote_list;
	bool remote_ok;
};

static void dir_add(struct vfs_dir *d, const char *name, const struct stat *st)
{
	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 64;
		d->e = xrealloc(d->e, d->cap * sizeof(*d->e));
	}
	d->e[d->n].name = xstrdup(name);
	d->e[d->n].st = *st;
	d->n++;
}

static void dir_free(struct vfs_dir *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		free(d->e[i].name);
	free(d->e);
	free(d);
}

static int dir_cmp(const void *a, const void *b)
{
	return strcmp(((const struct dir_entry *)a)->name, ((const struct dir_entry *)b)->name);
}

static bool dir_has(const struct vfs_dir *d, const char *name)
{
	struct dir_entry key = { .name = (char *)name };

	return d->n && bsearch(&key, d->e, d->n, sizeof(*d->e), dir_cmp);
}

/* Merge: each name shows when the side its path routes to has it. */
static void dir_finish(struct dir_build *b)
{
	struct vfs_mount *m = b->m;
	struct vfs_dir *out = xcalloc(1, sizeof(*out));
	struct vfs_dir local = { 0 };
	char child[VFS_PATH_MAX];
	struct vfs_decision d;
	struct stat st;

	if (b->local[0]) {
		DIR *dir = opendir(b->local);
		struct dirent *de;
		while (dir && (de = readdir(dir))) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			dir_add(&local, de->d_name, &st);
		}
		if (dir)
			closedir(dir);
	}
	if (local.n)
		qsort(local.e, local.n, sizeof(*local.e), dir_cmp);
	if (b->remote_list.n)
		qsort(b->remote_list.e, b->remote_list.n, sizeof(*b->remote_list.e), dir_cmp);

	for (int side = 0; side < 2; side++) {
		struct vfs_dir *src = side == 0 ? &local : &b->remote_list;
		for (size_t i = 0; i < src->n; i++) {
			if (child_path(b->path, src->e[i].name, child) < 0)
				continue;
			if (is_synthetic(m, child))
				continue;
			if (route(m, b->req, child, 0, &d) < 0)
				continue; /* not found (or refused) */
			bool want_local = d.verdict == VFS_LOCAL;
			if (want_local != (side == 0))
				continue;
			/* A name on both sides shows once, from its own side. */
			dir_add(out, src->e[i].name, &src->e[i].st);
		}
	}
	for (size_t i = 0; i < m->nsynthetic; i++) {
		const char *s = m->synthetic[i];
		const char *slash = strrchr(s, '/');
		size_t plen = (size_t)(slash - s);
		if (!slash || strlen(b->path) != (plen ? plen : 1) ||
		    strncmp(s, b->path, plen ? plen : 1) != 0)
			continue;
		if (!dir_has(&local, slash + 1) && !dir_has(&b->remote_list, slash + 1)) {
			synthetic_stat(&st);
			dir_add(out, slash + 1, &st);
		}
	}
	for (size_t i = 0; i < local.n; i++)
		free(local.e[i].name);
	free(local.e);
	for (size_t i = 0; i < b->remote_list.n; i++)
		free(b->remote_list.e[i].name);
	free(b->remote_list.e);

	/* A listing that is all the pod's: let the kernel keep it across
	 * opens (find, ls -R twice); it drops it when the directory's
	 * attributes change, which it checks every ATTR_TIMEOUT. Listings
	 * with a local side are rebuilt each time (local changes are not
	 * seen through attributes of the merged directory). */
	if (b->remote_ok && local.n == 0 && !is_mixed(m, b->path)) {
		b->fi.cache_readdir = 1;
		b->fi.keep_cache = 1;
	}
	b->fi.fh = (uint64_t)(uintptr_t)out;
	if (fuse_reply_open(b->req, &b->fi) != 0)
		dir_free(out);
	free(b);
}

static void dir_read_remote(struct dir_build *b);

static void on_dir_release(void *userdata, const struct proto_msg *msg)
{
	(void)msg;
	dir_finish(userdata);
}

static void dir_release_remote(struct dir_build *b)
{
	struct proto_msg msg = { .type = PROTO_RELEASE };

	msg.req.fh = b->fh;
	if (proto_client_request(b->m->client, &msg, on_dir_release, b) < 0)
		dir_finish(b);
}

static void on_readdir_reply(void *userdata, const struct proto_msg *msg)
{
	struct dir_build *b = userdata;
	struct proto_iter it;
	struct proto_dirent e;
	struct stat st;

	if (msg->status) {
		dir_release_remote(b);
		return;
	}
	proto_iter_init(&it, &msg->rep.list);
	while (proto_iter_dirent(&it, &e) > 0) {
		stat_from_attr(&st, &e.attr);
		dir_add(&b->remote_list, e.name, &st);
		b->cookie = e.cookie;
	}
	if (msg->rep.eof || msg->rep.list.count == 0)
		dir_release_remote(b);
	else
		dir_read_remote(b);
}

static void dir_read_remote(struct dir_build *b)
{
	struct proto_msg msg = { .type = PROTO_READDIR };

	msg.req.fh = b->fh;
	msg.req.offset = b->cookie;
	msg.req.count = READDIR_BUDGET;
	if (proto_client_request(b->m->client, &msg, on_readdir_reply, b) < 0)
		dir_finish(b);
}

static void on_opendir_reply(void *userdata, const struct proto_msg *msg)
{
	struct dir_build *b = userdata;

	if (msg->status) {
		/* No remote directory: the listing is the local side's. When
		 * neither side has it, the error is the remote one. */
		struct stat st;
		if (!b->local[0] || stat(b->local, &st) < 0 || !S_ISDIR(st.st_mode)) {
			fuse_reply_err(b->req, map_err(msg->status));
			free(b);
			return;
		}
		dir_finish(b);
		return;
	}
	b->remote_ok = true;
	b->fh = msg->rep.fh;
	dir_read_remote(b);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vfs_mount *m = fuse_req_userdata(req);
	struct dir_build *b;
	struct vfs_decision d;
	int r;
	NODE_OR_REPLY(m, req, ino, path);

	b = xcalloc(1, sizeof(*b));
	b->m = m;
	b->req = req;
	b->fi = *fi;
	snprintf(b->path, sizeof(b->path), "%s", path);
	if (is_synthetic(m, path)) {
		dir_finish(b);
		return;
	}
	r = (ino == FUSE_ROOT_ID && m->router) ? 0 : route(m, req, path, 0, &d);
	if (ino == FUSE_ROOT_ID && m->router) {
		d.verdict = VFS_LOCAL;
		snprintf(d.path, sizeof(d.path), "/");
	}
	if (r < 0) {
		fuse_reply_err(req, -r);
		free(b);
		return;
	}
	/* Both sides are listed: children may route either way whatever the
	 * directory itself routes to. The local side is read only in the
	 * routed view. */
	if (m->router)
		snprintf(b->local, sizeof(b->local), "%s", d.path);
	snprintf(b->remote, sizeof(b->remote), "%s", d.path);
	struct proto_msg msg = { .type = PROTO_OPENDIR };
	msg.req.path = b->remote;
	if (proto_client_request(m->client, &msg, on_opendir_reply, b) < 0)
		dir_finish(b);
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, bool plus)
{
	struct vfs_mount *m = fuse_req_userdata(req);
	struct vfs_dir *d = (struct vfs_dir *)(uintptr_t)fi->fh;
	const char *dpath = node_path(m, ino);
	_cleanup_free_ char *buf = xmalloc(size);
	size_t used = 0;
	char child[VFS_PATH_MAX];

	if (!dpath) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	for (size_t i = (size_t)off; i < d->n; i++) {
		size_t n;
		if (plus) {
			struct fuse_entry_param e = { 0 };
			struct vfs_node *node = NULL;
			if (child_path(dpath, d->e[i].name, child) < 0)
				continue;
			node = node_get(m, child);
			e.ino = node->ino;
			e.attr = d->e[i].st;
			e.attr_timeout = ATTR_TIMEOUT;
			e.entry_timeout = ENTRY_TIMEOUT;
			n = fuse_add_direntry_plus(req, buf + used, size - used, d->e[i].name, &e,
						   (off_t)(i + 1));
			if (n > size - used) {
				node_forget(m, node, 1); /* did not fit: not handed out */
				break;
			}
		} else {
			n = fuse_add_direntry(req, buf + used, size - used, d->e[i].name,
					      &d->e[i].st, (off_t)(i + 1));
			if (n > size - used)
				break;
		}
		used += n;
	}
	fuse_reply_buf(req, buf, used);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, true);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	dir_free((struct vfs_dir *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static const struct fuse_lowlevel_ops ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readlink = op_readlink,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.symlink = op_symlink,
	.rename = op_rename,
	.link = op_link,
	.open = op_open,
	.read = op_read,
	.write_buf = op_write_buf,
	.flush = op_flush,
	.release = op_release,
	.fsync = op_fsync,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.statfs = op_statfs,
	.setxattr = op_setxattr,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.removexattr = op_removexattr,
	.create = op_create,
};

/* --- the session on the loop -------------------------------------------------------------- */

static int on_fuse(struct loop_source *s, int fd, uint32_t events, void *userdata)
{
	struct vfs_mount *m = userdata;
	(void)s;
	(void)fd;
	(void)events;

	/* Bounded batch: other sources (the link!) must get their turn, or
	 * requests waiting on the agent would never complete. */
	for (int i = 0; i < 16 && !m->gone; i++) {
		int r = fuse_session_receive_buf(m->se, &m->fbuf);
		if (r == -EINTR || r == -EAGAIN)
			break;
		if (r <= 0) {
			/* 0: unmounted (fusermount -u, or the kernel side went). */
			m->gone = true;
			loop_source_free(m->src);
			m->src = NULL;
			break;
		}
		fuse_session_process_buf(m->se, &m->fbuf);
	}
	return 0;
}

int vfs_fuse_check(struct err *reterr)
{
	/* Say plainly what is missing instead of libfuse's terse line. */
	if (access("/dev/fuse", R_OK | W_OK) < 0)
		return err_set_errno(reterr, -errno,
				     "cannot use /dev/fuse (podenv serves the pod's files with FUSE: "
				     "load the fuse module and give this user read-write access to "
				     "/dev/fuse, or run as root)");
	return 0;
}

int vfs_mount_new(const struct vfs_mount_opts *o, struct vfs_mount **ret, struct err *reterr)
{
	struct vfs_mount *m = xcalloc(1, sizeof(*m));
	char *argv[8];
	int argc = 0, r;
	struct vfs_node *root;

	m->loop = o->loop;
	m->client = o->client;
	m->router = o->router;
	m->read_only = o->read_only;
	m->trace = o->trace;
	m->trace_userdata = o->trace_userdata;
	m->next_ino = FUSE_ROOT_ID + 1;
	m->mountpoint = xstrdup(o->mountpoint);
	m->private_prefix = xstrdup(o->private_prefix ? o->private_prefix : o->mountpoint);
	for (const char *const *s = o->synthetic_dirs; s && *s; s++) {
		m->synthetic = xrealloc(m->synthetic, (m->nsynthetic + 1) * sizeof(char *));
		m->synthetic[m->nsynthetic++] = xstrdup(*s);
	}
	for (const struct vfs_file_override *ov = o->overrides; ov && ov->path; ov++) {
		m->overrides = xrealloc(m->overrides, (m->noverrides + 1) * sizeof(*m->overrides));
		m->overrides[m->noverrides].path = xstrdup(ov->path);
		m->overrides[m->noverrides].content = xstrdup(ov->content);
		m->noverrides++;
	}
	for (const char *const *s = o->local_anchors; s && *s; s++) {
		m->anchors = xrealloc(m->anchors, (m->nanchors + 1) * sizeof(char *));
		m->anchors[m->nanchors++] = xstrdup(*s);
	}
	root = xcalloc(1, sizeof(*root));
	root->ino = FUSE_ROOT_ID;
	root->path = xstrdup("/");
	root->nlookup = 1;
	map_put(&m->nodes, root->ino, root);
	path_index_add(m, root);

	r = vfs_fuse_check(reterr);
	if (r < 0)
		goto fail;
	argv[argc++] = "podenv";
	argv[argc++] = "-o";
	argv[argc++] = o->allow_other ? "fsname=podenv,subtype=podenv,default_permissions,allow_other"
				      : "fsname=podenv,subtype=podenv,default_permissions";
	if (o->read_only) {
		argv[argc++] = "-o";
		argv[argc++] = "ro";
	}
	argv[argc] = NULL;
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	m->se = fuse_session_new(&args, &ops, sizeof(ops), m);
	fuse_opt_free_args(&args);
	if (!m->se) {
		r = err_set(reterr, -EIO, "cannot start a FUSE session");
		goto fail;
	}
	if (fuse_session_mount(m->se, o->mountpoint) != 0) {
		r = err_set(reterr, -EIO, "mounting the pod's filesystem at %s failed (see above)",
			    o->mountpoint);
		fuse_session_destroy(m->se);
		m->se = NULL;
		goto fail;
	}
	int fd = fuse_session_fd(m->se);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	r = loop_add_io(o->loop, fd, EPOLLIN, on_fuse, m, &m->src);
	if (r < 0) {
		err_set_errno(reterr, r, "watching the FUSE device");
		goto fail;
	}
	*ret = m;
	return 0;
fail:
	vfs_mount_free(m);
	return r;
}

bool vfs_mount_gone(const struct vfs_mount *m)
{
	return m->gone;
}

void vfs_mount_free(struct vfs_mount *m)
{
	uint64_t key;
	void *v;

	if (!m)
		return;
	loop_source_free(m->src);
	if (m->se) {
		fuse_session_unmount(m->se);
		fuse_session_destroy(m->se);
	}
	free(m->fbuf.mem);
	/* Files still open when the mount went: no RELEASE will come. */
	while (m->handles) {
		if (!m->handles->remote && m->handles->fd >= 0)
			close(m->handles->fd);
		handle_drop(m, m->handles);
	}
	for (size_t pos = 0; map_next(&m->nodes, &pos, &key, &v);) {
		struct vfs_node *n = v;
		free(n->path);
		free(n);
	}
	map_done(&m->nodes);
	map_done(&m->by_path);
	map_done(&m->mixed);
	for (size_t i = 0; i < m->nsynthetic; i++)
		free(m->synthetic[i]);
	free(m->synthetic);
	for (size_t i = 0; i < m->nanchors; i++)
		free(m->anchors[i]);
	free(m->anchors);
	for (size_t i = 0; i < m->noverrides; i++) {
		free((char *)m->overrides[i].path);
		free((char *)m->overrides[i].content);
	}
	free(m->overrides);
	free(m->mountpoint);
	free(m->private_prefix);
	free(m);
}
