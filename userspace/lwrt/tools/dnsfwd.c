/*
 * dnsfwd: the router's DNS forwarder for the LAN.
 *
 *   dnsfwd LISTEN-ADDRESS RESOLV-FILE
 *
 * Answers UDP DNS queries to LISTEN-ADDRESS:53 by passing each one on to
 * the first "nameserver" of RESOLV-FILE (read again for every query: the
 * WAN's DHCP client rewrites it) and the answer back to the client. Up to
 * 64 queries are in flight; each gets an id of its own upstream, and an
 * answer is taken only from the server the query went to, with that id.
 * Nothing is cached. Why not dnsmasq: docs/router.md (its 362 KiB of code
 * do not fit next to the networking kernel; this is a few KiB).
 *
 * Freestanding (no libc, raw o32 system calls from userspace/stress/sys.h),
 * for either byte order. Runs until killed; exit 1 when it cannot listen,
 * 2 on bad arguments.
 */
#include "../../stress/sys.h"

#define NR_socket 4183
#define NR_bind 4169
#define NR_sendto 4180
#define NR_recvfrom 4176
#define NR_poll 4188
#define AF_INET 2
#define SOCK_DGRAM 1	/* MIPS: SOCK_DGRAM is 1, SOCK_STREAM 2 */
#define POLLIN 1
#define O_RDONLY 0
#define SLOTS 64

/* struct sockaddr_in: family in the CPU's order, port and address big-endian. */
struct sin {
	u16 family;
	u8 port[2];
	u8 addr[4];
	u8 zero[8];
};

struct pollfd {
	int fd;
	short events;
	short revents;
};

struct slot {
	struct sin client;
	u8 id[2];	/* the client's id */
	u8 server[4];	/* where the query went */
	int used;
};

static struct slot slots[SLOTS];
static u8 buf[1500];

static void say(const char *s) { sys(NR_write, 2, (long)s, (long)slen(s)); }

/* a.b.c.d into 4 bytes; 0 when it is not one. */
static int parse_ip(const char *s, u8 *out)
{
	for (int i = 0; i < 4; i++) {
		unsigned v = 0, digits = 0;

		while (*s >= '0' && *s <= '9' && digits < 4) {
			v = v * 10 + (unsigned)(*s++ - '0');
			digits++;
		}
		if (digits == 0 || v > 255)
			return 0;
		out[i] = (u8)v;
		if (i < 3 && *s++ != '.')
			return 0;
	}
	return *s == 0 || *s == '\n' || *s == ' ' || *s == '\t' || *s == '\r';
}

/* The first "nameserver a.b.c.d" line of the file; 0 when there is none. */
static int upstream(const char *file, u8 *server)
{
	static char text[1024];
	long fd = sys(NR_open, (long)file, O_RDONLY, 0), n;
	const char *key = "nameserver";

	if (fd < 0)
		return 0;
	n = sys(NR_read, fd, (long)text, sizeof(text) - 1);
	sys(NR_close, fd, 0, 0);
	if (n <= 0)
		return 0;
	text[n] = 0;
	for (char *line = text; *line;) {
		char *p = line;
		int k = 0;

		while (key[k] && p[k] == key[k])
			k++;
		if (key[k] == 0 && (p[k] == ' ' || p[k] == '\t')) {
			p += k;
			while (*p == ' ' || *p == '\t')
				p++;
			if (parse_ip(p, server))
				return 1;
		}
		while (*line && *line != '\n')
			line++;
		if (*line)
			line++;
	}
	return 0;
}

static int same4(const u8 *a, const u8 *b) { return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3]; }

static long udp_socket(void) { return sys(NR_socket, AF_INET, SOCK_DGRAM, 0); }

static struct sin address(const u8 *ip, unsigned port)
{
	struct sin a;

	memset(&a, 0, sizeof(a));
	a.family = AF_INET;
	a.port[0] = (u8)(port >> 8);
	a.port[1] = (u8)port;
	for (int i = 0; i < 4; i++)
		a.addr[i] = ip[i];
	return a;
}

static long recv_from(long fd, struct sin *from)
{
	long len = sizeof(*from);

	return sys6(fd, (long)buf, sizeof(buf), 0, (long)from, (long)&len, NR_recvfrom);
}

static void send_to(long fd, long n, const struct sin *to) { sys6(fd, (long)buf, n, 0, (long)to, sizeof(*to), NR_sendto); }

static int dnsfwd(int argc, char **argv)
{
	u8 listen[4];
	struct sin local;
	struct pollfd fds[2];
	long down, up;
	unsigned next = 0;

	if (argc != 3 || !parse_ip(argv[1], listen)) {
		say("usage: dnsfwd LISTEN-ADDRESS RESOLV-FILE\n");
		return 2;
	}
	down = udp_socket();
	up = udp_socket();
	local = address(listen, 53);
	if (down < 0 || up < 0 || sys(NR_bind, down, (long)&local, sizeof(local)) < 0) {
		say("dnsfwd: cannot listen on UDP port 53 of the given address\n");
		return 1;
	}
	fds[0].fd = (int)down;
	fds[1].fd = (int)up;
	for (;;) {
		fds[0].events = fds[1].events = POLLIN;
		fds[0].revents = fds[1].revents = 0;
		if (sys(NR_poll, (long)fds, 2, -1) < 0)
			continue;
		if (fds[0].revents & POLLIN) {
			struct sin client, server;
			u8 ip[4];
			long n = recv_from(down, &client);
			struct slot *s;

			if (n >= 12 && (buf[2] & 0x80) == 0 && upstream(argv[2], ip)) {
				/* A query: remember who asked, under an id of our own. */
				s = &slots[next];
				s->client = client;
				s->id[0] = buf[0];
				s->id[1] = buf[1];
				for (int i = 0; i < 4; i++)
					s->server[i] = ip[i];
				s->used = 1;
				buf[0] = (u8)(next >> 8);
				buf[1] = (u8)next;
				next = (next + 1) % SLOTS;
				server = address(ip, 53);
				send_to(up, n, &server);
			}
		}
		if (fds[1].revents & POLLIN) {
			struct sin from;
			long n = recv_from(up, &from);
			unsigned id;

			if (n < 12 || (buf[2] & 0x80) == 0)
				continue;
			id = (unsigned)buf[0] << 8 | buf[1];
			if (id >= SLOTS || !slots[id].used || !same4(from.addr, slots[id].server) || from.port[0] != 0 || from.port[1] != 53)
				continue;
			buf[0] = slots[id].id[0];
			buf[1] = slots[id].id[1];
			slots[id].used = 0;
			send_to(down, n, &slots[id].client);
		}
	}
}

__attribute__((used, noreturn)) void dnsfwd_main(long argc, char **argv)
{
	sys_exit(dnsfwd((int)argc, argv));
}

STRESS_ENTRY(dnsfwd_main);
