/*
 * fw: the router's firewall, installed through the kernel's nf_tables
 * netlink interface in one transaction (what `nft -f` does), as table
 * "ip lwrt":
 *
 *   fw WAN LAN     replace table ip lwrt with the ruleset below, print it
 *   fw -n WAN LAN  print it only
 *
 *   table ip lwrt {
 *     chain input { type filter hook input priority 0; policy drop;
 *       ct state established,related accept
 *       ct state invalid drop
 *       iifname "lo" accept
 *       iifname LAN accept
 *       iifname WAN udp dport 68 accept        (DHCP answers to the WAN client)
 *     }
 *     chain forward { type filter hook forward priority 0; policy drop;
 *       ct state established,related accept
 *       iifname LAN oifname WAN accept
 *     }
 *     chain postrouting { type nat hook postrouting priority 100; policy accept;
 *       oifname WAN masquerade
 *     }
 *   }
 *
 * Why not nft: Debian's nftables, libnftnl and libmnl source packages
 * cannot be fetched here (docs/router.md), and nft with its libraries is a
 * few hundred KiB of flash for one fixed ruleset; this is a few KiB.
 *
 * Freestanding on the router (raw o32 system calls from
 * userspace/stress/sys.h). Built with -DFW_HOSTED it uses the host's libc
 * and checks every number below against the kernel's UAPI header, so the
 * same source can be tried on a workstation (as root, in a network
 * namespace). nf_tables attributes are big-endian; netlink headers and
 * attribute headers are in the CPU's order. Exit 0: installed; 1: the
 * kernel refused (its errno is printed); 2: bad arguments.
 */
#ifdef FW_HOSTED
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter.h>
#include <linux/netlink.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
typedef unsigned int u32;
typedef unsigned short u16;
#define CHECK(ours, theirs) _Static_assert((long)(ours) == (long)(theirs), #ours)
static long fw_socket(void) { return socket(AF_NETLINK, SOCK_RAW, NETLINK_NETFILTER); }
static long fw_send(int fd, const void *p, unsigned long n)
{
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };

	return sendto(fd, p, n, 0, (struct sockaddr *)&kernel, sizeof(kernel));
}
static long fw_recv(int fd, void *p, unsigned long n) { return recv(fd, p, n, 0); }
static long fw_write(int fd, const void *p, unsigned long n) { return write(fd, p, n); }
#else
#include "../../stress/sys.h"
#define CHECK(ours, theirs)
#define NR_socket 4183
#define NR_sendto 4180
#define NR_recvfrom 4176
static long fw_socket(void) { return sys(NR_socket, 16 /* AF_NETLINK */, 3 /* SOCK_RAW */, 12 /* NETLINK_NETFILTER */); }
static long fw_send(int fd, const void *p, unsigned long n)
{
	/* struct sockaddr_nl { u16 family; u16 pad; u32 pid; u32 groups; }: the kernel is pid 0. */
	u32 kernel[3] = { 16, 0, 0 };

	if (*(const unsigned char *)kernel == 0)	/* big-endian: family is the first u16 */
		kernel[0] = 16U << 16;
	return sys6(fd, (long)p, (long)n, 0, (long)kernel, 12, NR_sendto);
}
static long fw_recv(int fd, void *p, unsigned long n) { return sys6(fd, (long)p, (long)n, 0, 0, 0, NR_recvfrom); }
static long fw_write(int fd, const void *p, unsigned long n) { return sys(NR_write, fd, (long)p, (long)n); }
#endif

