/* podenv-agent: the remote half of podenv. It runs where the target process
 * runs, pins that process (by PID or container id) and serves its files,
 * environment, hostname and connections to launchers (docs/PROTOCOL.md).
 *
 * Start-up order matters: everything that forks or changes namespaces
 * (reading the target's hostname, entering its network namespace) happens
 * before the worker threads start; a --listen socket is bound before the
 * agent enters the target's network namespace, so it stays reachable where
 * it was asked to listen while outgoing connections leave from the target.
 */
#define LOG_TARGET "podenv::agent"
#include <arpa/inet.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <sched.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "agent/agent.h"
#include "agent/dns.h"
#include "agent/incoming.h"
#include "agent/redirect.h"
#include "agent/session.h"
#include "agent/tls.h"
#include "common/log.h"

struct agent_opts {
	pid_t pid;
	const char *container_id;
	const char *log_level;
	bool json_log;
	bool inspect;
	bool stdio;
	const char *listen;
	const char *token_file;
	const char *tls_cert;
	const char *tls_key;
	unsigned timeout_s; /* communication timeout */
	unsigned workers;
	bool nftables;
	bool flush_connections;
};

static void usage(FILE *f)
{
	fputs("Usage: podenv-agent (--pid PID | --container-id ID) MODE [options]\n"
	      "\n"
	      "Serves a target process's files, environment, hostname and connections\n"
	      "to podenv launchers.\n"
	      "\n"
	      "Target:\n"
	      "  -p, --pid PID              the target process on this machine\n"
	      "  -c, --container-id ID      find the target by container id (/proc/*/cgroup)\n"
	      "Mode:\n"
	      "      --stdio                serve one launcher on stdin (a socket)\n"
	      "      --listen ADDR:PORT     accept launchers on a TCP address; needs --token-file\n"
	      "      --inspect              print what the agent sees of the target and exit\n"
	      "Options:\n"
	      "      --token-file FILE      64 hex digits clients must present (or the\n"
	      "                             environment variable PODENV_AGENT_TOKEN, or\n"
	      "                             only its SHA-256 in PODENV_AGENT_TOKEN_SHA256)\n"
	      "      --tls-cert FILE        serve --listen over TLS with this PEM certificate\n"
	      "      --tls-key FILE         and this PEM private key (the token is still\n"
	      "                             required)\n"
	      "  -t, --communication-timeout SECS\n"
	      "                             exit when no launcher is connected for SECS\n"
	      "                             (default 30; 0 = never)\n"
	      "      --workers N            threads for file operations (default 4)\n"
	      "      --nftables             redirect incoming traffic with nft (a table\n"
	      "                             inet podenv_ID) instead of iptables (agent.nftables)\n"
	      "      --flush-connections    reset the established connections of a port when\n"
	      "                             its redirect starts, so they reconnect through it\n"
	      "                             (agent.flush_connections)\n"
	      "  -l, --log-level FILTER     RUST_LOG-style filter, e.g. \"podenv=debug,warn\"\n"
	      "                             (default: $RUST_LOG, else info)\n"
	      "      --json-log             log JSON lines\n"
	      "  -h, --help                 show this help\n"
	      "  -V, --version              show the version\n",
	      f);
}

static int parse_uint(const char *opt, const char *s, unsigned max, unsigned *ret,
		      struct err *reterr)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || !*s || v > max || s[0] == '-')
		return err_set(reterr, -EINVAL, "%s: '%s' is not a number from 0 to %u", opt, s,
			       max);
	*ret = (unsigned)v;
	return 0;
}

