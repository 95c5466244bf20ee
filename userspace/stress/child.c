/*
 * The second program of the stress test: /bin/stress-child, exec'd by
 * stress.c. Usage: stress-child SEED PAGES. It checksums its arguments and
 * environment (proving execve passed them), fills PAGES fresh anonymous
 * pages from SEED and checksums them, prints "CHILD 0x<sum>" on fd 1 and
 * exits with 42. stress.c computes the same sum to check it.
 */
#include "sys.h"

__attribute__((used, noreturn)) void child_main(long argc, char **argv)
{
	struct out o = { .fd = 1, .n = 0 };
	char **envp = argv + argc + 1;
	u32 h = FNV_INIT, seed, pages;
	u32 *buf;

	if (argc != 3)
		sys_exit(2);
	seed = parse_u32(argv[1]);
	pages = parse_u32(argv[2]);
	h = child_strings_sum(h, argv);
	h = child_strings_sum(h, envp);
	buf = map_anon(pages * PAGE, PROT_READ | PROT_WRITE);
	if (!buf)
		sys_exit(3);
	h = pattern_sum(h, seed, buf, pages);
	unmap(buf, pages * PAGE);
	out_s(&o, "CHILD ");
	out_x(&o, h);
	out_c(&o, '\n');
	sys_exit(42);
}

STRESS_ENTRY(child_main);
