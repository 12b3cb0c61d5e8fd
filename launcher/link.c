/* The link to the agent (link.h): socket I/O for a proto_client on the
 * loop, the handshake, the heartbeat, and the spawned agent's lifetime.
 *
 * Output is flushed from a deferred callback, so the many requests one
 * loop iteration makes leave in one write.
 *
 * Over TLS (connect_tcp with link_tls_opts), the two I/O points go through
 * launcher/tls.c instead of recv/send; for a Kubernetes agent they go
 * through the port-forward WebSocket (launcher/k8s_ws.c), whose socket
 * belongs to libcurl.
 */
#define LOG_TARGET "podenv::link"
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "common/log.h"
#include "launcher/cli.h"
#include "launcher/link.h"
#include "launcher/k8s_ws.h"
#include "launcher/tls.h"

#define HEARTBEAT_INTERVAL (10 * USEC_PER_SEC)
#define HEARTBEAT_DEADLINE (30 * USEC_PER_SEC)
#define READ_CHUNK (256u * 1024)
#define WRITE_BATCH (1u << 20)

struct link {
	struct loop *loop;
	const struct link_ops *ops;
	void *userdata;
	int fd;
	struct link_tls *tls; /* NULL: plain socket */
	struct k8s_ws *ws;    /* a port-forward (fd is its socket), or NULL */
	struct loop_source *io;
	struct loop_source *flush;
	struct loop_source *heartbeat;
	struct loop_source *child;
	pid_t agent_pid;
	struct proto_client *client;
	uint64_t frames_at_last_beat;
	usec_t last_progress;
	bool ready;
	bool lost;
	bool quiet; /* link_abort(): the loss is ours, tell nobody */
	char lost_reason[ERR_MSG_MAX];
};

static void link_lose(struct link *k, const char *reason)
{
	if (k->lost)
		return;
	k->lost = true;
	snprintf(k->lost_reason, sizeof(k->lost_reason), "%s", reason);
	if (k->io) {
		loop_source_free(k->io);
		k->io = NULL;
	}
	loop_timer_set(k->heartbeat, USEC_INFINITY);
	if (k->ops && k->ops->lost)
		k->ops->lost(k->userdata, reason);
	/* Whatever waits on the agent fails now (FUSE requests get EIO,
	 * streams reset), instead of waiting forever. No-op when the client
	 * itself reported the loss. */
	if (k->client)
		proto_client_abort(k->client, -ECONNABORTED, reason);
}

/* Loses the link after a failed read or write (n: 0 for EOF, or -errno). */
static void link_lose_io(struct link *k, ssize_t n)
{
	char reason[ERR_MSG_MAX];
	bool handshake = k->tls && !link_tls_established(k->tls);

	if (handshake && (n == 0 || n == -EPIPE || n == -ECONNRESET))
		snprintf(reason, sizeof(reason),
			 "the agent closed the connection during the TLS handshake (is it "
			 "listening without TLS?)");
	else if (n == 0)
		snprintf(reason, sizeof(reason), "the agent closed the connection");
	else if (n == -EPROTO && k->tls)
		snprintf(reason, sizeof(reason), "%s", link_tls_reason(k->tls));
	else if (k->ws && k8s_ws_reason(k->ws)[0])
		snprintf(reason, sizeof(reason), "%s", k8s_ws_reason(k->ws));
	else if (n == 0 && k->ws)
		snprintf(reason, sizeof(reason),
			 "the port-forward to the agent ended (the agent closed the connection)");
	else
		snprintf(reason, sizeof(reason), "connection to the agent failed: %s",
			 strerror((int)-n));
	link_lose(k, reason);
}

