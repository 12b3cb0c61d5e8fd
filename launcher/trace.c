/* The --trace file (trace.h): routing decisions as JSON lines, written as
 * the session makes them. The text of each rule is the one `podenv
 * explain` prints, from the same formatters.
 */
#define LOG_TARGET "podenv::trace"
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/map.h"
#include "launcher/trace.h"

/* Past this many distinct lines, stop remembering (lines may repeat). */
#define TRACE_SEEN_MAX (1u << 20)

struct trace {
	int fd;
	bool failed;	 /* a write failed: said once, then quiet */
	struct map seen; /* hash of each line written */
};

int trace_open(const char *path, struct trace **ret, struct err *reterr)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0644);
	struct trace *t;

	if (fd < 0)
		return err_set_errno(reterr, -errno, "--trace %s", path);
	t = xcalloc(1, sizeof(*t));
	t->fd = fd;
	*ret = t;
	return 0;
}

void trace_free(struct trace *t)
{
	if (!t)
		return;
	close(t->fd);
	map_done(&t->seen);
	free(t);
}

static void json_string(struct buf *b, const char *s)
{
	if (!s) {
		buf_printf(b, "null");
		return;
	}
	buf_append(b, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			buf_printf(b, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			buf_printf(b, "\\u%04x", *p);
		else
			buf_append(b, p, 1);
	}
	buf_append(b, "\"", 1);
}

static uint64_t line_hash(const uint8_t *p, size_t n)
{
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ULL;
	return h ? h : 1;
}

/* Ends the object, and writes it unless it was written before. */
static void emit(struct trace *t, struct buf *b)
{
	uint64_t h;

	buf_append(b, "}\n", 2);
	h = line_hash(buf_data(b), buf_len(b));
	if (!map_get(&t->seen, h)) {
		if (map_len(&t->seen) < TRACE_SEEN_MAX)
			map_put(&t->seen, h, (void *)1);
		if (write(t->fd, buf_data(b), buf_len(b)) != (ssize_t)buf_len(b) && !t->failed) {
			log_warn("writing the trace: %s", strerror(errno ? errno : EIO));
			t->failed = true;
		}
	}
	buf_done(b);
}

const char *trace_flags_name(unsigned flags)
{
	switch (flags & (VFS_ROUTE_WRITE | VFS_ROUTE_EXEC)) {
	case VFS_ROUTE_WRITE:
		return "write";
	case VFS_ROUTE_EXEC:
		return "exec";
	case VFS_ROUTE_WRITE | VFS_ROUTE_EXEC:
		return "write,exec";
	default:
		return "read";
	}
}

int trace_file_rule(const struct vfs_decision *d, char *buf, size_t size)
{
	char text[2 * VFS_PATH_MAX + 512];
	size_t skip = strlen(vfs_verdict_name(d->verdict)) + 2;

	vfs_decision_format(d, text, sizeof(text));
	if (strlen(text) < skip)
		skip = 0;
	return snprintf(buf, size, "%s", text + skip);
}

int trace_dest_format(const struct net_dest *d, char *buf, size_t size)
{
	char a[INET6_ADDRSTRLEN] = "";
	const char *host = d->name;

	if (!host) {
		inet_ntop(d->family ? d->family : AF_INET, d->addr, a, sizeof(a));
		host = a;
	}
	if (!d->port)
		return snprintf(buf, size, "%s", host);
	if (strchr(host, ':'))
		return snprintf(buf, size, "[%s]:%u", host, d->port);
	return snprintf(buf, size, "%s:%u", host, d->port);
}

void trace_file(void *userdata, const char *path, unsigned flags, const struct vfs_decision *d,
		enum vfs_verdict final, const char *override)
{
	struct trace *t = userdata;
	char rule[2 * VFS_PATH_MAX + 512];
	struct buf b;

	trace_file_rule(d, rule, sizeof(rule));
	buf_init(&b);
	buf_printf(&b, "{\"kind\":\"file\",\"path\":");
	json_string(&b, path);
	buf_printf(&b, ",\"flags\":\"%s\",\"verdict\":", trace_flags_name(flags));
	json_string(&b, vfs_verdict_name(d->verdict));
	buf_printf(&b, ",\"rule\":");
	json_string(&b, rule);
	buf_printf(&b, ",\"pattern\":");
	json_string(&b, d->pattern);
	buf_printf(&b, ",\"mapped\":");
	json_string(&b, d->path);
	if (override) {
		buf_printf(&b, ",\"override\":");
		json_string(&b, override);
		buf_printf(&b, ",\"served\":");
		json_string(&b, vfs_verdict_name(final));
	}
	emit(t, &b);
}

static void net_line(struct trace *t, const char *kind, const char *key, const char *what,
		     const struct net_decision *d)
{
	char rule[1024];
	struct buf b;

	net_decision_format(d, rule, sizeof(rule));
	buf_init(&b);
	buf_printf(&b, "{\"kind\":\"%s\",\"%s\":", kind, key);
	json_string(&b, what);
	buf_printf(&b, ",\"verdict\":\"%s\",\"rule\":", net_verdict_name(d));
	json_string(&b, rule);
	emit(t, &b);
}

void trace_flow(struct trace *t, const struct net_dest *dest, const struct net_decision *d)
{
	char text[300];

	trace_dest_format(dest, text, sizeof(text));
	net_line(t, dest->proto == IPPROTO_UDP ? "udp" : "tcp", "dest", text, d);
}

void trace_dns(struct trace *t, const char *name, const struct net_decision *d)
{
	net_line(t, "dns", "name", name, d);
}

void trace_unix(struct trace *t, const char *path, int i, const char *pattern)
{
	char rule[600];
	struct buf b;

	snprintf(rule, sizeof(rule), "feature.network.outgoing.unix_streams[%d] \"%s\"", i,
		 pattern);
	buf_init(&b);
	buf_printf(&b, "{\"kind\":\"unix\",\"path\":");
	json_string(&b, path);
	buf_printf(&b, ",\"verdict\":\"remote\",\"rule\":");
	json_string(&b, rule);
	emit(t, &b);
}

void trace_listen(struct trace *t, uint16_t port, uint16_t pod_port, const char *mode,
		  const char *filter, const char *why)
{
	struct buf b;

	buf_init(&b);
	buf_printf(&b, "{\"kind\":\"listen\",\"port\":%u,\"pod_port\":%u,\"verdict\":", port,
		   pod_port);
	json_string(&b, filter ? mode : "local");
	buf_printf(&b, ",\"filter\":");
	if (filter && *filter)
		json_string(&b, filter);
	else
		buf_printf(&b, "null");
	buf_printf(&b, ",\"rule\":");
	json_string(&b, why		    ? why
			: filter && *filter ? "feature.network.incoming.http_filter"
					    : "feature.network.incoming.mode");
	emit(t, &b);
}
