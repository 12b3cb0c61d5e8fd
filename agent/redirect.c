/* Redirect rules for incoming traffic (agent/redirect.h).
 *
 * The rules are written by the system's own tools, run inside the
 * namespace the agent lives in: `iptables-restore`/`ip6tables-restore`
 * (whichever variant, legacy or nf_tables, the system selects) or `nft -f`
 * with `--nftables`. Both take a whole batch and apply it atomically, so
 * a change of the port set is never half done; and there is no stable
 * library for iptables to link instead (libiptc is internal, libnftables
 * would cover only one backend). Rules are always rewritten whole from
 * the current port set: the chains (or the table) are declared again,
 * which empties them, then filled.
 *
 *   nat PREROUTING -> PODENV-<id>-PRE:  tcp dport P -> REDIRECT to lport
 *   nat OUTPUT     -> PODENV-<id>-OUT:  our mark -> RETURN;
 *                                       -o lo tcp dport P -> REDIRECT
 *
 * OUTPUT catches the pod's own callers (loopback, or the pod's address,
 * which is routed through lo); the mark keeps the agent's pass-through
 * connections to the original app out of the redirect.
 */
#define LOG_TARGET "podenv::agent::redirect"
#include <assert.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/redirect.h"
#include "common/buf.h"
#include "common/log.h"

extern char **environ;

#define ID_LEN 8
#define CHAIN_PREFIX "PODENV-"
#define TABLE_PREFIX "podenv_"

struct agent_redirect {
	bool nft;
	bool v6;
	/* The first 4 hex digits are the agent's sequence number (one more
	 * than any live agent's here), the rest random. */
	char id[ID_LEN + 1];
	unsigned seq;
	uint16_t lport;
	int alive_fd;
	int guard_fd; /* write end of the guard's pipe: EOF tells it we are gone */
	pid_t guard_pid;
	bool jumps; /* iptables: the jumps to our chains exist */
};

/* --- running the tools ------------------------------------------------------- */

static const char *const tool_dirs[] = {"/usr/sbin", "/sbin", "/usr/bin", "/bin", "/"};

static int tool_path(const char *tool, char *out, size_t outsz)
{
	for (size_t i = 0; i < sizeof(tool_dirs) / sizeof(tool_dirs[0]); i++) {
		snprintf(out, outsz, "%s%s%s", tool_dirs[i], tool_dirs[i][1] ? "/" : "", tool);
		if (access(out, X_OK) == 0)
			return 0;
	}
	return -ENOENT;
}

struct tool_run {
	const char *name;
	pid_t pid;
	int out_fd; /* its stdout and stderr */
};

/* Starts tool args (NULL-terminated, args[0] is the tool's name), feeding
 * it input (NULL: nothing); collect it with tool_finish(). -ENOENT when
 * it is not installed, with reterr saying so. */
static int tool_start(const char *const *args, const char *input, struct tool_run *t,
		      struct err *reterr)
{
	char path[256];
	int in[2] = {-1, -1}, o[2] = {-1, -1};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none;
	int r;

	t->name = args[0];
	t->out_fd = -1;
	if (tool_path(args[0], path, sizeof(path)) < 0)
		return err_set(reterr, -ENOENT,
			       "%s not found (install the iptables or nftables package in the "
			       "agent's image)",
			       args[0]);
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(o, O_CLOEXEC) < 0) {
		r = err_set_errno(reterr, -errno, "pipe");
		goto fail;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, o[1], 1);
	posix_spawn_file_actions_adddup2(&fa, o[1], 2);
	posix_spawnattr_init(&at);
	sigemptyset(&none);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
	r = posix_spawn(&t->pid, path, &fa, &at, (char *const *)args, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (r != 0) {
		r = err_set_errno(reterr, -r, "running %s", path);
		goto fail;
	}
	closep(&in[0]);
	closep(&o[1]);
	if (input) {
		/* Batches are a few KiB at most: the pipe takes them whole. */
		size_t len = strlen(input), done = 0;
		while (done < len) {
			ssize_t n = write(in[1], input + done, len - done);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				break;
			done += (size_t)n;
		}
	}
	closep(&in[1]);
	t->out_fd = o[0];
	return 0;
fail:
	closep(&in[0]);
	closep(&in[1]);
	closep(&o[0]);
	closep(&o[1]);
	return r;
}