/* Message types. */
enum { SUBSYS_NFTABLES = 10, BATCH_BEGIN = 16, BATCH_END = 17 };
enum { MSG_NEWTABLE = 0, MSG_DELTABLE = 2, MSG_NEWCHAIN = 3, MSG_NEWRULE = 6 };
enum { F_REQUEST = 1, F_ACK = 4, F_APPEND = 0x800, F_CREATE = 0x400, F_NESTED = 0x8000, MSG_ERROR = 2 };
/* Attributes. */
enum { TABLE_NAME = 1 };
enum { CHAIN_TABLE = 1, CHAIN_NAME = 3, CHAIN_HOOK = 4, CHAIN_POLICY = 5, CHAIN_TYPE = 7 };
enum { HOOK_NUM = 1, HOOK_PRIORITY = 2 };
enum { RULE_TABLE = 1, RULE_CHAIN = 2, RULE_EXPRESSIONS = 4 };
enum { LIST_ELEM = 1, EXPR_NAME = 1, EXPR_DATA = 2, DATA_VALUE = 1, DATA_VERDICT = 2, VERDICT_CODE = 1 };
enum { META_DREG = 1, META_KEY = 2, CT_DREG = 1, CT_KEY = 2 };
enum { CMP_SREG = 1, CMP_OP = 2, CMP_DATA = 3, CMP_EQ = 0, CMP_NEQ = 1 };
enum { BITWISE_SREG = 1, BITWISE_DREG = 2, BITWISE_LEN = 3, BITWISE_MASK = 4, BITWISE_XOR = 5 };
enum { IMMEDIATE_DREG = 1, IMMEDIATE_DATA = 2, PAYLOAD_DREG = 1, PAYLOAD_BASE = 2, PAYLOAD_OFFSET = 3, PAYLOAD_LEN = 4 };
/* Values. */
enum { REG_VERDICT = 0, REG_1 = 1, META_IIFNAME = 6, META_OIFNAME = 7, META_L4PROTO = 16, CT_STATE = 0, BASE_TRANSPORT = 2 };
enum { V_DROP = 0, V_ACCEPT = 1, HOOK_INPUT = 1, HOOK_FORWARD = 2, HOOK_POSTROUTING = 4, FAMILY_IPV4 = 2 };
/* ct state bits: invalid, established, related. */
enum { CT_INVALID = 1, CT_ESTABLISHED = 2, CT_RELATED = 4 };

