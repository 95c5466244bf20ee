/*
 * Tiny freestanding runtime for the stress programs (MIPS32 o32, Linux):
 * raw system calls, memset/memcpy, an FNV-1a checksum and decimal/hex
 * output. No libc. Shared by stress.c (PID 1) and child.c (the program
 * stress.c execs).
 *
 * o32 system calls: number in v0 (4000 + n), arguments in a0..a3 and, for
 * the fifth and sixth, at 16($sp) and 20($sp) of the caller's frame, which
 * is where a C call with seven arguments puts its fifth and sixth. The
 * kernel sets a3 on error and returns the errno in v0.
 */
#ifndef STRESS_SYS_H
#define STRESS_SYS_H

typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;
typedef unsigned long size_t;

#define NR_exit          4001
#define NR_fork          4002
#define NR_read          4003
#define NR_write         4004
#define NR_open          4005
#define NR_close         4006
#define NR_execve        4011
#define NR_mknod         4014
#define NR_getpid        4020
#define NR_pause         4029
#define NR_sync          4036
#define NR_kill          4037
#define NR_mkdir         4039
#define NR_dup2          4063
#define NR_getppid       4064
#define NR_reboot        4088
#define NR_munmap        4091
#define NR_wait4         4114
#define NR_mprotect      4125
#define NR_sched_yield   4162
#define NR_rt_sigaction  4194
#define NR_rt_sigprocmask 4195
#define NR_rt_sigsuspend 4199
#define NR_mmap2         4210
#define NR_exit_group    4246
#define NR_pipe2         4328

#define O_WRONLY   01
#define O_NOCTTY   0x800
#define S_IFCHR    0020000

#define PROT_NONE  0
#define PROT_READ  1
#define PROT_WRITE 2
#define MAP_PRIVATE   0x002
#define MAP_ANONYMOUS 0x800
#define MAP_FAILED_MAX 4096UL  /* results above -4096 are errors */

#define SIGKILL  9
#define SIGSEGV  11
#define SIGTERM  15
#define SIGUSR1  16
#define SIGUSR2  17
#define SA_SIGINFO 0x00000008
#define SIG_BLOCK   1
#define SIG_UNBLOCK 2
#define SIG_SETMASK 3

#define EINTR  4
#define ENOMEM 12

#define PAGE 4096UL

/* sys6(a0..a5, nr): the kernel reads a4/a5 from 16/20($sp), the stack slots of a 7-argument call. */
long sys6(long a0, long a1, long a2, long a3, long a4, long a5, long nr);
__asm__(
	".text\n"
	".globl sys6\n"
	".type sys6, @function\n"
	".set push\n"
	".set noreorder\n"
	"sys6:\n"
	"	lw	$2, 24($sp)\n"
	"	syscall\n"
	"	bnez	$7, 1f\n"
	"	nop\n"
	"	jr	$31\n"
	"	nop\n"
	"1:	jr	$31\n"
	"	subu	$2, $0, $2\n"
	".set pop\n"
	".size sys6, .-sys6\n");

static inline long sys(long nr, long a0, long a1, long a2)
{
	return sys6(a0, a1, a2, 0, 0, 0, nr);
}

static inline long sys4(long nr, long a0, long a1, long a2, long a3)
{
	return sys6(a0, a1, a2, a3, 0, 0, nr);
}

static inline __attribute__((noreturn)) void sys_exit(int code)
{
	for (;;)
		sys(NR_exit_group, code, 0, 0);
}

/* Loops kept opaque to the optimiser so that they never become calls to themselves. */
void *memset(void *d, int c, size_t n)
{
	unsigned char *p = d;

	while (n--) {
		*p++ = (unsigned char)c;
		__asm__ volatile("" ::: "memory");
	}
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	unsigned char *p = d;
	const unsigned char *q = s;

	while (n--) {
		*p++ = *q++;
		__asm__ volatile("" ::: "memory");
	}
	return d;
}

static inline size_t slen(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}

/* FNV-1a, 32 bit: a checksum of data only (never of addresses, pids or times). */
#define FNV_INIT 0x811c9dc5U

static inline u32 fnv_byte(u32 h, unsigned char b)
{
	return (h ^ b) * 0x01000193U;
}