static int parse_args(int argc, char **argv, struct agent_opts *o, struct err *reterr)
{
	enum {
		OPT_INSPECT = 256,
		OPT_JSON_LOG,
		OPT_STDIO,
		OPT_LISTEN,
		OPT_TOKEN,
		OPT_WORKERS,
		OPT_TLS_CERT,
		OPT_TLS_KEY,
		OPT_NFTABLES,
		OPT_FLUSH,
	};
	static const struct option longopts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "container-id", required_argument, NULL, 'c' },
		{ "inspect", no_argument, NULL, OPT_INSPECT },
		{ "stdio", no_argument, NULL, OPT_STDIO },
		{ "listen", required_argument, NULL, OPT_LISTEN },
		{ "token-file", required_argument, NULL, OPT_TOKEN },
		{ "tls-cert", required_argument, NULL, OPT_TLS_CERT },
		{ "tls-key", required_argument, NULL, OPT_TLS_KEY },
		{ "communication-timeout", required_argument, NULL, 't' },
		{ "workers", required_argument, NULL, OPT_WORKERS },
		{ "nftables", no_argument, NULL, OPT_NFTABLES },
		{ "flush-connections", no_argument, NULL, OPT_FLUSH },
		{ "log-level", required_argument, NULL, 'l' },
		{ "json-log", no_argument, NULL, OPT_JSON_LOG },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	unsigned v;
	int c, r;

	o->timeout_s = 30;
	o->workers = 4;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":p:c:l:t:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'p':
			r = parse_uint("--pid", optarg, INT32_MAX, &v, reterr);
			if (r < 0)
				return r;
			if (v == 0)
				return err_set(reterr, -EINVAL, "--pid: 0 is not a process id");
			o->pid = (pid_t)v;
			break;
		case 'c':
			o->container_id = optarg;
			break;
		case 'l':
			o->log_level = optarg;
			break;
		case 't':
			r = parse_uint("--communication-timeout", optarg, 86400 * 365, &o->timeout_s,
				       reterr);
			if (r < 0)
				return r;
			break;
		case OPT_WORKERS:
			r = parse_uint("--workers", optarg, 64, &o->workers, reterr);
			if (r < 0)
				return r;
			if (o->workers == 0)
				return err_set(reterr, -EINVAL, "--workers: at least 1");
			break;
		case OPT_JSON_LOG:
			o->json_log = true;
			break;
		case OPT_NFTABLES:
			o->nftables = true;
			break;
		case OPT_FLUSH:
			o->flush_connections = true;
			break;
		case OPT_INSPECT:
			o->inspect = true;
			break;
		case OPT_STDIO:
			o->stdio = true;
			break;
		case OPT_LISTEN:
			o->listen = optarg;
			break;
		case OPT_TOKEN:
			o->token_file = optarg;
			break;
		case OPT_TLS_CERT:
			o->tls_cert = optarg;
			break;
		case OPT_TLS_KEY:
			o->tls_key = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("podenv-agent %s (protocol %d)\n", PODENV_AGENT_VERSION, PROTO_VERSION);
			exit(0);
		case ':':
			return err_set(reterr, -EINVAL, "option %s needs a value", argv[optind - 1]);
		default:
			return err_set(reterr, -EINVAL, "unknown option %s", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return err_set(reterr, -EINVAL, "unexpected argument '%s'", argv[optind]);
	if (!o->pid == !o->container_id)
		return err_set(reterr, -EINVAL, "give exactly one of --pid and --container-id");
	if (o->inspect + o->stdio + !!o->listen != 1)
		return err_set(reterr, -EINVAL, "give exactly one of --stdio, --listen and --inspect");
	if (o->listen && !o->token_file && !getenv("PODENV_AGENT_TOKEN") &&
	    !getenv("PODENV_AGENT_TOKEN_SHA256"))
		return err_set(reterr, -EINVAL,
			       "--listen needs --token-file (or $PODENV_AGENT_TOKEN, or "
			       "$PODENV_AGENT_TOKEN_SHA256): the agent never serves unauthenticated "
			       "network clients");
	if (!o->tls_cert != !o->tls_key)
		return err_set(reterr, -EINVAL, "TLS needs both --tls-cert and --tls-key");
	if (o->tls_cert && !o->listen)
		return err_set(reterr, -EINVAL, "--tls-cert and --tls-key go with --listen");
	return 0;
}

static int inspect(const struct agent_target *t)
{
	char host[256];
	char **env = NULL;
	_cleanup_free_ char *os = NULL;
	struct err e;
	int r;

	printf("target: pid %d\n", (int)t->pid);
	r = agent_target_hostname(t, host, sizeof(host), &e);
	printf("hostname: %s\n", r < 0 ? e.msg : host);
	r = agent_target_read_file(t, "/etc/os-release", 65536, &os, NULL);
	if (r < 0) {
		printf("os-release: %s\n", strerror(-r));
	} else {
		const char *pretty = strstr(os, "PRETTY_NAME=");
		printf("os-release: %.*s\n", pretty ? (int)strcspn(pretty + 12, "\n") : 0,
		       pretty ? pretty + 12 : "");
	}
	r = agent_target_environ(t, &env, &e);
	if (r < 0) {
		printf("environment: %s\n", e.msg);
		return r;
	}
	printf("environment:\n");
	for (char **p = env; *p; p++)
		printf("  %s\n", *p);
	agent_strv_free(env);
	return 0;
}