/* Waits for a started tool, collecting its output into *out (may be
 * NULL). 0 when it exits 0; otherwise -EIO, or -EPERM when it says it
 * lacks the privilege, with reterr naming the tool and its first line. */
static int tool_finish(struct tool_run *t, struct buf *out, struct err *reterr)
{
	struct buf tmp;
	int r, status;

	buf_init(&tmp);
	for (;;) {
		void *p = buf_reserve(&tmp, 4096);
		ssize_t n = read(t->out_fd, p, 4096);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		buf_commit(&tmp, (size_t)n);
	}
	closep(&t->out_fd);
	while (waitpid(t->pid, &status, 0) < 0 && errno == EINTR)
		;
	buf_append(&tmp, "", 1);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		const char *text = (const char *)buf_data(&tmp);
		/* The usual reason is a missing CAP_NET_ADMIN. */
		bool perm = strstr(text, "ermission denied") || strstr(text, "not permitted");
		r = err_set(reterr, perm ? -EPERM : -EIO, "%s failed: %.*s", t->name,
			    (int)strcspn(text, "\n"), *text ? text : "(no output)");
	} else {
		r = 0;
	}
	if (out)
		buf_append(out, buf_data(&tmp), buf_len(&tmp) - 1);
	buf_done(&tmp);
	return r;
}

/* Runs n tools at once (IPv4 and IPv6 batches, listings of every
 * backend): the loop waits for the slowest, not for the sum. rs[i] (may
 * be NULL) gets each one's result; returns the first error (reterr set
 * for it alone). outs[i] may be NULL. */
#define TOOLS_MAX 3
static int run_tools(size_t n, const char *const *const args[], const char *const inputs[],
		     struct buf *const outs[], int rs[], struct err *reterr)
{
	struct tool_run t[TOOLS_MAX];
	int r = 0, each[TOOLS_MAX];

	assert(n <= TOOLS_MAX);
	for (size_t i = 0; i < n; i++) {
		each[i] = tool_start(args[i], inputs ? inputs[i] : NULL, &t[i],
				     r < 0 ? NULL : reterr);
		if (each[i] < 0 && r == 0)
			r = each[i];
	}
	for (size_t i = 0; i < n; i++) {
		if (each[i] == 0) {
			each[i] = tool_finish(&t[i], outs ? outs[i] : NULL, r < 0 ? NULL : reterr);
			if (each[i] < 0 && r == 0)
				r = each[i];
		}
		if (rs)
			rs[i] = each[i];
	}
	return r;
}

static int run_tool(const char *const *args, const char *input, struct buf *out, struct err *reterr)
{
	const char *const *const a[] = {args};
	const char *const in[] = {input};
	struct buf *const o[] = {out};

	return run_tools(1, a, in, o, NULL, reterr);
}

/* --- identities --------------------------------------------------------------- */

/* Binds the abstract unix name "@<what>" in this network namespace:
 * an fd, or -EADDRINUSE while another process holds it. */
static int abstract_bind(const char *what)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t n = strlen(what);
	int fd;

	if (n + 1 > sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path + 1, what, n);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa,
		 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n)) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

static int alive_bind(const char *id)
{
	char name[64];

	snprintf(name, sizeof(name), "podenv-agent/%s", id);
	return abstract_bind(name);
}

int agent_redirect_steal_lock(uint16_t port)
{
	char name[64];

	snprintf(name, sizeof(name), "podenv-steal/%u", port);
	return abstract_bind(name);
}