static inline u32 fnv(u32 h, const void *p, size_t n)
{
	const unsigned char *b = p;

	while (n--)
		h = fnv_byte(h, *b++);
	return h;
}

static inline u32 fnv_u32(u32 h, u32 v)
{
	h = fnv_byte(h, (unsigned char)v);
	h = fnv_byte(h, (unsigned char)(v >> 8));
	h = fnv_byte(h, (unsigned char)(v >> 16));
	return fnv_byte(h, (unsigned char)(v >> 24));
}

/* A deterministic pseudo-random word sequence (xorshift32). */
static inline u32 xs32(u32 x)
{
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return x;
}

/* Output: a small line buffer flushed with one write(2) per line. */
struct out {
	int fd;
	size_t n;
	char buf[200];
};

static inline void out_flush(struct out *o)
{
	size_t off = 0;

	while (off < o->n) {
		long r = sys(NR_write, o->fd, (long)(o->buf + off), (long)(o->n - off));

		if (r == -EINTR)
			continue;
		if (r <= 0)
			break;
		off += (size_t)r;
	}
	o->n = 0;
}

static inline void out_c(struct out *o, char c)
{
	if (o->n == sizeof(o->buf))
		out_flush(o);
	o->buf[o->n++] = c;
	if (c == '\n')
		out_flush(o);
}

static inline void out_s(struct out *o, const char *s)
{
	while (*s)
		out_c(o, *s++);
}

static inline void out_u(struct out *o, u32 v)
{
	char tmp[11];
	int i = 0;

	do {
		tmp[i++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (i)
		out_c(o, tmp[--i]);
}

static inline void out_x(struct out *o, u32 v)
{
	int i;

	out_s(o, "0x");
	for (i = 28; i >= 0; i -= 4)
		out_c(o, "0123456789abcdef"[(v >> i) & 15]);
}

/* Anonymous private memory; 0 on failure. */
static inline void *map_anon(size_t len, int prot)
{
	long r = sys6(0, (long)len, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, NR_mmap2);

	if ((unsigned long)r >= (unsigned long)-MAP_FAILED_MAX)
		return 0;
	return (void *)r;
}

static inline long unmap(void *p, size_t len)
{
	return sys(NR_munmap, (long)p, (long)len, 0);
}


/*
 * The work of the exec'd child (child.c), also computed by the parent to
 * check it: a checksum of the arguments and environment strings, then of
 * `pages` pages filled from `seed`.
 */
static inline u32 child_strings_sum(u32 h, char **v)
{
	for (; *v; v++)
		h = fnv(h, *v, slen(*v) + 1);
	return h;
}

static inline u32 pattern_sum(u32 h, u32 seed, u32 *buf, u32 pages)
{
	u32 i, x = seed | 1;

	for (i = 0; i < pages * (PAGE / 4); i++) {
		x = xs32(x);
		buf[i] = x;
	}
	for (i = 0; i < pages * (PAGE / 4); i++)
		h = fnv_u32(h, buf[i]);
	return h;
}

static inline u32 parse_u32(const char *s)
{
	u32 v = 0;

	while (*s >= '0' && *s <= '9')
		v = v * 10 + (u32)(*s++ - '0');
	return v;
}

/* Decimal text of v into buf (at least 11 bytes). */
static inline char *fmt_u32(char *buf, u32 v)
{
	char tmp[11];
	int i = 0, j = 0;

	do {
		tmp[i++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (i)
		buf[j++] = tmp[--i];
	buf[j] = 0;
	return buf;
}

/* Process entry: argc at 0($sp), argv at 4($sp); align the stack, leave the o32 save area. */
#define STRESS_ENTRY(fn) \
	__asm__( \
	".section .text.__start, \"ax\", @progbits\n" \
	".globl __start\n" \
	".type __start, @function\n" \
	".set push\n" \
	".set noreorder\n" \
	"__start:\n" \
	"	lw	$4, 0($sp)\n" \
	"	addiu	$5, $sp, 4\n" \
	"	li	$8, -8\n" \
	"	and	$sp, $sp, $8\n" \
	"	jal	" #fn "\n" \
	"	addiu	$sp, $sp, -16\n" \
	".set pop\n" \
	".size __start, .-__start\n" \
	".previous\n")

#endif
