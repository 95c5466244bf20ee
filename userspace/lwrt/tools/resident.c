/*
 * resident FILE...: which pages of each file are in the page cache, one
 * line per file: "FILE SIZE PAGES", PAGES as ranges (0-12,15,20-31) or "-".
 *
 * Freestanding (no libc, raw o32 system calls from userspace/stress/sys.h,
 * shared with the stress programs), built like the boot test's PID 1 by
 * src/userspace/program.ts. Used by `xip profile`: after the router's
 * workload on the all-compressed cramfs root (whose MTD backing device
 * does no readahead), the pages in the page cache are exactly the pages
 * that were read. It maps each file read-only and asks mincore().
 */
#include "../../stress/sys.h"

#define NR_lseek   4019
#define NR_mincore 4217
#define MAP_SHARED 0x001
#define SEEK_END   2

static unsigned char vec[2048];	/* files up to 8 MiB */

static void ranges(struct out *o, long pages)
{
	long i, first = -1;
	int any = 0;

	for (i = 0; i <= pages; i++) {
		int in = i < pages && (vec[i] & 1);

		if (in && first < 0)
			first = i;
		if (!in && first >= 0) {
			if (any)
				out_c(o, ',');
			out_u(o, (u32)first);
			if (i - 1 > first) {
				out_c(o, '-');
				out_u(o, (u32)(i - 1));
			}
			any = 1;
			first = -1;
		}
	}
	out_s(o, any ? "\n" : "-\n");
}

static void report(struct out *o, const char *path)
{
	long fd = sys(NR_open, (long)path, 0, 0);
	long size, pages, addr;

	out_s(o, path);
	out_c(o, ' ');
	if (fd < 0) {
		out_s(o, "? cannot-open\n");
		return;
	}
	size = sys(NR_lseek, fd, 0, SEEK_END);
	pages = size > 0 ? (size + (long)PAGE - 1) / (long)PAGE : 0;
	out_u(o, (u32)(size > 0 ? size : 0));
	out_c(o, ' ');
	if (pages == 0 || pages > (long)sizeof(vec)) {
		out_s(o, pages ? "? too-large\n" : "-\n");
	} else {
		addr = sys6(0, pages * (long)PAGE, PROT_READ, MAP_SHARED, fd, 0, NR_mmap2);
		if ((unsigned long)addr >= (unsigned long)-MAP_FAILED_MAX)
			out_s(o, "? cannot-map\n");
		else {
			if (sys(NR_mincore, addr, pages * (long)PAGE, (long)vec) < 0)
				out_s(o, "? mincore-failed\n");
			else
				ranges(o, pages);
			sys(NR_munmap, addr, pages * (long)PAGE, 0);
		}
	}
	sys(NR_close, fd, 0, 0);
}

__attribute__((used, noreturn)) void resident_main(long argc, char **argv)
{
	struct out o = { .fd = 1, .n = 0 };
	long i;

	for (i = 1; i < argc; i++) {
		report(&o, argv[i]);
		out_flush(&o);
	}
	sys(NR_exit, 0, 0, 0);
	for (;;)
		;
}

STRESS_ENTRY(resident_main);
