/* Sessions: configuration, link and the pod's context (session.h). */
#define LOG_TARGET "podenv::session"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "launcher/cli.h"
#include "launcher/env.h"
#include "launcher/incoming.h"
#include "launcher/k8s_agent.h"
#include "launcher/session.h"

int session_load_config(int argc, char **argv, int *idx, bool stop_at_non_option,
			struct cfg **ret, struct err *reterr)
{
	struct cfg_source src = { 0 };
	int r;

	while (*idx < argc) {
		if (!strcmp(argv[*idx], "--")) {
			(*idx)++;
			break;
		}
		r = cfg_source_flag_parse(&src, argc, argv, idx, reterr);
		if (r < 0)
			goto out;
		if (r == 0) {
			/* A command never starts with '-': an unknown option is a
			 * typo, not the program to run ("-" alone is an argument). */
			if (argv[*idx][0] != '-' || !argv[*idx][1])
				break;
			r = err_set(reterr, -EINVAL,
				    stop_at_non_option
					    ? "unknown option %s (the command goes after the options, "
					      "or after --)"
					    : "unknown option %s",
				    argv[*idx]);
			goto out;
		}
	}
	r = cfg_load(&src, ret, reterr);
	if (r < 0) {
		err_prefix(reterr, "config");
		goto out;
	}
	if ((*ret)->source_path)
		log_debug("configuration from %s", (*ret)->source_path);
	for (size_t i = 0; i < (*ret)->warnings.n; i++)
		log_warn("config: %s", (*ret)->warnings.v[i]);
out:
	cfg_source_done(&src);
	return r;
}

int session_check_local_target(pid_t pid, struct err *reterr)
{
	char path[64];
	int fd;

	if (kill(pid, 0) < 0 && errno == ESRCH)
		return err_set(reterr, -ESRCH, "target pid/%d: no such process (see ps)", pid);
	snprintf(path, sizeof(path), "/proc/%d/root", pid);
	fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return err_set_errno(reterr, -errno,
				     "target pid/%d: cannot enter it (run podenv as root or as the "
				     "process's owner): %s",
				     pid, path);
	close(fd);
	return 0;
}

const char *session_agent_log_level(void)
{
	if (getenv("RUST_LOG"))
		return getenv("RUST_LOG");
	if (log_enabled("podenv::agent", LOG_TRACE))
		return "trace";
	if (log_enabled("podenv::agent", LOG_DEBUG))
		return "debug";
	return log_enabled("podenv::agent", LOG_WARN) ? "warn" : "error";
}

static void on_link_lost(void *userdata, const char *reason)
{
	struct session *s = userdata;

	if (s->lost)
		return;
	s->lost = true;
	snprintf(s->lost_reason, sizeof(s->lost_reason), "%s", reason);
	if (s->on_lost)
		s->on_lost(s);
}

static const struct link_ops session_link_ops = { .lost = on_link_lost };