static void update_events(struct link *k)
{
	uint32_t ev;

	if (!k->io)
		return;
	ev = EPOLLIN | (proto_client_has_output(k->client) ? EPOLLOUT : 0);
	/* A write that waits for the agent's handshake data must not poll
	 * for a writable socket (it always is: a busy loop). */
	if (k->tls && (link_tls_events(k->tls) & EPOLLIN))
		ev &= ~EPOLLOUT;
	if (k->tls)
		ev |= link_tls_events(k->tls) & EPOLLOUT;
	if (k->ws)
		ev |= k8s_ws_events(k->ws);
	loop_io_events_set(k->io, ev);
}

static void link_flush(struct link *k)
{
	size_t written = 0;

	if (k->ws) {
		int r = k8s_ws_flush(k->ws);
		if (r < 0 && r != -EAGAIN) {
			link_lose_io(k, r);
			return;
		}
	}
	while (!k->lost && written < WRITE_BATCH) {
		const uint8_t *p;
		size_t n = proto_client_output(k->client, WRITE_BATCH / 4, &p);
		if (n == 0)
			break;
		ssize_t w;
		if (k->tls)
			w = link_tls_write(k->tls, p, n);
		else if (k->ws)
			w = k8s_ws_write(k->ws, p, n);
		else if ((w = send(k->fd, p, n, MSG_NOSIGNAL)) < 0)
			w = -errno;
		if (w < 0) {
			if (w == -EINTR)
				continue;
			if (w == -EAGAIN)
				break;
			link_lose_io(k, w);
			return;
		}
		proto_client_output_consume(k->client, (size_t)w);
		written += (size_t)w;
	}
	update_events(k);
}

static int on_flush(struct loop_source *s, void *userdata)
{
	(void)s;
	link_flush(userdata);
	return 0;
}

static void on_client_wake(void *userdata)
{
	struct link *k = userdata;

	loop_defer_arm(k->flush);
}

static void on_client_ready(void *userdata, const struct proto_welcome *w)
{
	struct link *k = userdata;

	k->ready = true;
	log_debug("agent session %" PRIu64 " (%s), protocol %u", w->session_id, w->name,
		  w->version);
}

static void on_client_lost(void *userdata, int err, const char *reason)
{
	struct link *k = userdata;
	(void)err;

	if (k->quiet)
		return;
	link_lose(k, reason);
}

static const struct proto_client_ops client_ops = {
	.ready = on_client_ready,
	.lost = on_client_lost,
	.wake = on_client_wake,
};

/* Reads what TLS has, in chunks of up to READ_CHUNK plaintext, until
 * OpenSSL needs the socket again or holds nothing more. */
static void read_tls(struct link *k)
{
	ssize_t n = 0;
	size_t got;

	do {
		uint8_t *p = proto_client_input_reserve(k->client, READ_CHUNK);
		got = 0;
		while (got < READ_CHUNK &&
		       (n = link_tls_read(k->tls, p + got, READ_CHUNK - got)) > 0)
			got += (size_t)n;
		if (got > 0)
			proto_client_input_commit(k->client, got);
		if (k->lost)
			return;
	} while (got == READ_CHUNK && link_tls_pending(k->tls));
	if (got == READ_CHUNK || n == -EAGAIN || n == -EINTR)
		return;
	link_lose_io(k, n);
}

/* Reads what the port-forward has: its messages may hold more than one
 * chunk, and TLS inside libcurl may hold bytes the fd does not show. */
static void read_ws(struct link *k)
{
	ssize_t n;

	do {
		uint8_t *p = proto_client_input_reserve(k->client, READ_CHUNK);
		n = k8s_ws_read(k->ws, p, READ_CHUNK);
		if (n > 0)
			proto_client_input_commit(k->client, (size_t)n);
		if (k->lost)
			return;
	} while (n > 0 && k8s_ws_pending(k->ws));
	if (n > 0 || n == -EAGAIN || n == -EINTR)
		return;
	link_lose_io(k, n);
}

