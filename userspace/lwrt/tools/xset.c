/*
 * xset: the router's settings on the "settings" MTD partition, in the XSET
 * format of docs/settings.md (the host's side is src/settings/format.ts;
 * both write the same bytes for the same settings).
 *
 *   xset get KEY            the value and a newline; exit 1, silent, when not set
 *   xset list               every key=value line
 *   xset info               slot=S seq=N, then the state of each slot
 *   xset set KEY=VALUE...   change settings (KEY= keeps KEY with an empty value)
 *   xset unset KEY...       remove settings
 *
 * Two slots, one erase block each, at partition offsets 0 and erasesize. A
 * write goes to the slot that is not current, with the next seq: program its
 * magic and seq to 0, erase it, program the payload, then len/crc, then the
 * magic and seq last, each a write(2)
 * of its own to /dev/mtdN (which returns when the chip has programmed it). A
 * power cut at any moment leaves the old slot current or the new one.
 * XSET-BEGIN and XSET-DONE lines on /dev/console mark the write for a test
 * that cuts the power.
 *
 * Freestanding (no libc, raw o32 system calls from userspace/stress/sys.h),
 * built like resident.c for either byte order: the header's fields are
 * little-endian, assembled byte by byte. Exit 0: done; 1: not set, or an
 * I/O error (the step named on stderr); 2: bad input (nothing written).
 */
#include "../../stress/sys.h"

#define NR_lseek 4019
#define NR_ioctl 4054
#define O_RDONLY 0
#define O_RDWR   2
#define SEEK_SET 0
#define EIO      5
/* _IOW('M', 2, struct erase_info_user): on MIPS _IOC_WRITE is 4 in the top three bits. */
#define MEMERASE 0x80084d02UL

#define HDR     16	/* magic, seq, len, crc */
#define KEY_MAX 32
#define VAL_MAX 255


struct erase_info_user {
	u32 start;
	u32 length;
};

enum { VALID, ERASED, NO_MAGIC, BAD_MAGIC, BAD_LEN, BAD_CRC, BAD_LINE };

static long mtd;	/* /dev/mtdN */
static u32 es;		/* erase size: one slot */
static const u8 zero8[8];	/* programmed over a slot's magic and seq before its erase */
static u8 *blk[2];	/* the slots as read */
static u32 num[2];	/* BAD_LEN: the length; BAD_LINE: the line */
static struct out *o;	/* the one output buffer (on main's stack); o->fd says where it goes */

/* sys() of sys.h is inline: one out-of-line copy of it, called from everywhere. */
static __attribute__((noinline)) long sc(long nr, long a0, long a1, long a2)
{
	return sys(nr, a0, a1, a2);
}

/* s with the prefix w, or 0. */
static __attribute__((noinline)) const char *after(const char *s, const char *w)
{
	while (*w)
		if (*s++ != *w++)
			return 0;
	return s;
}

static __attribute__((noinline)) int streq(const char *a, const char *b)
{
	a = after(a, b);
	return a && !*a;
}

static u32 get32(const u8 *p)
{
	return p[0] | (u32)p[1] << 8 | (u32)p[2] << 16 | (u32)p[3] << 24;
}

static __attribute__((noinline)) void put32(u8 *p, u32 v)
{
	int i;

	for (i = 0; i < 4; i++)
		p[i] = (u8)(v >> (8 * i));
}

/* zlib's CRC-32, bit by bit (small beats fast for a few KiB). */
static __attribute__((noinline)) u32 crc32(const u8 *p, u32 n)
{
	u32 c = 0xffffffffU;
	int k;

	while (n--) {
		c ^= *p++;
		for (k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xedb88320U & (0U - (c & 1)));
	}
	return ~c;
}

/* A key: a-z, then up to 31 of a-z 0-9 _. */
static __attribute__((noinline)) int key_ok(const u8 *k, u32 n)
{
	u32 i;

	if (n < 1 || n > KEY_MAX || k[0] < 'a' || k[0] > 'z')
		return 0;
	for (i = 1; i < n; i++)
		if (!((k[i] >= 'a' && k[i] <= 'z') || (k[i] >= '0' && k[i] <= '9') || k[i] == '_'))
			return 0;
	return 1;
}

