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
#define NR_mknod   4014
#define NR_getpid  4020
#define NR_pause   4029
#define NR_sync    4036
#define NR_mkdir   4039
#define NR_reboot  4088

#define O_WRONLY   01
#define O_NOCTTY   0x800 /* the MIPS value */
#define S_IFCHR    0020000

#define LINUX_REBOOT_MAGIC1         0xfee1deadU
#define LINUX_REBOOT_MAGIC2         672274793U
#define LINUX_REBOOT_CMD_POWER_OFF  0x4321fedcU

/*
 * sys(a0, a1, a2, nr): system call nr with three arguments; the fourth
 * (a3) is 0. Returns the result, or -errno when the kernel set a3. The
 * kernel keeps s0-s7, sp and ra across `syscall`, so a plain function call
 * (which may clobber the temporaries anyway) is all the protection needed.
 */
long sys(long a0, long a1, long a2, long nr);
__asm__(
	".text\n"
	".globl sys\n"
	".type sys, @function\n"
	".set push\n"
	".set noreorder\n"
	"sys:\n"
	"	move	$2, $7\n"
	"	move	$7, $0\n"
	"	syscall\n"
	"	bnez	$7, 1f\n"
	"	nop\n"
	"	jr	$31\n"
	"	nop\n"
	"1:	jr	$31\n"
	"	subu	$2, $0, $2\n"
	".set pop\n"
	".size sys, .-sys\n");

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
 * write fails, open the console ourselves (creating /dev and the node c 5 1,
 * new-style dev_t 0x501, if they are missing) and retry.
 */
static __attribute__((noinline)) long put(long fd, const char *s)
{
	while (sys(fd, (long)s, len(s), NR_write) < 0 && fd == 1) {
		sys((long)"/dev", 0755, 0, NR_mkdir);
		sys((long)"/dev/console", S_IFCHR | 0600, (5 << 8) | 1, NR_mknod);
		fd = sys((long)"/dev/console", O_WRONLY | O_NOCTTY, 0, NR_open);
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

	fd = put_dec(fd, (unsigned long)sys(0, 0, 0, NR_getpid));
	fd = put(fd, ", argv[0] ");
	fd = put(fd, argc > 0 && argv[0] ? argv[0] : "?");
	fd = put(fd, "\nXIP-USERSPACE-OK\nXIP-POWEROFF: requesting power off\n");
	sys(0, 0, 0, NR_sync);
	sys((long)LINUX_REBOOT_MAGIC1, (long)LINUX_REBOOT_MAGIC2,
	    (long)LINUX_REBOOT_CMD_POWER_OFF, NR_reboot);
	put(fd, "XIP-INIT: power off failed\n");
	for (;;)
		sys(0, 0, 0, NR_pause);
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
