/*
 * resident FILE...: which pages of each file are in the page cache, one
 * line per file: "FILE SIZE PAGES", PAGES as ranges (0-12,15,20-31) or "-".
 *
 * Freestanding (no libc, raw o32 system calls), built like the boot test's
 * PID 1 by src/userspace/program.ts. Used by `xip profile`: after the
 * router's workload on the all-compressed cramfs root (whose MTD backing
 * device does no readahead), the pages in the page cache are exactly the
 * pages that were read. It maps each file read-only and asks mincore().
 */

#define NR_exit    4001
#define NR_write   4004
#define NR_open    4005
#define NR_close   4006
#define NR_lseek   4019
#define NR_munmap  4091
#define NR_mmap2   4210
#define NR_mincore 4217

#define PAGE       4096
#define PROT_READ  1
#define MAP_SHARED 1
#define SEEK_END   2

/*
 * sys(a0, a1, a2, a3, a4, a5, nr): system call nr with up to six arguments.
 * o32 passes the fifth and sixth at 16($sp) and 20($sp), which is where
 * the caller put this function's own fifth and sixth arguments; the
 * seventh (nr) is at 24($sp). Returns the result, or -errno.
 */
long sys(long a0, long a1, long a2, long a3, long a4, long a5, long nr);
__asm__(
	".text\n"
	".globl sys\n"
	".type sys, @function\n"
	".set push\n"
	".set noreorder\n"
	"sys:\n"
	"	lw	$2, 24($29)\n"
	"	syscall\n"
	"	bnez	$7, 1f\n"
	"	nop\n"
	"	jr	$31\n"
	"	nop\n"
	"1:	jr	$31\n"
	"	subu	$2, $0, $2\n"
	".set pop\n"
	".size sys, .-sys\n");

static char out[512];
static long used;

static void flush(void)
{
	if (used)
		sys(1, (long)out, used, 0, 0, 0, NR_write);
	used = 0;
}

static void put(const char *s)
{
	while (*s) {
		if (used == sizeof(out))
			flush();
		out[used++] = *s++;
	}
}

static void put_dec(unsigned long v)
{
	char buf[12];
	char *p = buf + sizeof(buf) - 1;

	*p = 0;
	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	put(p);
}

static unsigned char vec[2048];	/* files up to 8 MiB */

static void report(const char *path)
{
	long fd = sys((long)path, 0, 0, 0, 0, 0, NR_open);
	long size, pages, i, first = -1, any = 0;
	long addr;

	put(path);
	put(" ");
	if (fd < 0) {
		put("? cannot-open\n");
		return;
	}
	size = sys(fd, 0, SEEK_END, 0, 0, 0, NR_lseek);
	pages = size > 0 ? (size + PAGE - 1) / PAGE : 0;
	put_dec(size > 0 ? (unsigned long)size : 0);
	put(" ");
	if (pages == 0 || pages > (long)sizeof(vec)) {
		put(pages ? "? too-large\n" : "-\n");
		sys(fd, 0, 0, 0, 0, 0, NR_close);
		return;
	}
	addr = sys(0, pages * PAGE, PROT_READ, MAP_SHARED, fd, 0, NR_mmap2);
	if (addr < 0 && addr > -4096) {
		put("? cannot-map\n");
		sys(fd, 0, 0, 0, 0, 0, NR_close);
		return;
	}
	if (sys(addr, pages * PAGE, (long)vec, 0, 0, 0, NR_mincore) < 0) {
		put("? mincore-failed\n");
	} else {
		for (i = 0; i <= pages; i++) {
			int in = i < pages && (vec[i] & 1);

			if (in && first < 0)
				first = i;
			if (!in && first >= 0) {
				if (any)
					put(",");
				put_dec((unsigned long)first);
				if (i - 1 > first) {
					put("-");
					put_dec((unsigned long)(i - 1));
				}
				any = 1;
				first = -1;
			}
		}
		put(any ? "\n" : "-\n");
	}
	sys(addr, pages * PAGE, 0, 0, 0, 0, NR_munmap);
	sys(fd, 0, 0, 0, 0, 0, NR_close);
}

__attribute__((used, noreturn)) void resident_main(long argc, char **argv)
{
	long i;

	for (i = 1; i < argc; i++)
		report(argv[i]);
	flush();
	sys(0, 0, 0, 0, 0, 0, NR_exit);
	for (;;)
		;
}

/* Process entry: argc at 0($sp), argv at 4($sp); align the stack, leave the o32 save area. */
__asm__(
	".section .text.__start, \"ax\", @progbits\n"
	".globl __start\n"
	".type __start, @function\n"
	".set push\n"
	".set noreorder\n"
	"__start:\n"
	"	lw	$4, 0($sp)\n"
	"	addiu	$5, $sp, 4\n"
	"	li	$8, -8\n"
	"	and	$sp, $sp, $8\n"
	"	jal	resident_main\n"
	"	addiu	$sp, $sp, -32\n"
	".set pop\n"
	".size __start, .-__start\n"
	".previous\n");
