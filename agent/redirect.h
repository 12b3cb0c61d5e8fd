/* Redirect rules for incoming traffic (mirror and steal) in the target's
 * network namespace. Private to agent/; loop thread only (the commands it
 * runs block the loop for a few milliseconds, once per change of the set
 * of redirected ports).
 *
 * Every rule of one agent lives in objects named after its identity, a
 * random 8-hex-digit tag: the nat chains PODENV-<id>-PRE and -OUT (with a
 * jump from PREROUTING and OUTPUT) for iptables, the table
 * `inet podenv_<id>` for nft. An agent is alive as long as it holds the
 * abstract unix socket "@podenv-agent/<id>" in the namespace, so any
 * agent can tell stale rules (of a killed agent) from live ones, whatever
 * PID namespace either runs in. A guard process (the agent re-executed)
 * removes the rules as soon as the agent dies, even by SIGKILL.
 *
 * The agent's own connections to the pod's original app carry the socket
 * mark agent_redirect_mark(), which the OUTPUT rules let through.
 */
#ifndef PODENV_AGENT_REDIRECT_H
#define PODENV_AGENT_REDIRECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

/* Pass-through connections are marked AGENT_REDIRECT_MARK | seq, seq
 * being the agent's sequence number among the agents of this namespace
 * (newer agents get larger ones, and their chains come first). Each
 * agent's OUTPUT rules let marks BASE|1 .. BASE|seq through: so an
 * agent's pass-through skips its own redirect and every newer one, and
 * reaches the next older agent mirroring the port — mirror is shared,
 * and a connection can never loop back to an agent it came through. */
#define AGENT_REDIRECT_MARK 0x70640000u
#define AGENT_REDIRECT_MARK_MASK 0xffff0000u

struct agent_redirect;

/* Sets up redirection to `lport` (the agent's listener, bound on every
 * address of both families; v6: whether the IPv6 listener exists) with
 * the nft backend or iptables: removes stale rules of dead agents,
 * claims an identity and starts the guard. Installs no rule yet. Errors
 * name the command that failed and its output. */
int agent_redirect_new(bool nft, uint16_t lport, bool v6, struct agent_redirect **ret,
		       struct err *reterr);

/* Replaces the redirected ports by ports[0..n) (n = 0: no rule at all),
 * atomically per family. */
int agent_redirect_set(struct agent_redirect *r, const uint16_t *ports, size_t n,
		       struct err *reterr);

/* Removes every rule and stops the guard. Accepts NULL. */
void agent_redirect_free(struct agent_redirect *r);

const char *agent_redirect_id(const struct agent_redirect *r);

/* The SO_MARK for this agent's pass-through connections. */
uint32_t agent_redirect_mark(const struct agent_redirect *r);

/* Claims the right to steal `port` in this network namespace, against
 * every other agent: returns an fd to close when the steal ends, or
 * -EADDRINUSE while another agent steals it. */
int agent_redirect_steal_lock(uint16_t port);

/* Resets established TCP connections whose local port is `port` (the
 * pod's app side) with SOCK_DESTROY, so their clients reconnect through
 * the redirect. Returns how many, or -errno. */
int agent_redirect_flush(uint16_t port);

/* Starts `podenv-agent --redirect-clean` in the background, which
 * removes stale rules of dead agents and exits: the agent's start does not
 * wait for the tools. Returns 1 with *ret_pid (the caller reaps it), 0 when
 * no tool is installed (nothing to clean), -errno. */
int agent_redirect_clean_start(pid_t *ret_pid);

/* The helpers' entry point: `podenv-agent --redirect-guard ID
 * iptables|nft` with the agent's pipe on fd 3 waits for EOF and removes
 * ID's rules; `podenv-agent --redirect-clean` removes stale rules. */
int agent_redirect_guard_main(int argc, char **argv);

#endif
