/*
 * Freestanding PID 1 for the XIP kernel boot test (MIPS32 o32, little-endian).
 *
 * No libc: every system call is a raw o32 `syscall` (number in v0 = 4000 + n,
 * arguments in a0..a3, error flag returned in a3, result or errno in v0).
 *
 * It proves that userspace runs from the embedded initramfs by printing its
 * own pid and argv[0] (both read at run time, from getpid() and from the
 * initial stack the kernel built), then the two boot-test markers, then it
 * syncs and powers the machine off. PID 1 must never exit: if reboot()
 * returns, it says so and waits forever.
 *
 * Built by src/userspace/init.ts with userspace/init.lds; stripped < 1 KiB.
 */

#define NR_write   4004
#define NR_open    4005
#define NR_getpid  4020
#define NR_pause   4029
#define NR_sync    4036
#define NR_reboot  4088

#define O_WRONLY   01
#define O_NOCTTY   0x800 /* the MIPS value */

#define LINUX_REBOOT_MAGIC1         0xfee1deadU
#define LINUX_REBOOT_MAGIC2         672274793U
#define LINUX_REBOOT_CMD_POWER_OFF  0x4321fedcU

/*
 * One system call. v0 is loaded inside the asm, right before `syscall`, so a
 * restarted call finds its number there. The kernel may clobber v1, a3 and
 * the temporaries. Returns the result, or -errno when a3 is set.
 */
static long sys4(long n, long a, long b, long c, long d)
{
	register long v0 __asm__("$2");
	register long a0 __asm__("$4") = a;
	register long a1 __asm__("$5") = b;
	register long a2 __asm__("$6") = c;
	register long a3 __asm__("$7") = d;

	__asm__ volatile(
		".set push\n\t"
		".set noreorder\n\t"
		"move $2, %2\n\t"
		"syscall\n\t"
		".set pop"
		: "=&r"(v0), "+r"(a3)
		: "r"(n), "r"(a0), "r"(a1), "r"(a2)
		: "$1", "$3", "$8", "$9", "$10", "$11", "$12", "$13", "$14", "$15",
		  "$24", "$25", "hi", "lo", "memory");
	return a3 ? -v0 : v0;
}

static long len(const char *s)
{
	const char *p = s;

	while (*p)
		p++;
	return p - s;
}

/*
 * Write a string to fd; returns the fd to use from now on. fd 1 is only open
 * if the initramfs has /dev/console (the kernel opens it for PID 1); when the
 * write fails, open the console ourselves and retry.
 */
static long put(long fd, const char *s)
{
	while (sys4(NR_write, fd, (long)s, len(s), 0) < 0 && fd == 1) {
		fd = sys4(NR_open, (long)"/dev/console", O_WRONLY | O_NOCTTY, 0, 0);
		if (fd < 0)
			return 1;
	}
	return fd;
}

static long put_dec(long fd, unsigned long v)
{
	char buf[12];
	char *p = buf + sizeof(buf) - 1;

	*p = 0;
	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	return put(fd, p);
}

__attribute__((used, noreturn)) void init_main(long argc, char **argv)
{
	long fd = put(1, "XIP-INIT: pid ");

	fd = put_dec(fd, (unsigned long)sys4(NR_getpid, 0, 0, 0, 0));
	fd = put(fd, ", argv[0] ");
	fd = put(fd, argc > 0 && argv[0] ? argv[0] : "(none)");
	fd = put(fd, "\nXIP-USERSPACE-OK\nXIP-POWEROFF: requesting power off\n");
	sys4(NR_sync, 0, 0, 0, 0);
	sys4(NR_reboot, (long)LINUX_REBOOT_MAGIC1, (long)LINUX_REBOOT_MAGIC2,
	     (long)LINUX_REBOOT_CMD_POWER_OFF, 0);
	put(fd, "XIP-INIT: reboot(POWER_OFF) returned; halting here\n");
	for (;;)
		sys4(NR_pause, 0, 0, 0, 0);
}

/*
 * Process entry: the kernel leaves argc at 0($sp) and argv at 4($sp).
 * Align the stack to 8 and leave the 16-byte o32 argument save area.
 */
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
	"	jal	init_main\n"
	"	addiu	$sp, $sp, -16\n"
	".set pop\n"
	".size __start, .-__start\n"
	".previous\n");