int session_open(struct cfg *cfg, struct session **ret, struct err *reterr)
{
	struct session *s = xcalloc(1, sizeof(*s));
	const struct cfg_target *t = &cfg->target;
	int r;

	s->cfg = cfg;
	r = loop_new(&s->loop);
	if (r < 0) {
		err_set_errno(reterr, r, "event loop");
		goto fail;
	}
	s->target = cfg_target_format(t);
	if (cfg->connect_tcp) {
		/* An agent already listening: its token comes from the
		 * environment (never from the config file, which may be shared). */
		uint8_t token[PROTO_TOKEN_SIZE];
		const char *tok = getenv("PODENV_AGENT_TOKEN");
		if (!tok || proto_token_parse(tok, token) < 0) {
			r = err_set(reterr, -EINVAL,
				    "connect_tcp %s: set PODENV_AGENT_TOKEN to the agent's token "
				    "(64 hex digits)",
				    cfg->connect_tcp);
			goto fail;
		}
		/* TLS when the agent listens with it: a CA file or the
		 * certificate's pinned fingerprint, also from the environment. */
		struct link_tls_opts tls = {
			.ca_file = getenv("PODENV_AGENT_TLS_CA"),
			.fingerprint = getenv("PODENV_AGENT_TLS_FINGERPRINT"),
		};
		if (tls.ca_file && !*tls.ca_file)
			tls.ca_file = NULL;
		if (tls.fingerprint && !*tls.fingerprint)
			tls.fingerprint = NULL;
		r = link_connect_tcp(s->loop, cfg->connect_tcp, token,
				     tls.ca_file || tls.fingerprint ? &tls : NULL,
				     &session_link_ops, s, &s->link, reterr);
	} else if (t->kind == CFG_TARGET_PID) {
		/* The agent logs to our stderr. */
		const char *args[] = { "--log-level", session_agent_log_level(), NULL, NULL, NULL, NULL, NULL };
		if (cfg->agent.json_log)
			args[2] = "--json-log";
		incoming_agent_args(cfg, args, ARRAY_SIZE(args));
		r = session_check_local_target((pid_t)t->pid, reterr);
		if (r >= 0)
			r = link_spawn_local(s->loop, cli_agent_path(), (pid_t)t->pid, args,
					     &session_link_ops, s, &s->link, reterr);
	} else {
		/* A Kubernetes target, or targetless in the cluster. */
		r = k8s_session_open(s->loop, cfg, &session_link_ops, s, &s->link, &s->kube, reterr);
		if (r < 0 && t->kind == CFG_TARGET_NONE)
			err_prefix(reterr, "no target given (-t pid/PID or a Kubernetes target), "
					   "and targetless in a cluster failed");
	}
	if (r < 0)
		goto fail;
	r = link_wait_ready(s->link, 30 * USEC_PER_SEC, reterr);
	if (r < 0) {
		err_prefix(reterr, "connecting to the agent for %s", s->target);
		s->kube_failed = true;
		goto fail;
	}
	s->client = link_client(s->link);
	*ret = s;
	return 0;
fail:
	s->cfg = NULL; /* the caller still owns it on failure */
	session_free(s);
	return r;
}

struct fetch {
	struct session *s;
	int pending;
	int error;
	char what[64];
};

static void on_env(void *userdata, const struct proto_msg *m)
{
	struct fetch *f = userdata;

	f->pending--;
	if (m->status) {
		f->error = m->status;
		snprintf(f->what, sizeof(f->what), "the target's environment");
		return;
	}
	if (sandbox_env_parse(&m->rep.list, &f->s->remote_env, NULL) < 0) {
		f->error = EPROTO;
		snprintf(f->what, sizeof(f->what), "the target's environment");
	}
}

static void on_hostname(void *userdata, const struct proto_msg *m)
{
	struct fetch *f = userdata;

	f->pending--;
	if (m->status) {
		f->error = m->status;
		snprintf(f->what, sizeof(f->what), "the target's hostname");
		return;
	}
	snprintf(f->s->hostname, sizeof(f->s->hostname), "%s", m->rep.str);
}

static void on_resolv(void *userdata, const struct proto_msg *m)
{
	struct fetch *f = userdata;

	f->pending--;
	free(f->s->resolv_conf);
	/* A pod without resolv.conf is fine: its names just do not resolve. */
	f->s->resolv_conf = m->status ? xstrdup("")
				      : xstrndup((const char *)m->rep.data.data, m->rep.data.len);
}

int session_fetch_context(struct session *s, struct err *reterr)
{
	struct fetch f = { .s = s };
	struct proto_msg env = { .type = PROTO_GETENV }, host = { .type = PROTO_HOSTNAME };
	struct proto_msg resolv = { .type = PROTO_RESOLVCONF };

	if (proto_client_request(s->client, &resolv, on_resolv, &f) > 0)
		f.pending++;
	if (proto_client_request(s->client, &env, on_env, &f) > 0)
		f.pending++;
	if (proto_client_request(s->client, &host, on_hostname, &f) > 0)
		f.pending++;
	while (f.pending > 0 && !s->lost) {
		int r = loop_run_once(s->loop, 30 * USEC_PER_SEC);
		if (r < 0)
			return err_set_errno(reterr, r, "event loop");
	}
	if (s->lost)
		return err_set(reterr, -ECONNRESET, "lost the agent: %s", s->lost_reason);
	if (f.error)
		return err_set_errno(reterr, -f.error, "reading %s", f.what);
	return 0;
}

void session_free(struct session *s)
{
	if (!s)
		return;
	link_free(s->link);
	k8s_session_free(s->kube, s->kube_failed);
	loop_free(s->loop);
	sandbox_env_free(s->remote_env);
	free(s->resolv_conf);
	free(s->target);
	cfg_free(s->cfg);
	free(s);
}