CHECK(SUBSYS_NFTABLES, NFNL_SUBSYS_NFTABLES);
CHECK(BATCH_BEGIN, NFNL_MSG_BATCH_BEGIN);
CHECK(BATCH_END, NFNL_MSG_BATCH_END);
CHECK(MSG_NEWTABLE, NFT_MSG_NEWTABLE);
CHECK(MSG_DELTABLE, NFT_MSG_DELTABLE);
CHECK(MSG_NEWCHAIN, NFT_MSG_NEWCHAIN);
CHECK(MSG_NEWRULE, NFT_MSG_NEWRULE);
CHECK(F_REQUEST, NLM_F_REQUEST);
CHECK(F_ACK, NLM_F_ACK);
CHECK(F_APPEND, NLM_F_APPEND);
CHECK(F_CREATE, NLM_F_CREATE);
CHECK(F_NESTED, NLA_F_NESTED);
CHECK(MSG_ERROR, NLMSG_ERROR);
CHECK(TABLE_NAME, NFTA_TABLE_NAME);
CHECK(CHAIN_TABLE, NFTA_CHAIN_TABLE);
CHECK(CHAIN_NAME, NFTA_CHAIN_NAME);
CHECK(CHAIN_HOOK, NFTA_CHAIN_HOOK);
CHECK(CHAIN_POLICY, NFTA_CHAIN_POLICY);
CHECK(CHAIN_TYPE, NFTA_CHAIN_TYPE);
CHECK(HOOK_NUM, NFTA_HOOK_HOOKNUM);
CHECK(HOOK_PRIORITY, NFTA_HOOK_PRIORITY);
CHECK(RULE_TABLE, NFTA_RULE_TABLE);
CHECK(RULE_CHAIN, NFTA_RULE_CHAIN);
CHECK(RULE_EXPRESSIONS, NFTA_RULE_EXPRESSIONS);
CHECK(LIST_ELEM, NFTA_LIST_ELEM);
CHECK(EXPR_NAME, NFTA_EXPR_NAME);
CHECK(EXPR_DATA, NFTA_EXPR_DATA);
CHECK(DATA_VALUE, NFTA_DATA_VALUE);
CHECK(DATA_VERDICT, NFTA_DATA_VERDICT);
CHECK(VERDICT_CODE, NFTA_VERDICT_CODE);
CHECK(META_DREG, NFTA_META_DREG);
CHECK(META_KEY, NFTA_META_KEY);
CHECK(CT_DREG, NFTA_CT_DREG);
CHECK(CT_KEY, NFTA_CT_KEY);
CHECK(CMP_SREG, NFTA_CMP_SREG);
CHECK(CMP_OP, NFTA_CMP_OP);
CHECK(CMP_DATA, NFTA_CMP_DATA);
CHECK(CMP_EQ, NFT_CMP_EQ);
CHECK(CMP_NEQ, NFT_CMP_NEQ);
CHECK(BITWISE_SREG, NFTA_BITWISE_SREG);
CHECK(BITWISE_DREG, NFTA_BITWISE_DREG);
CHECK(BITWISE_LEN, NFTA_BITWISE_LEN);
CHECK(BITWISE_MASK, NFTA_BITWISE_MASK);
CHECK(BITWISE_XOR, NFTA_BITWISE_XOR);
CHECK(IMMEDIATE_DREG, NFTA_IMMEDIATE_DREG);
CHECK(IMMEDIATE_DATA, NFTA_IMMEDIATE_DATA);
CHECK(PAYLOAD_DREG, NFTA_PAYLOAD_DREG);
CHECK(PAYLOAD_BASE, NFTA_PAYLOAD_BASE);
CHECK(PAYLOAD_OFFSET, NFTA_PAYLOAD_OFFSET);
CHECK(PAYLOAD_LEN, NFTA_PAYLOAD_LEN);
CHECK(REG_VERDICT, NFT_REG_VERDICT);
CHECK(REG_1, NFT_REG_1);
CHECK(META_IIFNAME, NFT_META_IIFNAME);
CHECK(META_OIFNAME, NFT_META_OIFNAME);
CHECK(META_L4PROTO, NFT_META_L4PROTO);
CHECK(CT_STATE, NFT_CT_STATE);
CHECK(BASE_TRANSPORT, NFT_PAYLOAD_TRANSPORT_HEADER);
CHECK(V_DROP, NF_DROP);
CHECK(V_ACCEPT, NF_ACCEPT);
CHECK(HOOK_INPUT, NF_INET_LOCAL_IN);
CHECK(HOOK_FORWARD, NF_INET_FORWARD);
CHECK(HOOK_POSTROUTING, NF_INET_POST_ROUTING);
CHECK(FAMILY_IPV4, NFPROTO_IPV4);
CHECK(CT_INVALID, NF_CT_STATE_INVALID_BIT);
CHECK(CT_ESTABLISHED, NF_CT_STATE_BIT(0));
CHECK(CT_RELATED, NF_CT_STATE_BIT(1));

#define IFNAMSIZ 16
#define TABLE "lwrt"

static unsigned char msg[4096] __attribute__((aligned(4)));
static unsigned long len;	/* bytes of msg in use */
static unsigned long cur;	/* offset of the message being built */
static u32 seq;
static int overflow;

static void put(const void *p, unsigned long n)
{
	const unsigned char *s = p;

	if (len + ((n + 3) & ~3UL) > sizeof(msg)) {
		overflow = 1;
		return;
	}
	for (unsigned long i = 0; i < n; i++)
		msg[len++] = s[i];
	while (len & 3)
		msg[len++] = 0;
}

static void set16(unsigned long at, u16 v) { *(u16 *)(msg + at) = v; }
static void set32(unsigned long at, u32 v) { *(u32 *)(msg + at) = v; }

static void be32(unsigned char *b, u32 v)
{
	b[0] = v >> 24;
	b[1] = v >> 16;
	b[2] = v >> 8;
	b[3] = v;
}

/* One netlink message: nlmsghdr (len, type, flags, seq, pid) and nfgenmsg (family, version, res_id). */
static void begin(u16 type, u16 flags, unsigned char family, u16 res_id_be)
{
	u32 hdr[5] = { 0, 0, 0, 0, 0 };

	cur = len;
	put(hdr, sizeof(hdr));
	if (overflow)
		return;
	set32(cur, 0);
	set16(cur + 4, type);
	set16(cur + 6, flags);
	set32(cur + 8, ++seq);
	msg[cur + 16] = family;
	msg[cur + 17] = 0;	/* NFNETLINK_V0 */
	*(u16 *)(msg + cur + 18) = res_id_be;
}