/* A value: up to 255 printable ASCII characters. */
static __attribute__((noinline)) int val_ok(const u8 *v, u32 n)
{
	u32 i;

	if (n > VAL_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (v[i] < 0x20 || v[i] > 0x7e)
			return 0;
	return 1;
}

/* Keys compared byte by byte, each ending at '=' or NUL (the payload's and the host's order). */
static int kc(u8 c)
{
	return c == '=' ? 0 : c;
}

static __attribute__((noinline)) int kcmp(const void *x, const void *y)
{
	const u8 *a = x, *b = y;

	while (kc(*a) && kc(*a) == kc(*b))
		a++, b++;
	return kc(*a) - kc(*b);
}

/* Length of the line at p, with its newline (it has one). */
static __attribute__((noinline)) u32 line_len(const u8 *p)
{
	u32 n = 0;

	while (p[n++] != '\n')
		;
	return n;
}

/* 0 when p[0..n) is key=value lines, keys strictly ascending; else the number of the first bad line. */
static u32 bad_line(const u8 *p, u32 n)
{
	const u8 *prev = 0;
	u32 line = 0, i = 0, s, eq;

	while (i < n) {
		s = i;
		eq = 0;
		line++;
		while (i < n && p[i] != '\n') {
			if (!eq && p[i] == '=')
				eq = i;
			i++;
		}
		if (i == n || !eq || !key_ok(p + s, eq - s) || !val_ok(p + eq + 1, i - eq - 1) ||
		    (prev && kcmp(prev, p + s) >= 0))
			return line;
		prev = p + s;
		i++;
	}
	return 0;
}

static __attribute__((noinline)) int check(int s)
{
	u8 *b = blk[s];
	u32 i, len;

	if (!after((char *)b, "XST1")) {
		for (i = 0; i < es && b[i] == 0xff; i++)
			;
		if (i == es)
			return ERASED;
		return (b[0] & b[1] & b[2] & b[3]) == 0xff ? NO_MAGIC : BAD_MAGIC;
	}
	len = num[s] = get32(b + 8);
	if (len > es - HDR)
		return BAD_LEN;
	if (crc32(b + HDR, len) != get32(b + 12))
		return BAD_CRC;
	num[s] = bad_line(b + HDR, len);
	return num[s] ? BAD_LINE : VALID;
}

/* read(2)/write(2) all n bytes to/from fd; 0 or -errno. */
static __attribute__((noinline)) long xfer(long nr, long fd, const u8 *p, u32 n)
{
	long r;

	while (n) {
		r = sc(nr, fd, (long)p, (long)n);
		if (r == -EINTR)
			continue;
		if (r <= 0)
			return r ? r : -EIO;	/* nothing transferred */
		p += r;
		n -= (u32)r;
	}
	return 0;
}

/* Output: o's buffer, written out at each newline (and when full). */
static __attribute__((noinline)) void pc(char c)
{
	o->buf[o->n++] = c;
	if (c == '\n' || o->n == sizeof(o->buf)) {
		xfer(NR_write, o->fd, (u8 *)o->buf, (u32)o->n);
		o->n = 0;
	}
}

static __attribute__((noinline)) void ps(const char *s)
{
	while (*s)
		pc(*s++);
}

static __attribute__((noinline)) void pu(u32 v)
{
	char t[10];
	int i = 0;

	do
		t[i++] = (char)('0' + v % 10);
	while (v /= 10);
	while (i)
		pc(t[--i]);
}

static __attribute__((noinline, noreturn)) void fail(int code, const char *what, const char *arg, long err)
{
	o->fd = 2;
	o->n = 0;
	ps("xset: ");
	ps(what);
	if (arg)
		ps(arg);
	if (err) {
		ps(" (errno ");
		pu((u32)err);
		pc(')');
	}
	pc('\n');
	sys_exit(code);
}

/* Read or program n bytes at partition offset off; a failure is an I/O error naming the step. */
static __attribute__((noinline)) void at(long nr, u32 off, const u8 *p, u32 n, const char *step)
{
	long r = sc(NR_lseek, mtd, (long)off, SEEK_SET);

	if (r >= 0)
		r = xfer(nr, mtd, p, n);
	if (r < 0)
		fail(1, step, 0, -r);
}

/* Skip blanks, then a hex number. */
static __attribute__((noinline)) u32 hex(const char **pp)
{
	const char *p = *pp;
	u32 v = 0, d;

	while (*p == ' ')
		p++;
	for (;; p++) {
		d = (u32)(*p - '0') < 10 ? (u32)(*p - '0') : (u32)(*p - 'a') < 6 ? (u32)(*p - 'a' + 10) : 16;
		if (d > 15)
			break;
		v = v << 4 | d;
	}
	*pp = p;
	return v;
}

/* The line of the "settings" partition in /proc/mtd ("mtd2: 00020000 00010000 \"settings\""): /dev/mtdN into dev, its erase size into es. */
static void find_partition(char *dev)
{
	char t[4096];
	const char *p, *q;
	long fd = sc(NR_open, (long)"/proc/mtd", O_RDONLY, 0), n = 0, r;
	u32 size, i;

	if (fd < 0)
		fail(1, "open /proc/mtd", 0, -fd);
	while (n < (long)sizeof(t) - 1 && (r = sc(NR_read, fd, (long)(t + n), (long)sizeof(t) - 1 - n)) > 0)
		n += r;
	sc(NR_close, fd, 0, 0);
	t[n] = 0;
	for (p = t; *p && !after(p, " \"settings\"\n"); p++)
		;
	if (!*p)
		fail(1, "no \"settings\" partition in /proc/mtd", 0, 0);
	while (p > t && p[-1] != '\n')
		p--;
	q = after(p, "mtd");
	if (!q)
		fail(1, "/proc/mtd: bad line", 0, 0);
	for (i = 0; i < 8 && (u32)(q[i] - '0') < 10; i++)
		;
	if (!i || q[i] != ':')
		fail(1, "/proc/mtd: bad line", 0, 0);
	for (n = 0; n < 5; n++)
		dev[n] = "/dev/"[n];
	while (p[0] != ':')
		dev[n++] = *p++;
	dev[n] = 0;
	p++;
	size = hex(&p);
	es = hex(&p);
	if (es <= HDR || size < 2 * es)
		fail(1, "settings partition: less than two erase blocks", 0, 0);
}

static void console(const char *what, u32 seq, int slot)
{
	long fd = sc(NR_open, (long)"/dev/console", O_WRONLY | O_NOCTTY, 0);

	if (fd < 0)
		return;
	o->fd = (int)fd;
	ps(what);
	pu(seq);
	if (slot >= 0) {
		ps(" slot=");
		pu((u32)slot);
	}
	pc('\n');
	sc(NR_close, fd, 0, 0);
}

static void usage(void)
{
	fail(2, "usage: xset get KEY | list | info | set KEY=VALUE... | unset KEY...", 0, 0);
}

__attribute__((used, noreturn)) void xset_main(long argc, char **argv)
{
	static const char *const why[] = { "valid", "erased", "no magic", "bad magic", "length ", "crc mismatch", "bad line " };
	const char *cmd = argc > 1 ? argv[1] : "";
	char **a = argv + 2, *x, dev[24];
	long na = argc - 2, i, j, r;
	int k, st[2], cur, t;
	u32 seq[2], cseq, clen = 0, len, off, n, d;
	const u8 *c, *ce;
	u8 *nb;
	struct erase_info_user e;
	struct out ob;

	o = &ob;
	ob.n = 0;
	k = streq(cmd, "get") ? 'g' : streq(cmd, "set") ? 's' : streq(cmd, "unset") ? 'u' : streq(cmd, "list") ? 'l' : streq(cmd, "info") ? 'i' : 0;
	if (k == 'g' ? na != 1 : k == 's' || k == 'u' ? na < 1 : !k || na)
		usage();
	/* Check every argument, then sort them by key: nothing is written for a bad one. */
	for (i = 0; i < na; i++) {
		x = a[i];
		for (n = 0; x[n] && x[n] != '='; n++)
			;
		if (!key_ok((u8 *)x, n) || (k == 's' ? !x[n] || !val_ok((u8 *)x + n + 1, (u32)slen(x + n + 1)) : x[n] != 0))
			fail(2, "bad argument (KEY: a-z, then up to 31 of a-z 0-9 _; VALUE: up to 255 of ASCII 0x20-0x7e): ", x, 0);
		for (j = i; j > 0 && kcmp(a[j - 1], x) > 0; j--)
			a[j] = a[j - 1];
		a[j] = x;
		if (j > 0 && !kcmp(a[j - 1], x))
			fail(2, "key given twice: ", x, 0);
	}

	find_partition(dev);
	mtd = sc(NR_open, (long)dev, k == 's' || k == 'u' ? O_RDWR : O_RDONLY, 0);
	if (mtd < 0)
		fail(1, "open ", dev, -mtd);
	blk[0] = map_anon(2 * es, PROT_READ | PROT_WRITE);
	if (!blk[0])
		fail(1, "out of memory", 0, 0);
	blk[1] = blk[0] + es;
	cur = -1;
	for (t = 0; t < 2; t++) {
		at(NR_read, (u32)t * es, blk[t], es, "read slot");
		st[t] = check(t);
		seq[t] = get32(blk[t] + 4);
		d = seq[t] - seq[0];	/* slot 1 is newer: (seq1 - seq0) mod 2^32 in [1, 2^31) */
		if (st[t] == VALID && (cur < 0 || (d != 0 && d < 0x80000000U)))
			cur = t;
	}
	cseq = 0;
	c = blk[0];
	if (cur >= 0) {
		cseq = seq[cur];
		c = blk[cur] + HDR;
		clen = get32(blk[cur] + 8);
	}
	ce = c + clen;

	ob.fd = 1;
	if (k == 'g') {
		for (; c < ce; c += line_len(c)) {
			if (!kcmp(c, a[0])) {
				while (*c++ != '=')
					;
				do
					pc((char)*c);
				while (*c++ != '\n');
				sys_exit(0);
			}
		}
		sys_exit(1);
	}
	if (k == 'l')
		sys_exit(xfer(NR_write, 1, c, clen) < 0);
	if (k == 'i') {
		ps("slot=");
		pc(cur < 0 ? '-' : (char)('0' + cur));
		ps(" seq=");
		pu(cseq);
		for (t = 0; t < 2; t++) {
			ps("\nslot");
			pc((char)('0' + t));
			pc(' ');
			ps(why[st[t]]);
			if (st[t] == VALID) {
				ps(" seq=");
				pu(seq[t]);
				ps(" len=");
				pu(get32(blk[t] + 8));
			} else if (st[t] == BAD_LEN || st[t] == BAD_LINE) {
				pu(num[t]);
				if (st[t] == BAD_LEN) {
					ps(" > ");
					pu(es - HDR);
				}
			}
		}
		pc('\n');
		sys_exit(0);
	}

	/* set / unset: merge the sorted arguments into the current lines, in the other slot's buffer. */
	t = cur == 0;
	nb = blk[t];
	len = 0;
	for (i = 0; c < ce || i < na;) {
		r = c >= ce ? 1 : i >= na ? -1 : kcmp(c, a[i]);
		if (r < 0) {
			x = (char *)c;
			n = line_len(c);
			c += n;
		} else {
			if (!r)
				c += line_len(c);
			x = a[i++];
			if (k != 's')
				continue;
			n = (u32)slen(x);
		}
		if (n + 1 > es - HDR - len)
			fail(2, "the settings do not fit in a slot", 0, 0);
		memcpy(nb + HDR + len, x, n);
		len += n;
		if (r >= 0)
			nb[HDR + len++] = '\n';
	}
	cseq++;
	memcpy(nb, "XST1", 4);
	put32(nb + 4, cseq);
	put32(nb + 8, len);
	put32(nb + 12, crc32(nb + HDR, len));

	off = (u32)t * es;
	console("XSET-BEGIN seq=", cseq, t);
	/*
	 * Every program is two words or more (a one-word buffer write is lost
	 * by QEMU 9 and later; docs/settings.md). Magic and seq to 0 first: a
	 * torn erase cannot make the older slot look valid.
	 */
	at(NR_write, off, zero8, 8, "invalidate slot");
	e.start = off;
	e.length = es;
	r = sc(NR_ioctl, mtd, (long)MEMERASE, (long)&e);
	if (r < 0)
		fail(1, "erase slot", 0, -r);
	if (len) {
		for (i = HDR + len; i < HDR + 8 && i < (long)es; i++)
			nb[i] = 0xff;	/* erased already: programs nothing */
		at(NR_write, off + HDR, nb + HDR, len < 8 ? 8 : len, "program payload");
	}
	at(NR_write, off + 8, nb + 8, 8, "program header");
	at(NR_write, off, nb, 8, "program magic");
	console("XSET-DONE seq=", cseq, -1);

	/* Read the slot back: what was programmed, then 0xff. */
	x = (char *)blk[!t];
	at(NR_read, off, (u8 *)x, es, "verify read");
	for (n = 0; n < es; n++)
		if ((u8)x[n] != (n < HDR + len ? nb[n] : 0xff))
			fail(1, "verify: the slot reads back different", 0, 0);
	sys_exit(0);
}

STRESS_ENTRY(xset_main);