static bool valid_id(const char *s)
{
	for (int i = 0; i < ID_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* --- iptables ------------------------------------------------------------------ */

/* Agent ids with objects in a listing: iptables-save's ":PODENV-<id>-"
 * chains, or nft's "table inet podenv_<id>". */
static void ids_parse(const char *text, bool nft, void (*fn)(const char *id, void *u), void *u)
{
	const char *mark = nft ? "table inet " TABLE_PREFIX : "\n:" CHAIN_PREFIX;

	for (const char *p = text; (p = strstr(p, mark));) {
		p += strlen(mark);
		if (strlen(p) >= ID_LEN && valid_id(p) &&
		    (nft ? (p[ID_LEN] == '\n' || p[ID_LEN] == '\0') : p[ID_LEN] == '-')) {
			char id[ID_LEN + 1];
			memcpy(id, p, ID_LEN);
			id[ID_LEN] = '\0';
			fn(id, u);
		}
	}
}

/* The batch that removes the jumps to and the chains of agent `id` from
 * an iptables-save dump (as it is now, so a rule another tool changed is
 * still found); false when nothing of it is there. */
static bool ipt_remove_batch(const char *save, const char *id, struct buf *batch)
{
	char chain[32];
	struct buf tail;
	bool any = false;

	snprintf(chain, sizeof(chain), CHAIN_PREFIX "%s-", id);
	buf_init(&tail);
	buf_printf(batch, "*nat\n");
	for (const char *line = save; *line;) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		const char *j = memmem(line, len, "-j ", 3);
		if (len > 3 && line[0] == '-' && line[1] == 'A' && j &&
		    strncmp(j + 3, chain, strlen(chain)) == 0) {
			/* "-A CHAIN spec" -> "-D CHAIN spec" */
			buf_printf(batch, "-D%.*s\n", (int)(len - 2), line + 2);
			any = true;
		} else if (line[0] == ':' && strncmp(line + 1, chain, strlen(chain)) == 0) {
			size_t n = strcspn(line + 1, " \n");
			buf_printf(&tail, "-F %.*s\n-X %.*s\n", (int)n, line + 1, (int)n, line + 1);
			any = true;
		}
		line += len + (nl ? 1 : 0);
	}
	buf_append(batch, buf_data(&tail), buf_len(&tail));
	buf_printf(batch, "COMMIT\n");
	buf_append(batch, "", 1);
	buf_done(&tail);
	return any;
}

static const char *const ipt_save_v4[] = {"iptables-save", "-t", "nat", NULL};
static const char *const ipt_save_v6[] = {"ip6tables-save", "-t", "nat", NULL};
static const char *const ipt_restore_v4[] = {"iptables-restore", "-w", "5", "--noflush", NULL};
static const char *const ipt_restore_v6[] = {"ip6tables-restore", "-w", "5", "--noflush", NULL};

/* Removes agent id's iptables rules, IPv4 and IPv6 at once. Nothing to
 * remove is success. */
static int ipt_remove(const char *id, struct err *reterr)
{
	const char *const *const saves[] = {ipt_save_v4, ipt_save_v6};
	const char *const *restores[2];
	const char *batches[2];
	struct buf save[2], batch[2];
	struct buf *const outs[] = {&save[0], &save[1]};
	int rs[2], r;
	size_t n = 0;

	for (int i = 0; i < 2; i++) {
		buf_init(&save[i]);
		buf_init(&batch[i]);
	}
	r = run_tools(2, saves, NULL, outs, rs, reterr);
	for (int i = 0; i < 2; i++) {
		if (rs[i] < 0)
			continue;
		buf_append(&save[i], "", 1);
		if (ipt_remove_batch((const char *)buf_data(&save[i]), id, &batch[i])) {
			restores[n] = i ? ipt_restore_v6 : ipt_restore_v4;
			batches[n++] = (const char *)buf_data(&batch[i]);
		}
	}
	if (n > 0) {
		int r2 = run_tools(n, restores, batches, NULL, NULL, r < 0 ? NULL : reterr);
		if (r == 0)
			r = r2;
	}
	for (int i = 0; i < 2; i++) {
		buf_done(&save[i]);
		buf_done(&batch[i]);
	}
	return r;
}

/* The batch that makes rd's chains in one family redirect exactly
 * ports[0..n) (n > 0). */
static void ipt_set_batch(const struct agent_redirect *rd, const uint16_t *ports, size_t n,
			  struct buf *b)
{
	/* Declaring a chain with --noflush empties it: the rules below are
	 * the whole new content. */
	buf_printf(b, "*nat\n:" CHAIN_PREFIX "%s-PRE - [0:0]\n:" CHAIN_PREFIX "%s-OUT - [0:0]\n",
		   rd->id, rd->id);
	if (!rd->jumps)
		buf_printf(
			b,
			"-I PREROUTING 1 -m comment --comment \"podenv-agent %s\" -j " CHAIN_PREFIX
			"%s-PRE\n"
			"-I OUTPUT 1 -m comment --comment \"podenv-agent %s\" -j " CHAIN_PREFIX
			"%s-OUT\n",
			rd->id, rd->id, rd->id, rd->id);
	/* Pass-through connections of this agent and of every older one
	 * (marks BASE|1 .. BASE|seq) go past this chain, as CIDR-like blocks
	 * of the range: see agent_redirect_mark(). */
	for (unsigned lo = 1; lo <= rd->seq;) {
		unsigned size = 1;
		while ((lo & (size * 2 - 1)) == 0 && lo + size * 2 - 1 <= rd->seq)
			size *= 2;
		buf_printf(b, "-A " CHAIN_PREFIX "%s-OUT -m mark --mark 0x%x/0x%x -j RETURN\n",
			   rd->id, AGENT_REDIRECT_MARK | lo,
			   AGENT_REDIRECT_MARK_MASK | (0xffffu & ~(size - 1)));
		lo += size;
	}
	for (size_t i = 0; i < n; i++)
		buf_printf(b,
			   "-A " CHAIN_PREFIX "%s-PRE -p tcp -m tcp --dport %u -j REDIRECT "
			   "--to-ports %u\n"
			   "-A " CHAIN_PREFIX "%s-OUT -o lo -p tcp -m tcp --dport %u -j REDIRECT "
			   "--to-ports %u\n",
			   rd->id, ports[i], rd->lport, rd->id, ports[i], rd->lport);
	buf_printf(b, "COMMIT\n");
	buf_append(b, "", 1);
}

/* IPv4 and IPv6 at once (the same rules); all or nothing. */
static int ipt_set(struct agent_redirect *rd, const uint16_t *ports, size_t n, struct err *reterr)
{
	const char *const *const restores[] = {ipt_restore_v4, ipt_restore_v6};
	const char *batches[2];
	struct buf b;
	int r;

	if (n == 0) {
		r = ipt_remove(rd->id, reterr);
		if (r == 0)
			rd->jumps = false;
		return r;
	}
	buf_init(&b);
	ipt_set_batch(rd, ports, n, &b);
	log_debug("iptables-restore%s:\n%s", rd->v6 ? " and ip6tables-restore" : "",
		  (const char *)buf_data(&b));
	batches[0] = batches[1] = (const char *)buf_data(&b);
	r = run_tools(rd->v6 ? 2 : 1, restores, batches, NULL, NULL, reterr);
	buf_done(&b);
	if (r < 0) {
		/* One family may have taken it: take it back out. */
		ipt_remove(rd->id, NULL);
		rd->jumps = false;
		return r;
	}
	rd->jumps = true;
	return 0;
}

/* --- nft ----------------------------------------------------------------------- */

static int nft_run(const char *batch, struct err *reterr)
{
	const char *args[] = {"nft", "-f", "-", NULL};

	log_debug("nft:\n%s", batch);
	return run_tool(args, batch, NULL, reterr);
}

static int nft_remove(const char *id, struct err *reterr)
{
	char batch[128];

	/* "add" first: deleting a table that is not there is an error. */
	snprintf(batch, sizeof(batch),
		 "add table inet " TABLE_PREFIX "%s\ndelete table inet " TABLE_PREFIX "%s\n", id,
		 id);
	return nft_run(batch, reterr);
}

/* Newer agents' chains run first, as iptables' -I 1 makes them (so a
 * mirror is shared: each agent's pass-through reaches the next older
 * one); between conntrack (-200) and the default dstnat (-100). */
static int nft_priority(const struct agent_redirect *rd)
{
	return -110 - (int)MIN(rd->seq, 89u);
}

static int nft_set(struct agent_redirect *rd, const uint16_t *ports, size_t n, struct err *reterr)
{
	struct buf b, set;
	int r;

	if (n == 0)
		return nft_remove(rd->id, reterr);
	buf_init(&set);
	for (size_t i = 0; i < n; i++)
		buf_printf(&set, "%s%u", i ? ", " : "", ports[i]);
	buf_append(&set, "", 1);
	buf_init(&b);
	/* One transaction: the old table goes and the new one comes at once. */
	buf_printf(&b,
		   "add table inet " TABLE_PREFIX "%s\n"
		   "delete table inet " TABLE_PREFIX "%s\n"
		   "table inet " TABLE_PREFIX "%s {\n"
		   "  chain pre {\n"
		   "    type nat hook prerouting priority %d; policy accept;\n"
		   "    tcp dport { %s } redirect to :%u\n"
		   "  }\n"
		   "  chain out {\n"
		   "    type nat hook output priority %d; policy accept;\n"
		   "    meta mark & 0x%x == 0x%x meta mark & 0xffff 1-%u return\n"
		   "    oifname \"lo\" tcp dport { %s } redirect to :%u\n"
		   "  }\n"
		   "}\n",
		   rd->id, rd->id, rd->id, nft_priority(rd), (const char *)buf_data(&set),
		   rd->lport, nft_priority(rd), AGENT_REDIRECT_MARK_MASK, AGENT_REDIRECT_MARK,
		   rd->seq, (const char *)buf_data(&set), rd->lport);
	buf_append(&b, "", 1);
	r = nft_run((const char *)buf_data(&b), reterr);
	buf_done(&b);
	buf_done(&set);
	return r;
}

/* --- both ---------------------------------------------------------------------- */

static int remove_all(bool nft, const char *id, struct err *reterr)
{
	return nft ? nft_remove(id, reterr) : ipt_remove(id, reterr);
}

struct stale_ctx {
	bool nft;
	const char *self;
	unsigned max_live; /* the largest sequence number of a live agent */
};

static void remove_if_stale(const char *id, void *u)
{
	struct stale_ctx *c = u;
	struct err e;
	int fd;

	if (c->self && strcmp(id, c->self) == 0)
		return;
	fd = alive_bind(id);
	if (fd < 0) {
		/* Its agent is alive (or we cannot tell): leave it. */
		unsigned seq = 0;
		sscanf(id, "%4x", &seq);
		if (seq > c->max_live)
			c->max_live = seq;
		return;
	}
	err_clear(&e);
	if (remove_all(c->nft, id, &e) < 0)
		log_warn("cannot remove the stale redirect rules of agent %s: %s", id, e.msg);
	else
		log_info("removed stale redirect rules of agent %s (%s)", id,
			 c->nft ? "nft" : "iptables");
	close(fd);
}

/* Removes the stale rules of dead agents, in every backend installed here
 * (an agent killed with another setting may have left them); the three
 * listings run at once. Returns the largest sequence number of the live
 * agents with rules here. */
static unsigned remove_stale(const char *self)
{
	static const char *const nft_list[] = {"nft", "list", "tables", NULL};
	const char *const *args[TOOLS_MAX] = {NULL};
	bool is_nft[TOOLS_MAX] = {false};
	struct buf out[TOOLS_MAX];
	struct buf *outs[TOOLS_MAX] = {NULL};
	struct stale_ctx c = {.self = self};
	char path[256];
	int rs[TOOLS_MAX];
	size_t n = 0;

	if (tool_path("iptables-save", path, sizeof(path)) == 0) {
		is_nft[n] = false;
		args[n++] = ipt_save_v4;
		if (tool_path("ip6tables-save", path, sizeof(path)) == 0) {
			is_nft[n] = false;
			args[n++] = ipt_save_v6;
		}
	}
	if (tool_path("nft", path, sizeof(path)) == 0) {
		is_nft[n] = true;
		args[n++] = nft_list;
	}
	for (size_t i = 0; i < n; i++) {
		buf_init(&out[i]);
		outs[i] = &out[i];
	}
	if (n == 0)
		return 0;
	run_tools(n, (const char *const *const *)args, NULL, outs, rs, NULL);
	for (size_t i = 0; i < n; i++) {
		if (rs[i] == 0) {
			buf_append(&out[i], "", 1);
			c.nft = is_nft[i];
			ids_parse((const char *)buf_data(&out[i]), is_nft[i], remove_if_stale, &c);
		}
		buf_done(&out[i]);
	}
	return c.max_live;
}

/* --- the guard ------------------------------------------------------------------ */

static int guard_start(struct agent_redirect *rd, struct err *reterr)
{
	const char *args[] = {"podenv-agent", "--redirect-guard", rd->id,
			      rd->nft ? "nft" : "iptables", NULL};
	int p[2];
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none;
	int r;

	if (pipe2(p, O_CLOEXEC) < 0)
		return err_set_errno(reterr, -errno, "pipe");
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, p[0], 3);
	posix_spawnattr_init(&at);
	sigemptyset(&none);
	posix_spawnattr_setsigmask(&at, &none);
	/* Its own session: a signal to the agent's process group (Ctrl-C)
	 * must not take the guard with it. */
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSID);
	r = posix_spawn(&rd->guard_pid, "/proc/self/exe", &fa, &at, (char *const *)args, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(p[0]);
	if (r != 0) {
		close(p[1]);
		return err_set_errno(reterr, -r, "starting the redirect guard");
	}
	rd->guard_fd = p[1];
	return 0;
}