static void end(void)
{
	if (!overflow)
		set32(cur, len - cur);
}

static void attr(u16 type, const void *p, unsigned long n)
{
	u32 h = 0;
	unsigned long at = len;

	put(&h, 4);
	if (overflow)
		return;
	set16(at, 4 + n);
	set16(at + 2, type);
	put(p, n);
}

static void attr_be32(u16 type, u32 v)
{
	unsigned char b[4];

	be32(b, v);
	attr(type, b, 4);
}

static unsigned long slen_(const char *s)
{
	unsigned long n = 0;

	while (s[n])
		n++;
	return n;
}

static void attr_str(u16 type, const char *s) { attr(type, s, slen_(s) + 1); }

static unsigned long nest(u16 type)
{
	unsigned long at = len;

	attr(type | F_NESTED, 0, 0);
	return at;
}

static void nest_end(unsigned long at)
{
	if (!overflow)
		set16(at, len - at);
}

/* Expressions of a rule: each a list element with a name and its data. */
static unsigned long expr_elem, expr_data;

static void expr(const char *name)
{
	expr_elem = nest(LIST_ELEM);
	attr_str(EXPR_NAME, name);
	expr_data = nest(EXPR_DATA);
}

static void expr_end(void)
{
	nest_end(expr_data);
	nest_end(expr_elem);
}

static unsigned long rule_exprs;

static void rule(const char *chain)
{
	begin(SUBSYS_NFTABLES << 8 | MSG_NEWRULE, F_REQUEST | F_ACK | F_CREATE | F_APPEND, FAMILY_IPV4, 0);
	attr_str(RULE_TABLE, TABLE);
	attr_str(RULE_CHAIN, chain);
	rule_exprs = nest(RULE_EXPRESSIONS);
}

static void rule_end(void)
{
	nest_end(rule_exprs);
	end();
}

static void cmp(u32 op, const void *data, unsigned long n)
{
	unsigned long d;

	expr("cmp");
	attr_be32(CMP_SREG, REG_1);
	attr_be32(CMP_OP, op);
	d = nest(CMP_DATA);
	attr(DATA_VALUE, data, n);
	nest_end(d);
	expr_end();
}

/* meta iifname/oifname NAME: the whole 16-byte name, zero padded. */
static void ifname(u32 key, const char *name)
{
	unsigned char b[IFNAMSIZ];
	unsigned long n = slen_(name);

	for (unsigned long i = 0; i < IFNAMSIZ; i++)
		b[i] = i < n ? (unsigned char)name[i] : 0;
	expr("meta");
	attr_be32(META_DREG, REG_1);
	attr_be32(META_KEY, key);
	expr_end();
	cmp(CMP_EQ, b, IFNAMSIZ);
}

/* ct state & bits != 0 (the state is a u32 in the CPU's order). */
static void ct_state(u32 bits)
{
	u32 zero = 0;
	unsigned long d;

	expr("ct");
	attr_be32(CT_DREG, REG_1);
	attr_be32(CT_KEY, CT_STATE);
	expr_end();
	expr("bitwise");
	attr_be32(BITWISE_SREG, REG_1);
	attr_be32(BITWISE_DREG, REG_1);
	attr_be32(BITWISE_LEN, 4);
	d = nest(BITWISE_MASK);
	attr(DATA_VALUE, &bits, 4);
	nest_end(d);
	d = nest(BITWISE_XOR);
	attr(DATA_VALUE, &zero, 4);
	nest_end(d);
	expr_end();
	cmp(CMP_NEQ, &zero, 4);
}

/* udp dport PORT: meta l4proto 17, then two bytes at offset 2 of the transport header. */
static void udp_dport(unsigned port)
{
	unsigned char udp = 17, b[2] = { port >> 8, port & 0xff };

	expr("meta");
	attr_be32(META_DREG, REG_1);
	attr_be32(META_KEY, META_L4PROTO);
	expr_end();
	cmp(CMP_EQ, &udp, 1);
	expr("payload");
	attr_be32(PAYLOAD_DREG, REG_1);
	attr_be32(PAYLOAD_BASE, BASE_TRANSPORT);
	attr_be32(PAYLOAD_OFFSET, 2);
	attr_be32(PAYLOAD_LEN, 2);
	expr_end();
	cmp(CMP_EQ, b, 2);
}