static int read_token(const char *path, uint8_t token[PROTO_TOKEN_SIZE], struct err *reterr)
{
	char text[256];
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return err_set_errno(reterr, -errno, "token file %s", path);
	n = read(fd, text, sizeof(text) - 1);
	if (n < 0)
		return err_set_errno(reterr, -errno, "token file %s", path);
	text[n] = '\0';
	if (proto_token_parse(text, token) < 0)
		return err_set(reterr, -EINVAL, "token file %s: expected 64 hex digits", path);
	return 0;
}

/* "ADDR:PORT", "[V6]:PORT" or ":PORT" (all addresses). */
static int listen_on(const char *spec, struct err *reterr)
{
	char host[256];
	const char *colon = strrchr(spec, ':');
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICHOST };
	struct addrinfo *ai = NULL;
	int fd, r, one = 1;

	if (!colon || (size_t)(colon - spec) >= sizeof(host))
		return err_set(reterr, -EINVAL, "--listen %s: expected ADDR:PORT", spec);
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = '\0';
	char *h = host;
	if (h[0] == '[' && h[strlen(h) - 1] == ']') {
		h[strlen(h) - 1] = '\0';
		h++;
	}
	r = getaddrinfo(*h ? h : NULL, colon + 1, &hints, &ai);
	if (r != 0)
		return err_set(reterr, -EINVAL, "--listen %s: %s", spec, gai_strerror(r));
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = err_set_errno(reterr, -errno, "--listen %s: socket", spec);
		goto out;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 64) < 0) {
		r = err_set_errno(reterr, -errno, "--listen %s", spec);
		close(fd);
		goto out;
	}
	r = fd;
out:
	freeaddrinfo(ai);
	return r;
}

static int on_terminate(struct loop_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	struct agent_server **srv = userdata;

	log_info("%s: saying goodbye to every launcher", strsignal((int)si->ssi_signo));
	if (*srv)
		agent_server_shutdown(*srv, "agent terminated");
	loop_exit(loop_source_loop(s), 0);
	return 0;
}

static int on_cleaner_exit(struct loop_source *s, const siginfo_t *si, void *userdata)
{
	(void)s;
	(void)si;
	(void)userdata;
	return 0; /* reaped; it logs its own findings */
}