int agent_redirect_clean_start(pid_t *ret_pid)
{
	const char *args[] = {"podenv-agent", "--redirect-clean", NULL};
	char path[256];
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none;
	int r;

	if (tool_path("iptables-save", path, sizeof(path)) < 0 &&
	    tool_path("nft", path, sizeof(path)) < 0)
		return 0; /* no tool, so no rule of ours can exist */
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawnattr_init(&at);
	sigemptyset(&none);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSID);
	r = posix_spawn(ret_pid, "/proc/self/exe", &fa, &at, (char *const *)args, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	return r ? -r : 1;
}

int agent_redirect_guard_main(int argc, char **argv)
{
	char buf[64];
	struct err e;

	if (argc == 2 && strcmp(argv[1], "--redirect-clean") == 0) {
		remove_stale(NULL);
		return 0;
	}
	if (argc != 4 || strlen(argv[2]) != ID_LEN || !valid_id(argv[2]) ||
	    (strcmp(argv[3], "nft") != 0 && strcmp(argv[3], "iptables") != 0)) {
		fprintf(stderr, "podenv-agent: --redirect-guard is internal to the agent\n");
		return 2;
	}
	/* Only the agent's end of the pipe decides when we are done. */
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	for (;;) {
		ssize_t n = read(3, buf, sizeof(buf));
		if (n == 0 || (n < 0 && errno != EINTR))
			break;
	}
	err_clear(&e);
	if (remove_all(strcmp(argv[3], "nft") == 0, argv[2], &e) < 0) {
		log_warn("redirect guard: removing the rules of agent %s: %s", argv[2], e.msg);
		return 1;
	}
	return 0;
}