static int on_io(struct loop_source *s, int fd, uint32_t events, void *userdata)
{
	struct link *k = userdata;
	(void)s;

	if (k->ws) {
		if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
			read_ws(k);
		/* pongs and the session's output */
		if (!k->lost && ((events & EPOLLOUT) || k8s_ws_events(k->ws)))
			link_flush(k);
		return 0;
	}

	if (k->tls) {
		/* A read may wait for the socket to take handshake data, and
		 * a write for the agent's handshake messages. */
		bool write_waits = link_tls_events(k->tls) & EPOLLIN;
		if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) ||
		    ((events & EPOLLOUT) && (link_tls_events(k->tls) & EPOLLOUT)))
			read_tls(k);
		if (!k->lost && ((events & EPOLLOUT) || write_waits))
			link_flush(k);
		else if (!k->lost)
			update_events(k);
		return 0;
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		void *p = proto_client_input_reserve(k->client, READ_CHUNK);
		ssize_t n = recv(fd, p, READ_CHUNK, 0);
		if (n > 0) {
			proto_client_input_commit(k->client, (size_t)n);
		} else if (n == 0) {
			/* An agent listening with TLS drops a plain HELLO. */
			link_lose(k,
				  k->ready || k->agent_pid > 0
					  ? "the agent closed the connection"
					  : "the agent closed the connection during the handshake "
					    "(does it listen with TLS? then give its certificate's "
					    "fingerprint or CA)");
			return 0;
		} else if (errno != EAGAIN && errno != EINTR) {
			char reason[256];
			snprintf(reason, sizeof(reason), "connection to the agent failed: %s",
				 strerror(errno));
			link_lose(k, reason);
			return 0;
		}
	}
	if (!k->lost && (events & EPOLLOUT))
		link_flush(k);
	return 0;
}

static int on_heartbeat(struct loop_source *s, usec_t now, void *userdata)
{
	struct link *k = userdata;
	uint64_t frames = proto_client_frames_in(k->client);

	if (frames != k->frames_at_last_beat) {
		k->frames_at_last_beat = frames;
		k->last_progress = now;
	} else if (now - k->last_progress >= HEARTBEAT_DEADLINE) {
		link_lose(k, "the agent stopped answering (no reply for 30 s)");
		return 0;
	}
	proto_client_ping(k->client);
	loop_timer_set(s, now + HEARTBEAT_INTERVAL);
	return 0;
}

static int on_agent_exit(struct loop_source *s, const siginfo_t *si, void *userdata)
{
	struct link *k = userdata;
	char reason[128];
	(void)s;

	k->agent_pid = 0;
	if (si->si_code == CLD_EXITED)
		snprintf(reason, sizeof(reason), "the agent exited with status %d", si->si_status);
	else
		snprintf(reason, sizeof(reason), "the agent was killed by signal %d (%s)",
			 si->si_status, strsignal(si->si_status));
	/* Bytes it wrote before dying may still be in the socket: a GOODBYE
	 * there carries the better reason, so read them first. */
	if (k->io && !k->lost)
		on_io(k->io, k->fd, EPOLLIN, k);
	link_lose(k, reason);
	return 0;
}

static struct link *link_alloc(struct loop *l, const struct link_ops *ops, void *userdata, int fd)
{
	struct link *k = xcalloc(1, sizeof(*k));

	k->loop = l;
	k->ops = ops;
	k->userdata = userdata;
	k->fd = fd;
	k->last_progress = now_usec();
	return k;
}

static int link_start(struct link *k, const uint8_t token[PROTO_TOKEN_SIZE], struct err *reterr)
{
	int r;

	r = proto_client_new(&client_ops, k, &k->client);
	if (r < 0)
		return err_set_errno(reterr, r, "link");
	r = loop_add_io(k->loop, k->fd, EPOLLIN, on_io, k, &k->io);
	if (r < 0)
		return err_set_errno(reterr, r, "link");
	loop_add_defer(k->loop, on_flush, k, &k->flush);
	loop_add_timer(k->loop, now_usec() + HEARTBEAT_INTERVAL, on_heartbeat, k, &k->heartbeat);
	proto_client_start(k->client, token, PROTO_CAP_ALL, "podenv " PODENV_VERSION);
	return 0;
}