static int serve(const struct agent_opts *o, struct agent_target *t, struct err *e)
{
	uint8_t token[PROTO_TOKEN_SIZE];
	char hostname[256];
	struct agent_server *srv = NULL;
	struct agent_incoming *inc = NULL;
	struct agent_tls_ctx *tls = NULL;
	struct loop *l = NULL;
	_cleanup_close_ int listen_fd = -1;
	int r;

	bool have_token = false, have_digest = false;
	uint8_t digest[PROTO_TOKEN_SIZE];
	if (o->token_file) {
		r = read_token(o->token_file, token, e);
		if (r < 0)
			return r;
		have_token = true;
	} else if (o->listen && getenv("PODENV_AGENT_TOKEN_SHA256")) {
		/* A Kubernetes Job passes the SHA-256 of the per-session token
		 * (docs/PROTOCOL.md §3): the Job's readers do not learn it. */
		r = proto_token_parse(getenv("PODENV_AGENT_TOKEN_SHA256"), digest);
		unsetenv("PODENV_AGENT_TOKEN_SHA256");
		if (r < 0)
			return err_set(e, -EINVAL,
				       "$PODENV_AGENT_TOKEN_SHA256: expected 64 hex digits");
		have_digest = true;
	} else if (o->listen) {
		/* The per-session token in the environment; drop it at once
		 * so nothing we start inherits it. */
		const char *env = getenv("PODENV_AGENT_TOKEN");
		r = env ? proto_token_parse(env, token) : -EINVAL;
		unsetenv("PODENV_AGENT_TOKEN");
		if (r < 0)
			return err_set(e, -EINVAL, "$PODENV_AGENT_TOKEN: expected 64 hex digits");
		have_token = true;
	}
	r = agent_target_hostname(t, hostname, sizeof(hostname), e);
	if (r < 0)
		return r;
	if (o->listen) {
		listen_fd = listen_on(o->listen, e);
		if (listen_fd < 0)
			return listen_fd;
	}
	if (!agent_target_shares_ns(t->net_fd, "/proc/self/ns/net") &&
	    setns(t->net_fd, CLONE_NEWNET) < 0)
		return err_set_errno(e, -errno, "entering the network namespace of process %d",
				     (int)t->pid);
	r = loop_new(&l);
	if (r < 0)
		return err_set_errno(e, r, "event loop");
	/* In the target's network namespace: c-ares' sockets are the pod's. */
	r = agent_dns_init(l, t, e);
	if (r < 0) {
		log_warn("DNS requests will fail: %s", e->msg);
		err_clear(e);
	}
	if (o->tls_cert) {
		r = agent_tls_ctx_new(o->tls_cert, o->tls_key, &tls, e);
		if (r < 0)
			goto out;
	}
	/* Stale redirect rules of killed agents go at every start (and again
	 * before our first redirect), without delaying it. */
	pid_t cleaner;
	if (agent_redirect_clean_start(&cleaner) > 0)
		loop_add_child(l, cleaner, on_cleaner_exit, NULL, NULL);
	struct agent_incoming_opts io = { .nft = o->nftables, .flush = o->flush_connections };
	inc = agent_incoming_new(l, &io);
	struct agent_server_opts so = {
		.incoming = inc,
		.target = t,
		.hostname = hostname,
		.token = have_token ? token : NULL,
		.token_sha256 = have_digest ? digest : NULL,
		.communication_timeout = (usec_t)o->timeout_s * USEC_PER_SEC,
		.workers = o->workers,
		.tls = tls,
	};
	/* Signals are blocked (signalfd) before the workers start, so none
	 * lands on a worker thread with its default action. */
	loop_add_signal(l, SIGTERM, on_terminate, &srv, NULL);
	loop_add_signal(l, SIGINT, on_terminate, &srv, NULL);
	signal(SIGPIPE, SIG_IGN);
	r = agent_server_new(l, &so, &srv);
	if (r < 0) {
		err_set_errno(e, r, "starting the server");
		goto out;
	}
	if (o->stdio) {
		int fd = fcntl(0, F_DUPFD_CLOEXEC, 3);
		if (fd < 0 || fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
			r = err_set_errno(e, -errno, "stdin");
			goto out;
		}
		r = agent_server_add_fd(srv, fd, true);
	} else {
		r = agent_server_listen(srv, listen_fd);
		/* Launchers and tests wait for this line before connecting. */
		fprintf(stderr, "podenv-agent: ready, listening on %s%s\n", o->listen,
			tls ? " (TLS)" : "");
	}
	if (r < 0) {
		err_set_errno(e, r, "starting the session");
		goto out;
	}
	log_debug("serving process %d (%s)", (int)t->pid, hostname);
	r = loop_run(l);
	if (r < 0)
		err_set_errno(e, r, "event loop");
out:
	agent_server_free(srv);
	/* After the sessions: their redirects are gone, the rest goes now. */
	agent_incoming_free(inc);
	agent_dns_done();
	loop_free(l);
	agent_tls_ctx_free(tls);
	return r;
}

int main(int argc, char **argv)
{
	struct agent_opts o = { 0 };
	struct agent_target *t = NULL;
	struct err e;
	int r;

	/* 1 MiB I/O buffers come and go all the time: keep them in the heap
	 * instead of a fresh mmap (256 page faults and zeroing) each time. */
	if (argc > 1 && (strcmp(argv[1], "--redirect-guard") == 0 ||
			 strcmp(argv[1], "--redirect-clean") == 0))
		return agent_redirect_guard_main(argc, argv);
	mallopt(M_MMAP_THRESHOLD, 8 << 20);
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	err_clear(&e);
	r = parse_args(argc, argv, &o, &e);
	if (r < 0) {
		fprintf(stderr, "podenv-agent: %s (see --help)\n", e.msg);
		return 2;
	}
	r = log_filter_set(o.log_level ? o.log_level : getenv("RUST_LOG"), &e);
	if (r < 0) {
		fprintf(stderr, "podenv-agent: %s\n", e.msg);
		return 2;
	}
	log_json_set(o.json_log);

	if (o.container_id) {
		r = agent_target_find_container(o.container_id, &o.pid, &e);
		if (r < 0)
			goto fail;
		log_debug("container %s is process %d", o.container_id, (int)o.pid);
	}
	r = agent_target_open_pid(o.pid, &t, &e);
	if (r < 0)
		goto fail;
	if (o.inspect)
		r = inspect(t);
	else
		r = serve(&o, t, &e);
	agent_target_free(t);
	if (r < 0 && err_isset(&e))
		goto fail;
	return r < 0 ? 1 : r;
fail:
	log_error("%s", e.msg);
	return 1;
}
