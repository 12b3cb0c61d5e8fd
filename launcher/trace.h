/* `podenv exec --trace FILE`: the session's routing decisions as JSON
 * lines, and the text both the trace and `podenv explain` print for a
 * decision (so the two read the same). Private to launcher/; loop thread
 * only.
 *
 * One object per line, appended with one write(2) each (O_APPEND: lines
 * from concurrent writers never interleave):
 *   {"kind":"file","path":P,"flags":"read"|"write"|"exec"|"write,exec",
 *    "verdict":V,"rule":R,"pattern":P|null,"mapped":P[,"override":O]}
 *   {"kind":"tcp"|"udp","dest":"ADDR:PORT","verdict":"remote"|"local","rule":R}
 *   {"kind":"dns","name":N,"verdict":"remote"|"local","rule":R}
 *   {"kind":"listen","port":L,"pod_port":R,"verdict":"mirror"|"steal"|"local",
 *    "filter":F|null,"rule":R}
 * A line identical to one already written is not written again (a file
 * path is routed on every lookup, open and getattr).
 */
#ifndef PODENV_LAUNCHER_TRACE_H
#define PODENV_LAUNCHER_TRACE_H

#include "common/err.h"
#include "launcher/net.h"
#include "vfs/vfs.h"

struct trace;

/* Opens path for appending (created 0644). *ret: caller frees with
 * trace_free. -errno with reterr set. */
int trace_open(const char *path, struct trace **ret, struct err *reterr);
void trace_free(struct trace *t);

/* One file routing decision: d is the router's (borrowed); final is the
 * verdict the FUSE layer applied, override why it differs from d's
 * (NULL when it does not). Matches vfs_mount_opts.trace. */
void trace_file(void *t, const char *path, unsigned flags, const struct vfs_decision *d,
		enum vfs_verdict final, const char *override);

/* One new flow's decision, and one name's resolution decision. */
void trace_flow(struct trace *t, const struct net_dest *dest, const struct net_decision *d);
void trace_dns(struct trace *t, const char *name, const struct net_decision *d);
/* A unix socket connect sent to the pod: pattern is the unix_streams entry
 * (index i) that matched. */
void trace_unix(struct trace *t, const char *path, int i, const char *pattern);

/* The app listens on TCP port `port`: subscribed as pod port pod_port
 * with mode ("mirror"/"steal") and filter ("" for every connection), or,
 * filter NULL, not subscribed because of `why`. */
void trace_listen(struct trace *t, uint16_t port, uint16_t pod_port, const char *mode,
		  const char *filter, const char *why);

/* The rule text of a file decision: vfs_decision_format without its
 * "VERDICT: " prefix. Like snprintf. */
int trace_file_rule(const struct vfs_decision *d, char *buf, size_t size);

/* "read", "write", "exec" or "write,exec". Static. */
const char *trace_flags_name(unsigned flags);

/* A destination as text: "1.1.1.1:53", "[::1]:53", "api:80"; port 0 is
 * left out. Like snprintf. */
int trace_dest_format(const struct net_dest *d, char *buf, size_t size);

#endif