int link_spawn_local(struct loop *l, const char *agent_path, pid_t target,
		     const char *const *extra_args, const struct link_ops *ops, void *userdata,
		     struct link **ret, struct err *reterr)
{
	int sv[2], r;
	uint8_t token[PROTO_TOKEN_SIZE] = { 0 };
	struct link *k;
	char pidstr[16];
	const char *argv[32];
	size_t n = 0;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return err_set_errno(reterr, -errno, "socketpair");
	/* Room for several 1 MiB READ answers in flight: a send that takes a
	 * whole frame leaves nothing to move about in the output buffer. */
	int sz = 4 << 20;
	for (int i = 0; i < 2; i++) {
		setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
		setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	}
	snprintf(pidstr, sizeof(pidstr), "%d", (int)target);
	argv[n++] = agent_path;
	argv[n++] = "--pid";
	argv[n++] = pidstr;
	argv[n++] = "--stdio";
	argv[n++] = "--communication-timeout";
	argv[n++] = "0";
	for (size_t i = 0; extra_args && extra_args[i] && n < ARRAY_SIZE(argv) - 1; i++)
		argv[n++] = extra_args[i];
	argv[n] = NULL;

	pid_t pid = fork();
	if (pid < 0) {
		r = err_set_errno(reterr, -errno, "starting %s", agent_path);
		close(sv[0]);
		close(sv[1]);
		return r;
	}
	if (pid == 0) {
		/* The agent's stdin is its end of the socketpair; stdout goes to
		 * stderr so nothing it prints mixes with the app's output. */
		if (dup2(sv[1], 0) < 0 || dup2(2, 1) < 0)
			_exit(127);
		execv(agent_path, (char *const *)argv);
		fprintf(stderr, "podenv: cannot run the agent %s: %s\n", agent_path,
			strerror(errno));
		_exit(127);
	}
	close(sv[1]);
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	k = link_alloc(l, ops, userdata, sv[0]);
	k->agent_pid = pid;
	r = loop_add_child(l, pid, on_agent_exit, k, &k->child);
	if (r < 0) {
		err_set_errno(reterr, r, "watching the agent");
		link_free(k);
		return r;
	}
	/* Over a private socketpair the channel authenticates the peer; the
	 * agent accepts any token on --stdio (docs/PROTOCOL.md §4). */
	r = link_start(k, token, reterr);
	if (r < 0) {
		link_free(k);
		return r;
	}
	*ret = k;
	return 0;
}

