/* File requests, executed on worker threads: one proto request in, one
 * encoded response frame out. Everything here works on the request's own
 * copy of its frame and the handle it was given, never on session state,
 * so it is safe off the loop thread.
 */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/xattr.h>

#include "agent/fs.h"
#include "agent/session.h"

void agent_attr_from_stat(struct proto_attr *a, const struct stat *st)
{
	*a = (struct proto_attr){
		.ino = st->st_ino,
		.mode = st->st_mode,
		.nlink = (uint32_t)st->st_nlink,
		.uid = st->st_uid,
		.gid = st->st_gid,
		.rdev = st->st_rdev,
		.size = (uint64_t)st->st_size,
		.blocks = (uint64_t)st->st_blocks,
		.blksize = (uint32_t)st->st_blksize,
		.atime = { st->st_atim.tv_sec, (uint32_t)st->st_atim.tv_nsec },
		.mtime = { st->st_mtim.tv_sec, (uint32_t)st->st_mtim.tv_nsec },
		.ctime = { st->st_ctim.tv_sec, (uint32_t)st->st_ctim.tv_nsec },
	};
}

static int stat_into(int root_fd, const char *path, bool follow, struct proto_rep *rep)
{
	struct stat st;
	int r = agent_fs_stat(root_fd, path, follow, &st);

	if (r == 0)
		agent_attr_from_stat(&rep->attr, &st);
	return r;
}

static int fstat_into(int fd, struct proto_rep *rep)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	agent_attr_from_stat(&rep->attr, &st);
	return 0;
}

/* Reads up to count bytes at off (PROTO_OFF_CUR: the file position) into
 * a buffer the caller frees; sets *eof when the file ended first. */
static int read_some(int fd, uint64_t off, uint32_t count, uint8_t **ret, uint32_t *len,
		     bool *eof)
{
	uint8_t *data = xmalloc(count ? count : 1);
	size_t got = 0;

	*eof = false;
	while (got < count) {
		ssize_t n = off == PROTO_OFF_CUR ? read(fd, data + got, count - got)
						 : pread(fd, data + got, count - got,
							 (off_t)(off + got));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int r = -errno;
			free(data);
			return r;
		}
		if (n == 0) {
			*eof = true;
			break;
		}
		got += (size_t)n;
		/* A short read from a regular file means its end; pipes and
		 * /proc files may return less at a time, so go on only for
		 * those (n>0 and not yet full). */
	}
	*ret = data;
	*len = (uint32_t)got;
	return 0;
}

static uint32_t clamp_io(uint32_t count)
{
	return MIN(count, PROTO_IO_MAX);
}

/* READ without copies: the data is read straight into the response frame
 * (header, status 0, blob length, bytes), which the session then sends as
 * it is. Returns false when the generic path must answer (an error). */