/* --- public --------------------------------------------------------------------- */

int agent_redirect_new(bool nft, uint16_t lport, bool v6, struct agent_redirect **ret,
		       struct err *reterr)
{
	struct agent_redirect *rd = xcalloc(1, sizeof(*rd));
	uint8_t rnd[2];
	int r;

	rd->nft = nft;
	rd->v6 = v6;
	rd->lport = lport;
	rd->alive_fd = rd->guard_fd = -1;
	rd->seq = MIN(remove_stale(NULL) + 1, 0xffffu);
	for (int tries = 0; tries < 16 && rd->alive_fd < 0; tries++) {
		if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd)) {
			r = err_set_errno(reterr, -errno, "getrandom");
			goto fail;
		}
		snprintf(rd->id, sizeof(rd->id), "%04x%02x%02x", rd->seq, rnd[0], rnd[1]);
		rd->alive_fd = alive_bind(rd->id);
		if (rd->alive_fd < 0 && rd->alive_fd != -EADDRINUSE) {
			r = err_set_errno(reterr, rd->alive_fd,
					  "binding the agent's identity socket");
			goto fail;
		}
	}
	if (rd->alive_fd < 0) {
		r = err_set(reterr, -EADDRINUSE, "no free agent identity");
		goto fail;
	}
	r = guard_start(rd, reterr);
	if (r < 0)
		goto fail;
	log_info("redirect rules of this agent: %s%s (%s)",
		 nft ? "table inet " TABLE_PREFIX : CHAIN_PREFIX, rd->id, nft ? "nft" : "iptables");
	*ret = rd;
	return 0;