int link_connect_tcp(struct loop *l, const char *addr, const uint8_t token[PROTO_TOKEN_SIZE],
		     const struct link_tls_opts *tls, const struct link_ops *ops, void *userdata,
		     struct link **ret, struct err *reterr)
{
	char host[256];
	const char *colon = strrchr(addr, ':');
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST };
	struct addrinfo *ai = NULL;
	uint8_t md[LINK_TLS_FINGERPRINT_SIZE];
	struct link *k;
	int fd, r, one = 1;

	if (!colon || colon == addr || (size_t)(colon - addr) >= sizeof(host))
		return err_set(reterr, -EINVAL, "agent address '%s': expected IP:PORT", addr);
	if (tls && tls->fingerprint && link_tls_fingerprint_parse(tls->fingerprint, md) < 0)
		return err_set(reterr, -EINVAL,
			       "TLS fingerprint '%s': expected the SHA-256 of the agent's "
			       "certificate as 64 hex digits (':' between pairs allowed)",
			       tls->fingerprint);
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = '\0';
	char *h = host;
	if (h[0] == '[' && h[strlen(h) - 1] == ']') {
		h[strlen(h) - 1] = '\0';
		h++;
	}
	r = getaddrinfo(h, colon + 1, &hints, &ai);
	if (r != 0)
		return err_set(reterr, -EINVAL, "agent address '%s': %s", addr, gai_strerror(r));
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		freeaddrinfo(ai);
		return err_set_errno(reterr, -errno, "socket");
	}
	/* A blocking connect with the kernel's timeout is fine here: nothing
	 * else runs before the link is up. */
	r = connect(fd, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	if (r < 0) {
		r = err_set_errno(reterr, -errno, "connecting to the agent at %s", addr);
		close(fd);
		return r;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	int sz = 4 << 20;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	fcntl(fd, F_SETFL, O_NONBLOCK);
	k = link_alloc(l, ops, userdata, fd);
	if (tls) {
		r = link_tls_new(fd, h, tls, &k->tls, reterr);
		if (r < 0) {
			link_free(k);
			return r;
		}
	}
	r = link_start(k, token, reterr);
	if (r < 0) {
		link_free(k);
		return r;
	}
	*ret = k;
	return 0;
}

int link_connect_kube(struct loop *l, struct k8s_ws *ws, const uint8_t token[PROTO_TOKEN_SIZE],
		      const struct link_ops *ops, void *userdata, struct link **ret,
		      struct err *reterr)
{
	struct link *k = link_alloc(l, ops, userdata, k8s_ws_fd(ws));
	int r;

	k->ws = ws;
	r = link_start(k, token, reterr);
	if (r < 0) {
		link_free(k);
		return r;
	}
	/* Bytes that came with the 101 are in the port-forward already: the
	 * fd may not say so. */
	on_io(k->io, k->fd, EPOLLIN, k);
	*ret = k;
	return 0;
}

int link_wait_ready(struct link *k, usec_t timeout, struct err *reterr)
{
	usec_t deadline = now_usec() + timeout;
	int r;

	while (!k->ready && !k->lost) {
		usec_t now = now_usec();
		if (now >= deadline)
			return err_set(reterr, -ETIMEDOUT,
				       "the agent did not answer the handshake within %llu s",
				       (unsigned long long)(timeout / USEC_PER_SEC));
		r = loop_run_once(k->loop, deadline - now);
		if (r < 0)
			return err_set_errno(reterr, r, "event loop");
	}
	if (k->lost)
		return err_set(reterr, -ECONNREFUSED, "%s", k->lost_reason);
	return 0;
}

struct proto_client *link_client(struct link *k)
{
	return k->client;
}

void link_abort(struct link *k)
{
	if (k && k->client) {
		k->quiet = true;
		proto_client_abort(k->client, -ECONNABORTED, "podenv is shutting down");
	}
}

void link_free(struct link *k)
{
	if (!k)
		return;
	if (k->client && !k->lost && proto_client_ready(k->client)) {
		proto_client_goodbye(k->client, PROTO_BYE_NORMAL, "launcher done");
		/* Best effort, non-blocking: what the socket takes now. */
		link_flush(k);
	}
	k->lost = true; /* no lost() callback while tearing down */
	loop_source_free(k->io);
	loop_source_free(k->flush);
	loop_source_free(k->heartbeat);
	loop_source_free(k->child);
	link_tls_free(k->tls);
	if (k->ws)
		k8s_ws_free(k->ws); /* closes its own socket */
	else if (k->fd >= 0)
		close(k->fd);
	proto_client_free(k->client);
	if (k->agent_pid > 0) {
		/* Closing the socket makes a --stdio agent exit; wait for that
		 * (a pidfd wakes us the moment it does), at most a second. */
		int pidfd = (int)syscall(SYS_pidfd_open, k->agent_pid, 0);
		if (pidfd >= 0) {
			struct pollfd pfd = { .fd = pidfd, .events = POLLIN };
			while (poll(&pfd, 1, 1000) < 0 && errno == EINTR)
				;
			close(pidfd);
		}
		if (waitpid(k->agent_pid, NULL, WNOHANG) == k->agent_pid)
			k->agent_pid = 0;
		if (k->agent_pid > 0) {
			kill(k->agent_pid, SIGKILL);
			waitpid(k->agent_pid, NULL, 0);
		}
	}
	free(k);
}