static void verdict(int v)
{
	unsigned long d, vd;

	expr("immediate");
	attr_be32(IMMEDIATE_DREG, REG_VERDICT);
	d = nest(IMMEDIATE_DATA);
	vd = nest(DATA_VERDICT);
	attr_be32(VERDICT_CODE, (u32)v);
	nest_end(vd);
	nest_end(d);
	expr_end();
}

static void table_msg(u16 type)
{
	begin(SUBSYS_NFTABLES << 8 | type, F_REQUEST | F_ACK | (type == MSG_NEWTABLE ? F_CREATE : 0), FAMILY_IPV4, 0);
	attr_str(TABLE_NAME, TABLE);
	end();
}

static void chain(const char *name, const char *type, u32 hook, int prio, u32 policy)
{
	unsigned long h;

	begin(SUBSYS_NFTABLES << 8 | MSG_NEWCHAIN, F_REQUEST | F_ACK | F_CREATE, FAMILY_IPV4, 0);
	attr_str(CHAIN_TABLE, TABLE);
	attr_str(CHAIN_NAME, name);
	h = nest(CHAIN_HOOK);
	attr_be32(HOOK_NUM, hook);
	attr_be32(HOOK_PRIORITY, (u32)prio);
	nest_end(h);
	attr_be32(CHAIN_POLICY, policy);
	attr_str(CHAIN_TYPE, type);
	end();
}

static void say(int fd, const char *s) { fw_write(fd, s, slen_(s)); }

static void say3(int fd, const char *a, const char *b, const char *c)
{
	say(fd, a);
	say(fd, b);
	say(fd, c);
}

static void print_ruleset(const char *wan, const char *lan)
{
	say(1, "table ip " TABLE " {\n"
	       "\tchain input {\n\t\ttype filter hook input priority 0; policy drop;\n"
	       "\t\tct state established,related accept\n\t\tct state invalid drop\n"
	       "\t\tiifname \"lo\" accept\n");
	say3(1, "\t\tiifname \"", lan, "\" accept\n");
	say3(1, "\t\tiifname \"", wan, "\" udp dport 68 accept\n\t}\n");
	say(1, "\tchain forward {\n\t\ttype filter hook forward priority 0; policy drop;\n"
	       "\t\tct state established,related accept\n");
	say3(1, "\t\tiifname \"", lan, "\" ");
	say3(1, "oifname \"", wan, "\" accept\n\t}\n");
	say(1, "\tchain postrouting {\n\t\ttype nat hook postrouting priority 100; policy accept;\n");
	say3(1, "\t\toifname \"", wan, "\" masquerade\n\t}\n}\n");
}

/* The whole transaction: the table is created (if absent), deleted with all it holds, and made again. */
static void build(const char *wan, const char *lan)
{
	/* The batch's res_id is the subsystem, big-endian. */
	begin(BATCH_BEGIN, F_REQUEST, 0, 0);
	msg[cur + 18] = 0;
	msg[cur + 19] = SUBSYS_NFTABLES;
	end();
	table_msg(MSG_NEWTABLE);
	table_msg(MSG_DELTABLE);
	table_msg(MSG_NEWTABLE);

	chain("input", "filter", HOOK_INPUT, 0, V_DROP);
	rule("input");
	ct_state(CT_ESTABLISHED | CT_RELATED);
	verdict(V_ACCEPT);
	rule_end();
	rule("input");
	ct_state(CT_INVALID);
	verdict(V_DROP);
	rule_end();
	rule("input");
	ifname(META_IIFNAME, "lo");
	verdict(V_ACCEPT);
	rule_end();
	rule("input");
	ifname(META_IIFNAME, lan);
	verdict(V_ACCEPT);
	rule_end();
	rule("input");
	ifname(META_IIFNAME, wan);
	udp_dport(68);
	verdict(V_ACCEPT);
	rule_end();

	chain("forward", "filter", HOOK_FORWARD, 0, V_DROP);
	rule("forward");
	ct_state(CT_ESTABLISHED | CT_RELATED);
	verdict(V_ACCEPT);
	rule_end();
	rule("forward");
	ifname(META_IIFNAME, lan);
	ifname(META_OIFNAME, wan);
	verdict(V_ACCEPT);
	rule_end();

	chain("postrouting", "nat", HOOK_POSTROUTING, 100, V_ACCEPT);
	rule("postrouting");
	ifname(META_OIFNAME, wan);
	expr("masq");
	expr_end();
	rule_end();

	begin(BATCH_END, F_REQUEST, 0, 0);
	msg[cur + 18] = 0;
	msg[cur + 19] = SUBSYS_NFTABLES;
	end();
}

