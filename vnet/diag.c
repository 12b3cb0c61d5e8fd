/* sock_diag dumps of one network namespace (vnet.h, "sock_diag"): which
 * sockets the app has. Used by the loopback routing (loopback.c) and by the
 * launcher's watch of the app's listeners.
 */
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "vnet/vnet.h"

int vnet_diag_dump(int diag_fd, uint32_t *seq, int family, int proto, uint32_t states,
		   uint16_t sport, vnet_diag_fn fn, void *userdata)
{
	struct {
		struct nlmsghdr nh;
		struct inet_diag_req_v2 rq;
	} req = {
		.nh = { .nlmsg_len = sizeof(req),
			.nlmsg_type = SOCK_DIAG_BY_FAMILY,
			.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
			.nlmsg_seq = ++*seq },
		/* The kernel skips other source ports itself (id.idiag_sport
		 * is honoured by TCP and UDP dumps). */
		.rq = { .sdiag_family = (uint8_t)family,
			.sdiag_protocol = (uint8_t)proto,
			.idiag_states = states,
			.id = { .idiag_sport = htons(sport) } },
	};
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	static _Thread_local uint8_t buf[32768] __attribute__((aligned(8)));

	if (diag_fd < 0)
		return -ENOTCONN;
	if (sendto(diag_fd, &req, sizeof(req), 0, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	for (;;) {
		ssize_t n = recv(diag_fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		size_t len = (size_t)n;
		for (struct nlmsghdr *h = (void *)buf; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
			if (h->nlmsg_seq != *seq)
				continue; /* an answer to an earlier, abandoned dump */
			if (h->nlmsg_type == NLMSG_DONE)
				return 0;
			if (h->nlmsg_type == NLMSG_ERROR) {
				struct nlmsgerr *e = NLMSG_DATA(h);
				return e->error ? e->error : -EIO;
			}
			if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY &&
			    h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
				fn(NLMSG_DATA(h), h->nlmsg_len - NLMSG_LENGTH(0), userdata);
		}
	}
}
