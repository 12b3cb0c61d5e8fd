/* The app's network namespace: loopback up, a TUN device with a large MTU
 * carrying the default routes (IPv4 and IPv6), and the sysctls that make
 * the "system stack" rewrite work (research/vnet.md §1.2, §4.5). Runs in
 * the sandbox child, inside the new namespace, before the app starts;
 * configuration goes through libnl-route (rtnetlink).
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/route.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "vnet/vnet.h"

static int write_sysctl(const char *path, const char *value)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	return write(fd, value, strlen(value)) < 0 ? -errno : 0;
}

static int nl_to_errno(int nlerr)
{
	switch (-nlerr) {
	case NLE_EXIST:
		return -EEXIST;
	case NLE_PERM:
		return -EPERM;
	case NLE_NOADDR:
		return -EADDRNOTAVAIL;
	case NLE_OBJ_NOTFOUND:
		return -ENOENT;
	default:
		return -EIO;
	}
}

static int add_addr(struct nl_sock *sk, int ifindex, int family, const char *text, int plen)
{
	struct rtnl_addr *a = rtnl_addr_alloc();
	struct nl_addr *local = NULL;
	int r;

	r = nl_addr_parse(text, family, &local);
	if (r < 0)
		goto out;
	nl_addr_set_prefixlen(local, plen);
	rtnl_addr_set_ifindex(a, ifindex);
	rtnl_addr_set_local(a, local);
	/* No duplicate address detection: nobody else is on this link, and
	 * DAD would leave the IPv6 address unusable for a second. */
	if (family == AF_INET6)
		rtnl_addr_set_flags(a, IFA_F_NODAD);
	r = rtnl_addr_add(sk, a, 0);
out:
	nl_addr_put(local);
	rtnl_addr_put(a);
	return r < 0 ? nl_to_errno(r) : 0;
}

static int add_default_route(struct nl_sock *sk, int ifindex, int family)
{
	struct rtnl_route *rt = rtnl_route_alloc();
	struct rtnl_nexthop *nh = rtnl_route_nh_alloc();
	struct nl_addr *dst = NULL;
	int r;

	r = nl_addr_parse(family == AF_INET ? "0.0.0.0/0" : "::/0", family, &dst);
	if (r < 0)
		goto out;
	rtnl_route_set_family(rt, (uint8_t)family);
	rtnl_route_set_dst(rt, dst);
	rtnl_route_set_table(rt, RT_TABLE_MAIN);
	rtnl_route_set_scope(rt, RT_SCOPE_UNIVERSE);
	rtnl_route_set_protocol(rt, RTPROT_STATIC);
	rtnl_route_nh_set_ifindex(nh, ifindex);
	rtnl_route_add_nexthop(rt, nh);
	nh = NULL;
	r = rtnl_route_add(sk, rt, NLM_F_CREATE);
out:
	if (nh)
		rtnl_route_nh_free(nh);
	nl_addr_put(dst);
	rtnl_route_put(rt);
	return r < 0 ? nl_to_errno(r) : 0;
}

static int link_up(struct nl_sock *sk, int ifindex, uint32_t mtu)
{
	struct rtnl_link *old = NULL, *change = rtnl_link_alloc();
	int r;

	r = rtnl_link_get_kernel(sk, ifindex, NULL, &old);
	if (r < 0)
		goto out;
	rtnl_link_set_flags(change, IFF_UP);
	if (mtu)
		rtnl_link_set_mtu(change, mtu);
	r = rtnl_link_change(sk, old, change, 0);
out:
	rtnl_link_put(old);
	rtnl_link_put(change);
	return r < 0 ? nl_to_errno(r) : 0;
}

int vnet_tun_check(struct err *reterr)
{
	if (access("/dev/net/tun", R_OK | W_OK) < 0)
		return err_set_errno(reterr, -errno,
				     "cannot use /dev/net/tun (podenv routes the app's network through a "
				     "TUN device: load the tun module and give this user read-write "
				     "access to /dev/net/tun, run as root, or turn the network off with "
				     "--no-outgoing and dns: false)");
	return 0;
}

int vnet_netns_setup(const struct vnet_netns_cfg *cfg, int *ret_tun_fd, struct err *reterr)
{
	struct ifreq ifr = { 0 };
	struct nl_sock *sk = NULL;
	_cleanup_close_ int fd = -1;
	int ifindex, r;

	/* Packets the relay writes back carry addresses the kernel must
	 * accept on the TUN: no reverse-path filter, and local routing of
	 * the rewritten ones (research §4.5). */
	write_sysctl("/proc/sys/net/ipv4/conf/all/rp_filter", "0");
	write_sysctl("/proc/sys/net/ipv4/conf/default/rp_filter", "0");
	write_sysctl("/proc/sys/net/ipv4/conf/all/accept_local", "1");
	write_sysctl("/proc/sys/net/ipv4/ip_forward", "0");
	/* Answers from 127.0.0.0/8 come in on the TUN (loopback.c). */
	write_sysctl("/proc/sys/net/ipv4/conf/all/route_localnet", "1");

	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return err_set_errno(reterr, -errno,
				     "opening /dev/net/tun (podenv routes the app's network through "
				     "a TUN device)");
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", cfg->name);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0)
		return err_set_errno(reterr, -errno, "creating the TUN device %s", cfg->name);

	sk = nl_socket_alloc();
	if (!sk || nl_connect(sk, NETLINK_ROUTE) < 0) {
		r = err_set(reterr, -EIO, "cannot open an rtnetlink socket");
		goto out;
	}
	/* Loopback first: the app's own local traffic. */
	r = link_up(sk, 1, 0);
	if (r < 0) {
		err_set_errno(reterr, r, "bringing up lo");
		goto out;
	}
	{
		_cleanup_close_ int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (s < 0 || ioctl(s, SIOCGIFINDEX, &ifr) < 0) {
			r = err_set_errno(reterr, -errno, "finding %s", ifr.ifr_name);
			goto out;
		}
		ifindex = ifr.ifr_ifindex;
	}
	r = add_addr(sk, ifindex, AF_INET, cfg->addr4, cfg->plen4);
	if (r >= 0 && cfg->addr6)
		r = add_addr(sk, ifindex, AF_INET6, cfg->addr6, cfg->plen6);
	if (r < 0) {
		err_set_errno(reterr, r, "addressing %s", ifr.ifr_name);
		goto out;
	}
	r = link_up(sk, ifindex, cfg->mtu);
	if (r < 0) {
		err_set_errno(reterr, r, "bringing up %s with MTU %u", ifr.ifr_name, cfg->mtu);
		goto out;
	}
	r = add_default_route(sk, ifindex, AF_INET);
	if (r >= 0 && cfg->addr6)
		r = add_default_route(sk, ifindex, AF_INET6);
	if (r < 0) {
		err_set_errno(reterr, r, "routing through %s", ifr.ifr_name);
		goto out;
	}
	*ret_tun_fd = TAKE_FD(fd);
	r = 0;
out:
	nl_socket_free(sk);
	return r;
}