fail:
	closep(&rd->alive_fd);
	free(rd);
	return r;
}

const char *agent_redirect_id(const struct agent_redirect *r)
{
	return r->id;
}

uint32_t agent_redirect_mark(const struct agent_redirect *r)
{
	return AGENT_REDIRECT_MARK | r->seq;
}

int agent_redirect_set(struct agent_redirect *rd, const uint16_t *ports, size_t n,
		       struct err *reterr)
{
	return rd->nft ? nft_set(rd, ports, n, reterr) : ipt_set(rd, ports, n, reterr);
}

void agent_redirect_free(struct agent_redirect *rd)
{
	struct err e;

	if (!rd)
		return;
	err_clear(&e);
	if (remove_all(rd->nft, rd->id, &e) < 0)
		log_warn("removing the redirect rules: %s", e.msg);
	/* The guard finds nothing left to remove and exits. */
	closep(&rd->guard_fd);
	if (rd->guard_pid > 0)
		while (waitpid(rd->guard_pid, NULL, 0) < 0 && errno == EINTR)
			;
	closep(&rd->alive_fd);
	free(rd);
}

/* --- flush ---------------------------------------------------------------------- */

struct diag_req {
	struct nlmsghdr nlh;
	struct inet_diag_req_v2 r;
};

static int diag_send(int fd, uint16_t type, uint16_t flags, uint8_t family,
		     const struct inet_diag_sockid *id)
{
	struct diag_req q = {
		.nlh = {.nlmsg_len = sizeof(q),
			.nlmsg_type = type,
			.nlmsg_flags = (uint16_t)(NLM_F_REQUEST | flags)},
		.r = {.sdiag_family = family,
		      .sdiag_protocol = IPPROTO_TCP,
		      .idiag_states = (1u << TCP_ESTABLISHED) | (1u << TCP_CLOSE_WAIT)},
	};

	if (id)
		q.r.id = *id;
	return send(fd, &q, sizeof(q), 0) < 0 ? -errno : 0;
}

