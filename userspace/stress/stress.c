/*
 * Stress test PID 1 for the XIP kernel (MIPS32 o32, freestanding, no libc).
 *
 * The riskiest parts of the XIP port are the TLB handlers and the page
 * routines (clear_page, copy_page) that the kernel generates at boot into
 * RAM and that jump to and from flash. This program makes them work hard
 * and checks every result:
 *
 *   TLB       thousands of pages across several mappings: read (zero page),
 *             write (TLB modify), read back in another order (refill),
 *             read-only and writable again
 *   FORK-COW  children verify the memory they inherit, then write it (copy
 *             on write in the child); the parent writes while a child still
 *             shares it (copy on write in the parent); each side verifies
 *   ZERO      fresh anonymous pages read as zero, and stay zero around a write
 *   EXEC      fork + execve of /bin/stress-child with arguments and environment
 *   MMAP      mmap / mprotect / partial munmap cycles; faults on an unmapped
 *             or PROT_NONE page are caught (SIGSEGV) and repaired
 *   SIGNAL    signals to itself, between processes (with sigsuspend), a
 *             child ended by SIGTERM
 *   TREE      a process tree four levels deep reporting through one pipe
 *   PIPE      a three-process pipeline with a transforming filter
 *   PRESSURE  a child takes memory until the kernel refuses or kills it;
 *             PID 1 goes on and checks fresh memory afterwards
 *
 * One line per part: "STRESS-<PART>: <counts> checksum 0x........ ok|FAIL".
 * The checksums depend only on the program's own data (never on addresses,
 * pids, timing or RAM size), so the XIP and stock kernels at any RAM size
 * print the same ones. The PRESSURE counts depend on RAM: they are printed
 * but its checksum covers only the check after it. Then STRESS-TOTAL,
 * STRESS-PASS or STRESS-FAIL, and power off.
 */
#include "sys.h"

#define LINUX_REBOOT_MAGIC1         0xfee1deadU
#define LINUX_REBOOT_MAGIC2         672274793U
#define LINUX_REBOOT_CMD_POWER_OFF  0x4321fedcU

static struct out con = { .fd = 1, .n = 0 };
static u32 total = FNV_INIT;
static u32 parts, failed;

/* --- result lines --------------------------------------------------------- */

static const char *why;

static void res_begin(const char *name)
{
	why = 0;
	out_s(&con, "STRESS-");
	out_s(&con, name);
	out_s(&con, ":");
}

static void kv(const char *k, u32 v)
{
	out_c(&con, ' ');
	out_s(&con, k);
	out_c(&con, '=');
	out_u(&con, v);
}

static void fail(const char *reason)
{
	if (!why)
		why = reason;
}

static void res_end(u32 sum)
{
	out_s(&con, " checksum ");
	out_x(&con, sum);
	parts++;
	total = fnv_u32(total, sum);
	if (why) {
		failed++;
		out_s(&con, " FAIL ");
		out_s(&con, why);
		out_c(&con, '\n');
	} else {
		out_s(&con, " ok\n");
	}
}

/* --- processes ------------------------------------------------------------ */

static long do_fork(void)
{
	return sys(NR_fork, 0, 0, 0);
}

/* Wait for pid; returns the raw wait status, or -1. */
static int wait_pid(long pid)
{
	int status = 0;
	long r;

	do
		r = sys4(NR_wait4, pid, (long)&status, 0, 0);
	while (r == -EINTR);
	return r == pid ? status : -1;
}

static int exited_with(int status, int code)
{
	return status >= 0 && (status & 0x7f) == 0 && ((status >> 8) & 0xff) == code;
}

static int killed_by(int status, int sig)
{
	return status >= 0 && (status & 0x7f) == sig;
}

static int make_pipe(int fds[2])
{
	return sys(NR_pipe2, (long)fds, 0, 0) == 0 ? 0 : -1;
}

static void close_fd(int fd)
{
	sys(NR_close, fd, 0, 0);
}