static void num(int fd, long v)
{
	char b[12];
	int i = sizeof(b);

	if (v < 0) {
		say(fd, "-");
		v = -v;
	}
	b[--i] = 0;
	do {
		b[--i] = '0' + v % 10;
		v /= 10;
	} while (v && i > 0);
	say(fd, b + i);
}

static int valid_ifname(const char *s)
{
	unsigned long n = slen_(s);

	if (n == 0 || n >= IFNAMSIZ)
		return 0;
	for (unsigned long i = 0; i < n; i++)
		if (s[i] == '/' || s[i] == ' ' || s[i] == ':' || s[i] == '"')
			return 0;
	return 1;
}

/* Read the kernel's answers: one ack (error 0) per request, or the first error. */
static int acks(int fd, u32 want)
{
	static unsigned char in[8192] __attribute__((aligned(4)));
	u32 got = 0;

	while (got < want) {
		long n = fw_recv(fd, in, sizeof(in));

		if (n < 0) {
			say(2, "fw: reading the kernel's answer failed: errno ");
			num(2, -n);
			say(2, "\n");
			return 1;
		}
		for (long at = 0; at + 16 <= n;) {
			u32 mlen = *(u32 *)(in + at);
			u16 type = *(u16 *)(in + at + 4);
			u32 mseq = *(u32 *)(in + at + 8);

			if (mlen < 16 || (unsigned long)at + mlen > (unsigned long)n)
				break;
			if (type == MSG_ERROR) {
				int err = *(int *)(in + at + 16);

				if (err != 0) {
					say(2, "fw: the kernel refused message ");
					num(2, mseq);
					say(2, " of the ruleset: errno ");
					num(2, -err);
					say(2, " (is CONFIG_NF_TABLES with NFT_CT, NFT_NAT, NFT_MASQ built in?)\n");
					return 1;
				}
				got++;
			}
			at += (mlen + 3) & ~3U;
		}
	}
	return 0;
}

static int fw(int argc, char **argv)
{
	int dry = argc > 1 && argv[1][0] == '-' && argv[1][1] == 'n' && argv[1][2] == 0;
	const char *wan, *lan;
	long fd, n;

	if (argc != 3 + dry || !valid_ifname(argv[1 + dry]) || !valid_ifname(argv[2 + dry])) {
		say(2, "usage: fw [-n] WAN-INTERFACE LAN-INTERFACE (names of 1-15 characters)\n");
		return 2;
	}
	wan = argv[1 + dry];
	lan = argv[2 + dry];
	build(wan, lan);
	if (overflow) {
		say(2, "fw: the ruleset does not fit its buffer\n");
		return 1;
	}
	if (!dry) {
		fd = fw_socket();
		if (fd < 0) {
			say(2, "fw: no netfilter netlink socket (CONFIG_NETFILTER_NETLINK?)\n");
			return 1;
		}
		n = fw_send(fd, msg, len);
		if (n != (long)len) {
			say(2, "fw: sending the ruleset failed: errno ");
			num(2, -n);
			say(2, "\n");
			return 1;
		}
		/* Every message but the batch's begin and end asks for an ack. */
		if (acks(fd, seq - 2))
			return 1;
	}
	print_ruleset(wan, lan);
	return 0;
}

#ifdef FW_HOSTED
int main(int argc, char **argv)
{
	return fw(argc, argv);
}
#else
__attribute__((used, noreturn)) void fw_main(long argc, char **argv)
{
	sys_exit(fw((int)argc, argv));
}

STRESS_ENTRY(fw_main);
#endif