int agent_redirect_flush(uint16_t port)
{
	static uint8_t msgs[32768];
	int count = 0;

	for (int f = 0; f < 2; f++) {
		uint8_t family = f ? AF_INET6 : AF_INET;
		struct inet_diag_sockid *ids = NULL;
		size_t nids = 0;
		int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
		bool done = false;

		if (fd < 0)
			return -errno;
		if (diag_send(fd, SOCK_DIAG_BY_FAMILY, NLM_F_DUMP, family, NULL) < 0) {
			close(fd);
			continue;
		}
		while (!done) {
			ssize_t n = recv(fd, msgs, sizeof(msgs), 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			for (struct nlmsghdr *h = (void *)msgs; NLMSG_OK(h, (size_t)n);
			     h = NLMSG_NEXT(h, n)) {
				if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) {
					done = true;
					break;
				}
				struct inet_diag_msg *m = NLMSG_DATA(h);
				if (ntohs(m->id.idiag_sport) != port)
					continue;
				ids = xrealloc(ids, (nids + 1) * sizeof(*ids));
				ids[nids++] = m->id;
			}
		}
		/* Destroy after the dump: never change the table while it is
		 * being walked. */
		for (size_t i = 0; i < nids; i++) {
			if (diag_send(fd, SOCK_DESTROY, NLM_F_ACK, family, &ids[i]) < 0)
				continue;
			ssize_t n = recv(fd, msgs, sizeof(msgs), 0);
			struct nlmsghdr *h = (void *)msgs;
			if (n >= (ssize_t)(sizeof(*h) + sizeof(struct nlmsgerr)) &&
			    h->nlmsg_type == NLMSG_ERROR &&
			    ((struct nlmsgerr *)NLMSG_DATA(h))->error == 0)
				count++;
		}
		free(ids);
		close(fd);
	}
	return count;
}
