/*
 * supervisor/tap_setup.c - the TAP interface of a tap: instance. The supervisor
 * creates it (the driver runs sandboxed and cannot) and hands the driver
 * the descriptor; the interface goes when the last descriptor closes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "supervisor/supervisor.h"

int bh_sup_tap_create(const char *ifname, uint16_t mtu, bool host_set, bh_ip4 host_addr,
		      uint8_t host_prefix, bool large, char *err, size_t errlen)
{
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "tap: /dev/net/tun: %s", strerror(errno));
		return -errno;
	}
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	/* Every frame behind a virtio-net header (drivers/tap.c): how the
	 * driver hands the kernel whole TCP segments to cut and checksums
	 * to complete. */
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	snprintf(ifr.ifr_name, IFNAMSIZ, "%.15s", ifname);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		int e = errno;
		snprintf(err, errlen, "tap:%s: cannot create the interface: %s", ifname, strerror(e));
		close(fd);
		return -e;
	}
	/* What the kernel may send us: partial checksums and TCP/IPv4
	 * segments of up to 64 KiB (the driver takes them in chains of RX
	 * buffers, drivers/tap.c). Without it, MTU frames, whole checksums. */
	if (large && ioctl(fd, TUNSETOFFLOAD, (unsigned long)(TUN_F_CSUM | TUN_F_TSO4)) < 0) {
		int e = errno;
		snprintf(err, errlen, "tap:%s: cannot set its offloads: %s", ifname, strerror(e));
		close(fd);
		return -e;
	}
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int rc = 0;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, IFNAMSIZ, "%.15s", ifname);
	ifr.ifr_mtu = mtu;
	if (ioctl(s, SIOCSIFMTU, &ifr) < 0)
		rc = -errno;
	if (rc == 0 && host_set) {
		bh_ip4 a = host_addr;
		uint8_t p = host_prefix;
		struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
		memset(&ifr.ifr_addr, 0, sizeof(ifr.ifr_addr));
		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(a);
		if (ioctl(s, SIOCSIFADDR, &ifr) < 0)
			rc = -errno;
		sin->sin_addr.s_addr = htonl(p ? ~0u << (32 - p) : 0);
		if (rc == 0 && ioctl(s, SIOCSIFNETMASK, &ifr) < 0)
			rc = -errno;
	}
	if (rc == 0 && ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
			rc = -errno;
	}
	close(s);
	if (rc) {
		snprintf(err, errlen, "tap:%s: cannot configure the interface: %s", ifname,
			 strerror(-rc));
		close(fd);
		return rc;
	}
	return fd;
}