static bool read_into_frame(struct agent_request *rq, int fd, uint64_t off, uint32_t count)
{
	struct buf *b = &rq->reply;
	size_t start = proto_frame_begin(b, PROTO_READ, PROTO_F_RESPONSE, rq->msg.id);
	size_t got = 0;
	uint8_t *dst;

	proto_put_u32(b, 0); /* status */
	size_t lenpos = buf_len(b);
	proto_put_u32(b, 0); /* blob length, patched below */
	dst = buf_reserve(b, count ? count : 1);
	while (got < count) {
		ssize_t n = off == PROTO_OFF_CUR ? read(fd, dst + got, count - got)
						 : pread(fd, dst + got, count - got, (off_t)(off + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			buf_truncate(b, start);
			errno = e;
			return false;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	buf_commit(b, got);
	uint8_t *lp = buf_data(b) + lenpos;
	lp[0] = (uint8_t)got;
	lp[1] = (uint8_t)(got >> 8);
	lp[2] = (uint8_t)(got >> 16);
	lp[3] = (uint8_t)(got >> 24);
	return proto_frame_end(b, start) == 0;
}

void agent_files_run(struct agent_request *rq)
{
	const struct proto_req *q = &rq->msg.req;
	struct proto_msg rep = { .type = rq->msg.type, .flags = PROTO_F_RESPONSE, .id = rq->msg.id };
	struct proto_rep *p = &rep.rep;
	int root = rq->root_fd, fd = rq->handle ? rq->handle->fd : -1;
	_cleanup_free_ uint8_t *data = NULL;
	_cleanup_free_ char *text = NULL;
	struct stat st;
	struct statfs sfs;
	int r = 0;
	bool follow = !(q->flags & PROTO_STAT_NOFOLLOW);

	switch (rq->msg.type) {
	case PROTO_STAT:
		r = stat_into(root, q->path, follow, p);
		break;
	case PROTO_FSTAT:
		r = fstat_into(fd, p);
		break;
	case PROTO_OPEN:
	case PROTO_OPEN_READ:
	case PROTO_OPENDIR: {
		int flags = rq->msg.type == PROTO_OPENDIR ? O_RDONLY | O_DIRECTORY : (int)q->flags;
		r = agent_fs_open(root, q->path, flags & ~O_CLOEXEC, q->mode);
		if (r < 0)
			break;
		rq->new_fd = r;
		p->fh = rq->new_fh;
		r = 0;
		if (rq->msg.type == PROTO_OPENDIR)
			break;
		r = fstat_into(rq->new_fd, p);
		if (r < 0 || rq->msg.type == PROTO_OPEN)
			break;
		if ((q->flags & O_ACCMODE) == O_WRONLY || !S_ISREG(p->attr.mode)) {
			p->eof = false; /* nothing read: the caller reads normally */
			break;
		}
		r = read_some(rq->new_fd, 0, clamp_io(q->count), &data, &p->data.len, &p->eof);
		p->data.data = data;
		break;
	}
	case PROTO_READFILE: {
		/* PROTOCOL.md: the lstat, and the data only of a regular file. */
		r = stat_into(root, q->path, false, p);
		if (r < 0)
			break;
		if (!S_ISREG(p->attr.mode)) {
			p->eof = true;
			break;
		}
		_cleanup_close_ int rfd = agent_fs_open(root, q->path,
							O_RDONLY | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK, 0);
		if (rfd < 0) {
			r = rfd;
			break;
		}
		r = fstat_into(rfd, p);
		if (r < 0)
			break;
		if (!S_ISREG(p->attr.mode)) {
			p->eof = true; /* replaced under us: no data, as above */
			break;
		}
		r = read_some(rfd, 0, clamp_io(q->count), &data, &p->data.len, &p->eof);
		p->data.data = data;
		break;
	}
	case PROTO_READ: {
		bool done;
		if (q->offset == PROTO_OFF_CUR)
			pthread_mutex_lock(&rq->handle->lock);
		done = read_into_frame(rq, fd, q->offset, clamp_io(q->count));
		if (q->offset == PROTO_OFF_CUR)
			pthread_mutex_unlock(&rq->handle->lock);
		if (done)
			return;
		r = -errno;
		break;
	}
	case PROTO_WRITE: {
		ssize_t n;
		if (q->offset == PROTO_OFF_CUR)
			n = write(fd, q->data.data, q->data.len);
		else
			n = pwrite(fd, q->data.data, q->data.len, (off_t)q->offset);
		if (n < 0)
			r = -errno;
		else
			p->count = (uint32_t)n;
		break;
	}
	case PROTO_TRUNCATE:
		r = agent_fs_truncate(root, q->path, (off_t)q->size);
		if (r == 0)
			r = stat_into(root, q->path, true, p);
		break;
	case PROTO_FTRUNCATE:
		r = ftruncate(fd, (off_t)q->size) < 0 ? -errno : fstat_into(fd, p);
		break;
	case PROTO_READDIR: {
		uint32_t budget = MIN(q->count, PROTO_IO_MAX);
		size_t max = MAX(budget / proto_dirent_size(8), (size_t)1);
		struct agent_fs_dirent *ents = xcalloc(max, sizeof(*ents));
		struct buf items;
		uint32_t used = 0, count = 0;
		buf_init(&items);
		pthread_mutex_lock(&rq->handle->lock);
		r = agent_fs_readdir(fd, q->offset, ents, max);
		pthread_mutex_unlock(&rq->handle->lock);
		if (r >= 0) {
			p->eof = (size_t)r < max;
			for (int i = 0; i < r; i++) {
				size_t sz = proto_dirent_size(strlen(ents[i].name));
				if (used + sz > budget && count > 0) {
					p->eof = false;
					break;
				}
				struct proto_dirent e = {
					.cookie = ents[i].cookie,
					.flags = ents[i].st.st_mode ? PROTO_DIRENT_ATTR : 0,
					.name = ents[i].name,
				};
				if (ents[i].st.st_mode)
					agent_attr_from_stat(&e.attr, &ents[i].st);
				proto_dirent_put(&items, &e);
				used += (uint32_t)sz;
				count++;
			}
			r = 0;
		}
		free(ents);
		p->list.count = count;
		p->list.len = (uint32_t)buf_len(&items);
		data = (uint8_t *)buf_steal(&items, NULL);
		p->list.data = data;
		break;
	}
	case PROTO_READLINK: {
		char target[4096];
		r = agent_fs_readlink(root, q->path, target, sizeof(target) - 1);
		if (r >= 0) {
			target[r] = '\0';
			text = xstrdup(target);
			p->str = text;
			r = 0;
		}
		break;
	}
	case PROTO_MKDIR:
		r = agent_fs_mkdir(root, q->path, q->mode);
		if (r == 0)
			r = stat_into(root, q->path, false, p);
		break;
	case PROTO_MKNOD:
		r = agent_fs_mknod(root, q->path, q->mode, (dev_t)q->rdev);
		if (r == 0)
			r = stat_into(root, q->path, false, p);
		break;
	case PROTO_RMDIR:
		r = agent_fs_rmdir(root, q->path);
		break;
	case PROTO_UNLINK:
		r = agent_fs_unlink(root, q->path);
		break;
	case PROTO_RENAME:
		r = agent_fs_rename(root, q->path, q->path2, q->flags);
		break;
	case PROTO_SYMLINK:
		r = agent_fs_symlink(root, q->path2, q->path);
		if (r == 0)
			r = stat_into(root, q->path, false, p);
		break;
	case PROTO_LINK:
		r = agent_fs_link(root, q->path, q->path2);
		if (r == 0)
			r = stat_into(root, q->path2, false, p);
		break;
	case PROTO_CHMOD:
		r = agent_fs_chmod(root, q->path, q->mode);
		if (r == 0)
			r = stat_into(root, q->path, true, p);
		break;
	case PROTO_CHOWN:
		r = agent_fs_chown(root, q->path, q->uid == PROTO_ID_KEEP ? (uid_t)-1 : q->uid,
				   q->gid == PROTO_ID_KEEP ? (gid_t)-1 : q->gid, follow);
		if (r == 0)
			r = stat_into(root, q->path, follow, p);
		break;
	case PROTO_UTIMENS: {
		struct timespec ts[2] = {
			{ (time_t)q->atime.sec, q->atime.nsec == PROTO_UTIME_NOW    ? UTIME_NOW
						: q->atime.nsec == PROTO_UTIME_OMIT ? UTIME_OMIT
										    : (long)q->atime.nsec },
			{ (time_t)q->mtime.sec, q->mtime.nsec == PROTO_UTIME_NOW    ? UTIME_NOW
						: q->mtime.nsec == PROTO_UTIME_OMIT ? UTIME_OMIT
										    : (long)q->mtime.nsec },
		};
		r = agent_fs_utimens(root, q->path, ts, follow);
		if (r == 0)
			r = stat_into(root, q->path, follow, p);
		break;
	}
	case PROTO_STATFS:
		r = agent_fs_statfs(root, q->path, &sfs);
		if (r == 0)
			p->statfs = (struct proto_statfs){
				.blocks = sfs.f_blocks,
				.bfree = sfs.f_bfree,
				.bavail = sfs.f_bavail,
				.files = sfs.f_files,
				.ffree = sfs.f_ffree,
				.bsize = (uint32_t)sfs.f_bsize,
				.frsize = (uint32_t)sfs.f_frsize,
				.namemax = (uint32_t)sfs.f_namelen,
			};
		break;
	case PROTO_FSYNC:
		r = ((q->flags & PROTO_FSYNC_DATA) ? fdatasync(fd) : fsync(fd)) < 0 ? -errno : 0;
		break;
	case PROTO_GETXATTR:
	case PROTO_LISTXATTR: {
		uint32_t cap = MIN(q->count, PROTO_IO_MAX);
		ssize_t n;
		data = cap ? xmalloc(cap) : NULL;
		if (rq->msg.type == PROTO_GETXATTR)
			n = agent_fs_getxattr(root, q->path, q->name, data, cap);
		else
			n = agent_fs_listxattr(root, q->path, (char *)data, cap);
		if (n < 0) {
			r = (int)n;
			break;
		}
		p->count = (uint32_t)n;
		if (cap) {
			p->data.data = data;
			p->data.len = (uint32_t)n;
		}
		break;
	}
	case PROTO_SETXATTR:
		r = agent_fs_setxattr(root, q->path, q->name, q->data.data, q->data.len,
				      (int)q->flags);
		break;
	case PROTO_REMOVEXATTR:
		r = agent_fs_removexattr(root, q->path, q->name);
		break;
	case PROTO_ACCESS:
		r = agent_fs_access(root, q->path, (int)q->mode);
		break;
	case PROTO_GETENV: {
		struct buf items;
		char **env = NULL;
		r = agent_target_environ(rq->target, &env, NULL);
		if (r < 0)
			break;
		buf_init(&items);
		for (char **e = env; *e; e++)
			proto_put_str(&items, *e);
		p->list.count = (uint32_t)r;
		p->list.len = (uint32_t)buf_len(&items);
		data = (uint8_t *)buf_steal(&items, NULL);
		p->list.data = data;
		agent_strv_free(env);
		r = 0;
		break;
	}
	case PROTO_RESOLVCONF: {
		size_t len;
		r = agent_target_read_file(rq->target, "/etc/resolv.conf", 65536, &text, &len);
		if (r == 0) {
			p->data.data = (const uint8_t *)text;
			p->data.len = (uint32_t)len;
		}
		break;
	}
	default:
		r = -ENOSYS;
		break;
	}
	(void)st;
	if (r < 0 && rq->new_fd >= 0) {
		close(rq->new_fd);
		rq->new_fd = -1;
	}
	if (r < 0)
		proto_msg_error(&rep, &rq->msg, -r);
	if (proto_msg_encode(&rq->reply, &rep) < 0) {
		/* Cannot happen for sizes we clamp; answer with an error rather
		 * than leave the request without a response. */
		proto_msg_error(&rep, &rq->msg, EIO);
		proto_msg_encode(&rq->reply, &rep);
	}
}