/* Read exactly n bytes (fewer only at end of file); returns the count. */
static size_t read_full(int fd, void *p, size_t n)
{
	size_t got = 0;

	while (got < n) {
		long r = sys(NR_read, fd, (long)((char *)p + got), (long)(n - got));

		if (r == -EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	return got;
}

static int write_full(int fd, const void *p, size_t n)
{
	size_t off = 0;

	while (off < n) {
		long r = sys(NR_write, fd, (long)((const char *)p + off), (long)(n - off));

		if (r == -EINTR)
			continue;
		if (r <= 0)
			return -1;
		off += (size_t)r;
	}
	return 0;
}

/* --- signals -------------------------------------------------------------- */

struct ksigaction {
	unsigned int flags;
	void *handler;
	u32 mask[4];
};

static int on_signal(int sig, void *handler, unsigned int flags)
{
	struct ksigaction a;

	memset(&a, 0, sizeof(a));
	a.flags = flags;
	a.handler = handler;
	return (int)sys4(NR_rt_sigaction, sig, (long)&a, 0, 16);
}

static void sigmask(int how, int sig)
{
	u32 set[4] = { 0, 0, 0, 0 };

	set[(sig - 1) / 32] = 1U << ((sig - 1) % 32);
	sys4(NR_rt_sigprocmask, how, (long)set, 0, 16);
}

static volatile u32 segv_count, usr1_count, usr2_count, usr1_sum;

/*
 * SIGSEGV: repair the faulting page (make it readable and writable again, or
 * map a fresh zero page where nothing was mapped) and let the access retry.
 * On MIPS o32 si_addr sits at offset 12 of siginfo (signo, code, errno first).
 */
static void on_segv(int sig, void *info, void *uc)
{
	unsigned long a = *(unsigned long *)((char *)info + 12) & ~(PAGE - 1);

	(void)sig;
	(void)uc;
	segv_count++;
	if (sys(NR_mprotect, (long)a, PAGE, PROT_READ | PROT_WRITE) != 0)
		sys6((long)a, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | 0x10 /* MAP_FIXED */, -1, 0,
		     NR_mmap2);
}

static void on_usr1(int sig)
{
	usr1_count++;
	usr1_sum = fnv_u32(usr1_sum, (u32)sig + usr1_count);
}

static void on_usr2(int sig)
{
	(void)sig;
	usr2_count++;
}

/* --- TLB ------------------------------------------------------------------- */

#define TLB_MAPS   3
#define TLB_PAGES  64
#define TLB_ROUNDS 12
#define TLB_WORDS  8

static u32 tlb_val(u32 round, u32 m, u32 p, u32 k, u32 gen)
{
	return xs32(0x9e3779b9U ^ (round << 24) ^ (m << 20) ^ (p << 8) ^ (k << 4) ^ gen);
}

static u32 *tlb_word(u32 *map, u32 p, u32 k)
{
	return map + p * (PAGE / 4) + k * 128 + (p & 127);
}

static void part_tlb(void)
{
	u32 h = FNV_INIT, round, m, p, k, pages = 0, accesses = 0, bad = 0;
	u32 *map[TLB_MAPS];

	res_begin("TLB");
	for (round = 0; round < TLB_ROUNDS; round++) {
		for (m = 0; m < TLB_MAPS; m++) {
			map[m] = map_anon(TLB_PAGES * PAGE, PROT_READ | PROT_WRITE);
			if (!map[m]) {
				fail("mmap");
				goto out;
			}
		}
		/* Read first: every page maps the shared zero page, read-only. */
		for (p = 0; p < TLB_PAGES; p++)
			for (m = 0; m < TLB_MAPS; m++) {
				bad += *tlb_word(map[m], p, p & 7) != 0;
				accesses++;
			}
		/* Then write, interleaving the mappings: TLB modify on each page. */
		for (p = 0; p < TLB_PAGES; p++)
			for (m = 0; m < TLB_MAPS; m++) {
				for (k = 0; k < TLB_WORDS; k++)
					*tlb_word(map[m], p, k) = tlb_val(round, m, p, k, 0);
				pages++;
				accesses += TLB_WORDS;
			}
		/* Read back mapping by mapping, last page first: far more pages than TLB entries. */
		for (m = 0; m < TLB_MAPS; m++)
			for (p = TLB_PAGES; p-- > 0;)
				for (k = 0; k < TLB_WORDS; k++) {
					u32 v = *tlb_word(map[m], p, k);

					bad += v != tlb_val(round, m, p, k, 0);
					h = fnv_u32(h, v);
					accesses++;
				}
		/* Read-only, read it all, writable again, write a new generation, check. */
		m = round % TLB_MAPS;
		if (sys(NR_mprotect, (long)map[m], TLB_PAGES * PAGE, PROT_READ) != 0)
			fail("mprotect");
		for (p = 0; p < TLB_PAGES; p++) {
			bad += *tlb_word(map[m], p, 1) != tlb_val(round, m, p, 1, 0);
			accesses++;
		}
		if (sys(NR_mprotect, (long)map[m], TLB_PAGES * PAGE, PROT_READ | PROT_WRITE) != 0)
			fail("mprotect");
		for (p = 0; p < TLB_PAGES; p += 3) {
			*tlb_word(map[m], p, 2) = tlb_val(round, m, p, 2, 1);
			accesses++;
		}
		for (p = 0; p < TLB_PAGES; p++) {
			u32 v = *tlb_word(map[m], p, 2);

			bad += v != tlb_val(round, m, p, 2, p % 3 == 0);
			h = fnv_u32(h, v);
			accesses++;
		}
		for (m = 0; m < TLB_MAPS; m++)
			if (unmap(map[m], TLB_PAGES * PAGE) != 0)
				fail("munmap");
	}
out:
	if (bad)
		fail("data mismatch");
	kv("mappings", TLB_MAPS * TLB_ROUNDS);
	kv("pages", pages);
	kv("accesses", accesses);
	kv("bad", bad);
	res_end(h);
}

/* --- fork and copy on write ------------------------------------------------ */

#define COW_PAGES    48
#define COW_CHILDREN 3
#define COW_WORDS    (COW_PAGES * PAGE / 4)

static void cow_fill(u32 *buf, u32 seed)
{
	u32 i, x = seed;

	for (i = 0; i < COW_WORDS; i++) {
		x = xs32(x);
		buf[i] = x;
	}
}

/* Expected word i of the buffer after writer w (0 = nobody) changed it. */
static u32 cow_expect(u32 i, u32 orig, u32 w)
{
	if (w && (i % 1024) == ((w * 97) % 1024))
		return orig ^ (0xc0de0000U | w);
	return orig;
}

/* Write as writer w: one word in every page. */
static void cow_write(u32 *buf, u32 w)
{
	u32 p;

	for (p = 0; p < COW_PAGES; p++)
		buf[p * 1024 + (w * 97) % 1024] ^= 0xc0de0000U | w;
}

/* Check buf holds the seed stream as changed by writer w; returns the checksum, *bad counts mismatches. */
static u32 cow_check(const u32 *buf, u32 seed, u32 w, u32 *bad)
{
	u32 i, x = seed, h = FNV_INIT;

	for (i = 0; i < COW_WORDS; i++) {
		x = xs32(x);
		*bad += buf[i] != cow_expect(i, x, w);
		h = fnv_u32(h, buf[i]);
	}
	return h;
}

struct report {
	u32 sum;
	u32 bad;
};

static void part_fork_cow(void)
{
	const u32 seed = 0x1234567U;
	u32 h = FNV_INIT, bad = 0, c, forks = 0;
	u32 *buf = map_anon(COW_PAGES * PAGE, PROT_READ | PROT_WRITE);
	int rp[2], go[2];
	long pid;

	res_begin("FORK-COW");
	if (!buf || make_pipe(rp) != 0) {
		fail("mmap/pipe");
		goto out;
	}
	cow_fill(buf, seed);
	/* Children that inherit, check, write (copy in the child) and check again. */
	for (c = 1; c <= COW_CHILDREN; c++) {
		struct report r = { 0, 0 };

		pid = do_fork();
		if (pid == 0) {
			u32 b = 0;

			cow_check(buf, seed, 0, &b);
			cow_write(buf, c);
			r.sum = cow_check(buf, seed, c, &b);
			r.bad = b;
			write_full(rp[1], &r, sizeof(r));
			sys_exit(b ? 1 : 0);
		}
		if (pid < 0) {
			fail("fork");
			break;
		}
		forks++;
		if (read_full(rp[0], &r, sizeof(r)) != sizeof(r))
			fail("child report");
		if (!exited_with(wait_pid(pid), 0))
			fail("child status");
		bad += r.bad;
		h = fnv_u32(h, r.sum);
		/* The parent's copy is untouched by the child's writes. */
		h = fnv_u32(h, cow_check(buf, seed, 0, &bad));
	}
	/* A child keeps sharing while the parent writes: copy in the parent. */
	if (make_pipe(go) != 0) {
		fail("pipe");
		goto out;
	}
	pid = do_fork();
	if (pid == 0) {
		struct report r = { 0, 0 };
		char g;

		close_fd(go[1]);
		read_full(go[0], &g, 1);
		r.sum = cow_check(buf, seed, 0, &r.bad);
		write_full(rp[1], &r, sizeof(r));
		sys_exit(r.bad ? 1 : 0);
	}
	if (pid < 0) {
		fail("fork");
	} else {
		struct report r = { 0, 0 };
		char g = 'g';

		forks++;
		close_fd(go[0]);
		cow_write(buf, 7);
		h = fnv_u32(h, cow_check(buf, seed, 7, &bad));
		write_full(go[1], &g, 1);
		close_fd(go[1]);
		if (read_full(rp[0], &r, sizeof(r)) != sizeof(r))
			fail("child report");
		if (!exited_with(wait_pid(pid), 0))
			fail("child status");
		bad += r.bad;
		h = fnv_u32(h, r.sum);
	}
	close_fd(rp[0]);
	close_fd(rp[1]);
	unmap(buf, COW_PAGES * PAGE);
out:
	if (bad)
		fail("data mismatch");
	kv("forks", forks);
	kv("pages", COW_PAGES);
	kv("bad", bad);
	res_end(h);
}

/* --- zero pages ------------------------------------------------------------ */

static void part_zero(void)
{
	u32 h = FNV_INIT, round, p, i, pages = 0, bad = 0;

	res_begin("ZERO");
	for (round = 0; round < 4; round++) {
		u32 n = 32 + round * 32;
		u32 *m = map_anon(n * PAGE, PROT_READ | PROT_WRITE);

		if (!m) {
			fail("mmap");
			break;
		}
		/* Every word of every page reads zero (the shared zero page). */
		for (i = 0; i < n * 1024; i++)
			bad += m[i] != 0;
		/* One write per page: a fresh page cleared by clear_page; the rest must stay zero. */
		for (p = 0; p < n; p++)
			m[p * 1024 + (p * 31 + round) % 1024] = p + 1 + round * 1000;
		for (p = 0; p < n; p++) {
			u32 s = 0;

			for (i = 0; i < 1024; i++) {
				u32 v = m[p * 1024 + i];

				if (i == (p * 31 + round) % 1024)
					bad += v != p + 1 + round * 1000;
				else
					bad += v != 0;
				s += v;
			}
			h = fnv_u32(h, s);
			pages++;
		}
		unmap(m, n * PAGE);
	}
	if (bad)
		fail("nonzero data");
	kv("pages", pages);
	kv("bad", bad);
	res_end(h);
}

/* --- exec ------------------------------------------------------------------ */

#define EXEC_ROUNDS 4

static void part_exec(void)
{
	u32 h = FNV_INIT, n, ok = 0;
	u32 *scratch = map_anon(8 * PAGE, PROT_READ | PROT_WRITE);

	res_begin("EXEC");
	if (!scratch) {
		fail("mmap");
		goto out;
	}
	for (n = 0; n < EXEC_ROUNDS; n++) {
		char seed[12], pages[12], env0[24] = "STRESS_ROUND=";
		char *argv[] = { "stress-child", seed, pages, 0 };
		char *envp[] = { env0, "STRESS=1", 0 };
		char line[32];
		u32 want, got = 0;
		size_t len, i;
		int fds[2];
		long pid;

		fmt_u32(seed, 1000003U * (n + 1));
		fmt_u32(pages, 1 + n * 2);
		fmt_u32(env0 + 13, n);
		if (make_pipe(fds) != 0) {
			fail("pipe");
			break;
		}
		pid = do_fork();
		if (pid == 0) {
			close_fd(fds[0]);
			sys(NR_dup2, fds[1], 1, 0);
			close_fd(fds[1]);
			sys(NR_execve, (long)"/bin/stress-child", (long)argv, (long)envp);
			sys_exit(127);
		}
		close_fd(fds[1]);
		if (pid < 0) {
			close_fd(fds[0]);
			fail("fork");
			break;
		}
		len = read_full(fds[0], line, sizeof(line) - 1);
		close_fd(fds[0]);
		line[len] = 0;
		if (!exited_with(wait_pid(pid), 42))
			fail("child exit status (exec failed?)");
		/* "CHILD 0x........\n" */
		if (len == 17 && line[0] == 'C' && line[6] == '0' && line[7] == 'x') {
			for (i = 8; i < 16; i++) {
				char c = line[i];

				got = got * 16 + (u32)(c >= 'a' ? c - 'a' + 10 : c - '0');
			}
		} else {
			fail("child output");
		}
		want = child_strings_sum(FNV_INIT, argv);
		want = child_strings_sum(want, envp);
		want = pattern_sum(want, parse_u32(seed), scratch, parse_u32(pages)); /* at most 7 pages */
		if (got != want)
			fail("child checksum");
		else
			ok++;
		h = fnv_u32(h, got);
	}
	unmap(scratch, 8 * PAGE);
out:
	kv("execs", EXEC_ROUNDS);
	kv("ok", ok);
	res_end(h);
}

/* --- mmap / munmap cycles --------------------------------------------------- */

#define MMAP_CYCLES 64

static void part_mmap(void)
{
	u32 h = FNV_INIT, c, p, x = 0xdeadbeefU, bad = 0, pages = 0, faults0;

	res_begin("MMAP");
	if (on_signal(SIGSEGV, (void *)on_segv, SA_SIGINFO) != 0)
		fail("sigaction");
	faults0 = segv_count;
	for (c = 0; c < MMAP_CYCLES; c++) {
		u32 n, *m;
		volatile u32 *hole;

		x = xs32(x);
		n = 3 + x % 30;
		m = map_anon(n * PAGE, PROT_READ | PROT_WRITE);
		if (!m) {
			fail("mmap");
			break;
		}
		for (p = 0; p < n; p++)
			m[p * 1024 + (c + p) % 1024] = x ^ p;
		/* Make the first half read-only and read it back. */
		sys(NR_mprotect, (long)m, (n / 2) * PAGE, PROT_READ);
		for (p = 0; p < n; p++) {
			u32 v = m[p * 1024 + (c + p) % 1024];

			bad += v != (x ^ p);
			h = fnv_u32(h, v);
		}
		pages += n;
		/* Punch a hole in the middle; touching it faults (SIGSEGV), the handler maps a zero page. */
		if (unmap(m + (n / 2) * 1024, PAGE) != 0)
			fail("partial munmap");
		hole = m + (n / 2) * 1024 + 5;
		bad += *hole != 0;
		/* Every few cycles: a PROT_NONE page, repaired by the handler. */
		if (c % 8 == 0) {
			sys(NR_mprotect, (long)m, PAGE, PROT_NONE);
			bad += m[c] != x; /* page 0 holds x at word c */
		}
		if (unmap(m, n * PAGE) != 0)
			fail("munmap");
	}
	kv("cycles", MMAP_CYCLES);
	kv("pages", pages);
	kv("faults", segv_count - faults0);
	kv("bad", bad);
	if (segv_count - faults0 != MMAP_CYCLES + MMAP_CYCLES / 8)
		fail("fault count");
	if (bad)
		fail("data mismatch");
	h = fnv_u32(h, segv_count - faults0);
	res_end(h);
}

/* --- signals ---------------------------------------------------------------- */

#define SIG_SELF  100
#define SIG_CROSS 50

static void part_signal(void)
{
	u32 h = FNV_INIT, i;
	u32 terminated = 0;
	int ack[2];
	long me = sys(NR_getpid, 0, 0, 0), pid;
	int st;

	res_begin("SIGNAL");
	usr1_count = usr2_count = 0;
	usr1_sum = FNV_INIT;
	if (on_signal(SIGUSR1, (void *)on_usr1, 0) != 0 || on_signal(SIGUSR2, (void *)on_usr2, 0) != 0)
		fail("sigaction");
	/* To itself: delivered before kill() returns. */
	for (i = 0; i < SIG_SELF; i++)
		sys(NR_kill, me, SIGUSR1, 0);
	if (usr1_count != SIG_SELF)
		fail("self signals lost");
	h = fnv_u32(h, usr1_sum);

	/* From a child, one at a time: sigsuspend waits, a pipe acknowledges. */
	sigmask(SIG_BLOCK, SIGUSR2);
	if (make_pipe(ack) != 0) {
		fail("pipe");
		goto out;
	}
	pid = do_fork();
	if (pid == 0) {
		char a;

		for (i = 0; i < SIG_CROSS; i++) {
			sys(NR_kill, sys(NR_getppid, 0, 0, 0), SIGUSR2, 0);
			if (read_full(ack[0], &a, 1) != 1)
				sys_exit(1);
		}
		sys_exit(0);
	}
	if (pid < 0) {
		fail("fork");
		goto out;
	}
	for (i = 0; i < SIG_CROSS; i++) {
		u32 none[4] = { 0, 0, 0, 0 };
		u32 before = usr2_count;
		char a = 'a';

		while (usr2_count == before)
			sys(NR_rt_sigsuspend, (long)none, 16, 0);
		write_full(ack[1], &a, 1);
	}
	if (!exited_with(wait_pid(pid), 0))
		fail("signalling child status");
	sigmask(SIG_UNBLOCK, SIGUSR2);
	if (usr2_count != SIG_CROSS)
		fail("cross signals");
	h = fnv_u32(h, usr2_count);

	/* A child waiting in read() ended by SIGTERM. */
	pid = do_fork();
	if (pid == 0) {
		char a;

		close_fd(ack[1]);
		read_full(ack[0], &a, 1);
		sys_exit(0);
	}
	if (pid > 0) {
		sys(NR_sched_yield, 0, 0, 0);
		sys(NR_kill, pid, SIGTERM, 0);
		st = wait_pid(pid);
		if (!killed_by(st, SIGTERM))
			fail("SIGTERM child status");
		else
			terminated++;
		h = fnv_u32(h, (u32)st);
	} else {
		fail("fork");
	}
	close_fd(ack[0]);
	close_fd(ack[1]);
out:
	kv("self", usr1_count);
	kv("cross", usr2_count);
	kv("terminated", terminated);
	res_end(h);
}

/* --- process tree ----------------------------------------------------------- */

#define TREE_DEPTH  4
#define TREE_FANOUT 2

/* Node `id` at `depth`: fork the children, report to the pipe, wait; exit code = nodes in this subtree. */
static u32 tree_node(u32 id, u32 depth, int fd)
{
	long kids[TREE_FANOUT];
	u32 k, nodes = 1;

	for (k = 0; k < TREE_FANOUT && depth < TREE_DEPTH; k++) {
		kids[k] = do_fork();
		if (kids[k] == 0) {
			u32 me = id * TREE_FANOUT + k, n;

			write_full(fd, &me, sizeof(me));
			n = tree_node(me, depth + 1, fd);
			sys_exit((int)n);
		}
	}
	for (k = 0; k < TREE_FANOUT && depth < TREE_DEPTH; k++) {
		int st = kids[k] > 0 ? wait_pid(kids[k]) : -1;

		if (st >= 0 && (st & 0x7f) == 0)
			nodes += (st >> 8) & 0xff;
	}
	return nodes;
}

static void part_tree(void)
{
	u32 h = FNV_INIT, nodes, reports = 0, sum = 0, xr = 0, id;
	const u32 want = 31; /* 1 + 2 + 4 + 8 + 16 */
	int fds[2];

	res_begin("TREE");
	if (make_pipe(fds) != 0) {
		fail("pipe");
		goto out;
	}
	nodes = tree_node(1, 0, fds[1]);
	close_fd(fds[1]);
	/* Reports arrive in any order: combine them order-independently. */
	while (read_full(fds[0], &id, sizeof(id)) == sizeof(id)) {
		u32 f = fnv_u32(FNV_INIT, id);

		reports++;
		sum += f;
		xr ^= f;
	}
	close_fd(fds[0]);
	if (nodes != want || reports != want - 1)
		fail("node count");
	h = fnv_u32(fnv_u32(fnv_u32(h, nodes), sum), xr);
out:
	kv("depth", TREE_DEPTH);
	kv("processes", reports);
	res_end(h);
}

/* --- pipeline --------------------------------------------------------------- */

#define PIPE_BYTES (256 * 1024)

static unsigned char pipe_filter(unsigned char b, u32 i)
{
	return (unsigned char)((b ^ 0xa5) + (i & 0xff));
}

static void part_pipe(void)
{
	u32 h = FNV_INIT, want = FNV_INIT, x, i, got = 0;
	unsigned char chunk[4096];
	int a[2], b[2];
	long prod, filt;

	res_begin("PIPE");
	if (make_pipe(a) != 0 || make_pipe(b) != 0) {
		fail("pipe");
		goto out;
	}
	prod = do_fork();
	if (prod == 0) { /* producer: the byte stream, in chunks of varying size */
		close_fd(a[0]);
		close_fd(b[0]);
		close_fd(b[1]);
		x = 0x2545f491U;
		for (i = 0; i < PIPE_BYTES;) {
			u32 n = 1 + xs32(i + 77) % sizeof(chunk), j;

			if (n > PIPE_BYTES - i)
				n = PIPE_BYTES - i;
			for (j = 0; j < n; j++) {
				x = xs32(x);
				chunk[j] = (unsigned char)(x >> 11);
			}
			if (write_full(a[1], chunk, n) != 0)
				sys_exit(1);
			i += n;
		}
		sys_exit(0);
	}
	filt = do_fork();
	if (filt == 0) { /* filter: transform and pass on */
		long r;

		close_fd(a[1]);
		close_fd(b[0]);
		i = 0;
		while ((r = sys(NR_read, a[0], (long)chunk, 1000)) > 0) {
			long j;

			for (j = 0; j < r; j++, i++)
				chunk[j] = pipe_filter(chunk[j], i);
			if (write_full(b[1], chunk, (size_t)r) != 0)
				sys_exit(1);
		}
		sys_exit(r == 0 ? 0 : 2);
	}
	close_fd(a[0]);
	close_fd(a[1]);
	close_fd(b[1]);
	for (;;) {
		long r = sys(NR_read, b[0], (long)chunk, sizeof(chunk));

		if (r == -EINTR)
			continue;
		if (r <= 0)
			break;
		h = fnv(h, chunk, (size_t)r);
		got += (u32)r;
	}
	close_fd(b[0]);
	if (prod < 0 || filt < 0 || !exited_with(wait_pid(prod), 0) || !exited_with(wait_pid(filt), 0))
		fail("pipeline process status");
	x = 0x2545f491U;
	for (i = 0; i < PIPE_BYTES; i++) {
		x = xs32(x);
		want = fnv_byte(want, pipe_filter((unsigned char)(x >> 11), i));
	}
	if (got != PIPE_BYTES)
		fail("byte count");
	else if (h != want)
		fail("data mismatch");
out:
	kv("processes", 3);
	kv("bytes", got);
	res_end(h);
}

/* --- memory pressure -------------------------------------------------------- */

#define PRESSURE_CHUNK (1024 * 1024)
#define PRESSURE_MAX_MIB 4096

static void part_pressure(void)
{
	u32 h = FNV_INIT, mib = 0, rec, bad = 0, i;
	int fds[2], st = -1;
	const char *end = "none";
	long pid;

	res_begin("PRESSURE");
	if (make_pipe(fds) != 0) {
		fail("pipe");
		goto out;
	}
	pid = do_fork();
	if (pid == 0) {
		close_fd(fds[0]);
		for (rec = 1; rec <= PRESSURE_MAX_MIB; rec++) {
			unsigned char *m = map_anon(PRESSURE_CHUNK, PROT_READ | PROT_WRITE);

			if (!m)
				sys_exit(3); /* refused */
			for (i = 0; i < PRESSURE_CHUNK; i += PAGE)
				m[i] = (unsigned char)rec;
			write_full(fds[1], &rec, sizeof(rec));
		}
		sys_exit(4);
	}
	close_fd(fds[1]);
	if (pid < 0) {
		close_fd(fds[0]);
		fail("fork");
		goto out;
	}
	while (read_full(fds[0], &rec, sizeof(rec)) == sizeof(rec))
		mib = rec;
	close_fd(fds[0]);
	st = wait_pid(pid);
	if (killed_by(st, SIGKILL))
		end = "killed";
	else if (exited_with(st, 3))
		end = "refused";
	else
		fail("child neither refused nor killed");
	/* PID 1 goes on: fresh memory is zero and holds what is written to it. */
	{
		u32 *m = map_anon(64 * PAGE, PROT_READ | PROT_WRITE);

		if (!m) {
			fail("mmap after pressure");
		} else {
			for (i = 0; i < 64 * 1024; i++)
				bad += m[i] != 0;
			for (i = 0; i < 64 * 1024; i++)
				m[i] = xs32(i + 1);
			for (i = 0; i < 64 * 1024; i++) {
				bad += m[i] != xs32(i + 1);
				h = fnv_u32(h, m[i]);
			}
			unmap(m, 64 * PAGE);
		}
	}
	if (bad)
		fail("data mismatch after pressure");
out:
	/* RAM-dependent counts: printed, not in the checksum. */
	kv("mib", mib);
	out_s(&con, " end=");
	out_s(&con, end);
	res_end(h);
}

/* --- main ------------------------------------------------------------------- */

static void console(void)
{
	if (sys(NR_write, 1, (long)"", 0) >= 0)
		return;
	sys(NR_mkdir, (long)"/dev", 0755, 0);
	sys(NR_mknod, (long)"/dev/console", S_IFCHR | 0600, (5 << 8) | 1);
	con.fd = (int)sys(NR_open, (long)"/dev/console", O_WRONLY | O_NOCTTY, 0);
}

__attribute__((used, noreturn)) void stress_main(long argc, char **argv)
{
	(void)argc;
	(void)argv;
	console();
	out_s(&con, "STRESS-START: pid ");
	out_u(&con, (u32)sys(NR_getpid, 0, 0, 0));
	out_c(&con, '\n');
	part_tlb();
	part_fork_cow();
	part_zero();
	part_exec();
	part_mmap();
	part_signal();
	part_tree();
	part_pipe();
	part_pressure();
	out_s(&con, "STRESS-TOTAL:");
	kv("parts", parts);
	kv("failed", failed);
	out_s(&con, " checksum ");
	out_x(&con, total);
	out_c(&con, '\n');
	out_s(&con, failed ? "STRESS-FAIL\n" : "STRESS-PASS\n");
	out_s(&con, "XIP-POWEROFF: requesting power off\n");
	sys(NR_sync, 0, 0, 0);
	sys((long)NR_reboot, (long)LINUX_REBOOT_MAGIC1, (long)LINUX_REBOOT_MAGIC2, (long)LINUX_REBOOT_CMD_POWER_OFF);
	out_s(&con, "STRESS: power off failed\n");
	for (;;)
		sys(NR_pause, 0, 0, 0);
}

STRESS_ENTRY(stress_main);
