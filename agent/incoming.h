/* Incoming traffic: SUBSCRIBE/UNSUBSCRIBE, the agent's redirect listener
 * and the connections it accepts (docs/PROTOCOL.md §4.4). Private to
 * agent/; loop thread only.
 */
#ifndef PODENV_AGENT_INCOMING_H
#define PODENV_AGENT_INCOMING_H

#include <stdbool.h>

#include "agent/session.h"

struct agent_incoming;

struct agent_incoming_opts {
	bool nft;   /* nft instead of iptables (agent.nftables) */
	bool flush; /* reset established connections of a newly redirected port */
};

/* Creates the (idle) incoming service on loop l; nothing is set up in the
 * namespace until the first SUBSCRIBE. */
struct agent_incoming *agent_incoming_new(struct loop *l, const struct agent_incoming_opts *o);
/* Ends every connection and removes every rule. Accepts NULL. */
void agent_incoming_free(struct agent_incoming *inc);

/* SUBSCRIBE and UNSUBSCRIBE requests of session s (answered at once). */
void agent_incoming_request(struct agent_incoming *inc, struct agent_session *s,
			    const struct proto_msg *m);
/* Stream frames for an agent-allocated id that stream.c does not know. */
void agent_incoming_input(struct agent_incoming *inc, struct agent_session *s,
			  const struct proto_msg *m);
/* Session s is closing: its subscriptions and streams end. */
void agent_incoming_session_closed(struct agent_incoming *inc, struct agent_session *s);

#endif
