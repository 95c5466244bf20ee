/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Boot shim for an XIP kernel on QEMU malta.
 *
 * It sits at the reset vector (0xbfc00000) in front of the kernel image
 * and does what YAMON would have done before jumping to a kernel:
 *   - sets up the GT-64120 system controller: registers moved to
 *     0x1be00000, the PCI0 I/O and memory windows, and the PIIX4 PCI
 *     interrupt routing, with the values QEMU's own -kernel loader writes;
 *   - finds out how much RAM there is by probing it;
 *   - builds YAMON style argv and envp in RAM (memsize, modetty0);
 *   - jumps to kernel_entry, in flash, with a0 = argc, a1 = argv,
 *     a2 = envp, a3 = memory size.
 *
 * Fixed layout, read by the image tools and `xip verify`:
 *   0x00  branch to reset (the CPU starts here)
 *   0x10  board ID word, written by QEMU: left alone
 *   0x18  magic "XIPS"
 *   0x20  address the shim jumps to (kernel_entry of the linked vmlinux)
 *   0x24  address of a device tree for the kernel, or 0: written by the
 *         image builder when the image has one (UHI boot protocol:
 *         a0 = -2, a1 = the device tree; envp in a2 as before, for
 *         memsize; the command line is then the tree's /chosen bootargs)
 *
 * SHIM_CMDLINE (a string) is defined by the build from the board data.
 */

#ifndef SHIM_CMDLINE
#error "SHIM_CMDLINE must be defined"
#endif

/* Registers, o32 names. */
#define zero	$0
#define v0	$2
#define a0	$4
#define a1	$5
#define a2	$6
#define a3	$7
#define t0	$8
#define t1	$9
#define t2	$10
#define t3	$11
#define t4	$12
#define t5	$13
#define s0	$16
#define s1	$17
#define s2	$18
#define s3	$19
#define s4	$20
#define t9	$25

/* GT-64120 registers: at 0x14000000 after reset, moved to 0x1be00000. */
#define GT_RESET_BASE	0xb4000000	/* KSEG1 */
#define GT_BASE		0xbbe00000	/* KSEG1 */
#define GT_ISD		0x068
#define GT_PCI0IOLD	0x048
#define GT_PCI0IOHD	0x050
#define GT_PCI0M0LD	0x058
#define GT_PCI0M0HD	0x060
#define GT_PCI0M1LD	0x080
#define GT_PCI0M1HD	0x088
#define GT_PCI0_CFGADDR	0x0cf8
#define GT_PCI0_CFGDATA	0x0cfc

/*
 * The GT-64120 is little-endian on its bus; QEMU models the byte lane swap
 * a big-endian Malta has, so a register value is written swapped on a
 * little-endian CPU and as is on a big-endian one.
 */
#ifdef __MIPSEB__
#define GT32(x)	(x)
#else
#define GT32(x)	((((x) >> 24) & 0xff) | (((x) >> 8) & 0xff00) | \
		 (((x) << 8) & 0xff0000) | (((x) << 24) & 0xff000000))
#endif

/*
 * PIIX4 function 0 (bus 0, device 10), PIRQ route control registers
 * 0x60-0x63. The value reads the same in either byte order, so it lands the
 * same whatever lane swapping the GT-64120 model applies to config data
 * (QEMU 7.2 and 8+ differ on a big-endian CPU): PIRQA and D -> IRQ 10,
 * PIRQB and C -> IRQ 11. The on-board NIC (slot 11, INTA = PIRQB) and the
 * first add-in slot (18, INTA = PIRQA) get a line each.
 */
#define PIIX4_ID_CFGADDR	((1 << 31) | (10 << 11) | 0x00)
#define PIIX4_PIRQ_CFGADDR	((1 << 31) | (10 << 11) | 0x60)
#define PIIX4_PIRQ_ROUTE	0x0a0b0b0a

/*
 * The slave 8259's edge/level control register (ELCR2, ISA port 0x4d1) in
 * PCI I/O space. Bits 2 and 3 make IRQ 10 and 11, where the PIRQs go, level-
 * triggered, as PCI interrupts are. Left at its reset value (edge), a line
 * two PCI devices share loses every interrupt once one device raises it
 * while the other still holds it high: the router's two NICs, then on one
 * line, stalled so.
 * Linux's malta code never writes ELCR.
 */
#define PCI_IO_KSEG1		0xb8000000
#define PIIX4_ELCR2		0x4d1
#define PIIX4_ELCR2_PCI		0x0c

/* Where argv, envp and their strings go in RAM (KSEG0), as YAMON does. */
#define ARGV_ADDR	0x80002000
#define ENVP_ADDR	0x80002010
#define STR_ADDR	0x80002100
#define MEMSIZE_END	0x800020f0	/* decimal digits are written backwards from here */

/* RAM probe: 64 KiB steps, at most 256 MiB (PCI memory starts above). */
#define RAM_KSEG1	0xa0000000
#define RAM_STEP	0x00010000
#define RAM_LIMIT	0x10000000

	.set	noreorder
	.set	noat
	.set	mips32r2
	.text
	.globl	_start
	.ent	_start
_start:
	b	reset
	 nop

	.org	0x10
	.word	0			/* board ID: QEMU writes it */

	.org	0x18
	.ascii	"XIPS"

	.org	0x20
kernel_entry_addr:
	.word	kernel_entry		/* --defsym at link time */

	.org	0x24
dtb_addr:
	.word	0			/* patched by the image builder */

	.org	0x40
reset:
	/* GT-64120: registers to 0x1be00000, then the PCI0 windows. */
	li	t1, GT_RESET_BASE
	li	t0, GT32(0x1be00000 << 3)
	sw	t0, GT_ISD(t1)

	li	t1, GT_BASE
	li	t0, GT32(0x18000000 << 3)	/* PCI0 I/O: 0x18000000 ... */
	sw	t0, GT_PCI0IOLD(t1)
	li	t0, GT32(0x08000000 << 3)	/* ... 0x181fffff */
	sw	t0, GT_PCI0IOHD(t1)
	li	t0, GT32(0x10000000 << 3)	/* PCI0 memory 0 */
	sw	t0, GT_PCI0M0LD(t1)
	li	t0, GT32(0x07e00000 << 3)
	sw	t0, GT_PCI0M0HD(t1)
	li	t0, GT32(0x18200000 << 3)	/* PCI0 memory 1 */
	sw	t0, GT_PCI0M1LD(t1)
	li	t0, GT32(0x0bc00000 << 3)
	sw	t0, GT_PCI0M1HD(t1)

	/* PIIX4 PCI interrupt routing, which Linux expects YAMON to have set. */
	/*
	 * QEMU 8 and later model the config address register as little-endian
	 * to either CPU, 7.2 as the CPU's own. Ask the PIIX4 for its IDs: when
	 * nothing answers (all ones: the enable bit did not land), the address
	 * goes in byte-swapped.
	 */
	li	t0, PIIX4_ID_CFGADDR
	sw	t0, GT_PCI0_CFGADDR(t1)
	lw	t2, GT_PCI0_CFGDATA(t1)
	li	t0, PIIX4_PIRQ_CFGADDR
	addiu	t2, t2, 1
	bnez	t2, 1f
	 nop
	wsbh	t0, t0
	rotr	t0, t0, 16
1:	sw	t0, GT_PCI0_CFGADDR(t1)
	li	t0, PIIX4_PIRQ_ROUTE
	sw	t0, GT_PCI0_CFGDATA(t1)

	/* ... and level-triggered, which nobody else sets (see PIIX4_ELCR2). */
	li	t1, PCI_IO_KSEG1
	li	t0, PIIX4_ELCR2_PCI
	sb	t0, PIIX4_ELCR2(t1)

	/*
	 * RAM size: write a pattern every 64 KiB until it does not read back
	 * (QEMU reads unbacked addresses as zero and drops writes to them) or
	 * address 0 changes (the RAM wraps around). s1 = size in bytes.
	 */
	li	s0, RAM_KSEG1
	li	t2, 0x55aa55aa
	sw	t2, 0(s0)
	li	s1, RAM_STEP
	li	s2, RAM_LIMIT
	li	t5, 0x5a5a5a5a
1:	addu	t3, s0, s1
	xor	t4, s1, t5
	sw	t4, 0(t3)
	lw	t0, 0(t3)
	bne	t0, t4, 2f
	 nop
	lw	t0, 0(s0)
	bne	t0, t2, 2f
	 nop
	li	t0, RAM_STEP
	addu	s1, s1, t0
	bne	s1, s2, 1b
	 nop
2:

	/* Copy the constant strings to RAM. s3 = their flash address. */
	la	s3, strings
	la	t1, strings_end
	li	s4, STR_ADDR
	move	t0, s3
	move	t2, s4
3:	lbu	t3, 0(t0)
	sb	t3, 0(t2)
	addiu	t0, t0, 1
	bne	t0, t1, 3b
	 addiu	t2, t2, 1

	/* The memory size in decimal, written backwards; t0 = first digit. */
	li	t0, MEMSIZE_END
	sb	zero, 0(t0)
	move	t1, s1
	li	t2, 10
4:	divu	zero, t1, t2
	mflo	t1
	mfhi	t3
	addiu	t3, t3, '0'
	addiu	t0, t0, -1
	bnez	t1, 4b
	 sb	t3, 0(t0)

	/* argv = { "xip", cmdline, NULL } */
	li	a1, ARGV_ADDR
	la	t1, str_argv0
	subu	t1, t1, s3
	addu	t1, t1, s4
	sw	t1, 0(a1)
	la	t1, str_cmdline
	subu	t1, t1, s3
	addu	t1, t1, s4
	sw	t1, 4(a1)
	sw	zero, 8(a1)

	/* envp = { "memsize", size, "modetty0", "38400n8r", NULL } */
	li	a2, ENVP_ADDR
	la	t1, str_memsize
	subu	t1, t1, s3
	addu	t1, t1, s4
	sw	t1, 0(a2)
	sw	t0, 4(a2)
	la	t1, str_modetty0
	subu	t1, t1, s3
	addu	t1, t1, s4
	sw	t1, 8(a2)
	la	t1, str_modetty0_val
	subu	t1, t1, s3
	addu	t1, t1, s4
	sw	t1, 12(a2)
	sw	zero, 16(a2)

	/* Hand over to the kernel in flash: YAMON style, or UHI with a device tree. */
	li	a0, 2
	la	t1, dtb_addr
	lw	t1, 0(t1)
	beqz	t1, 1f
	 nop
	li	a0, -2
	move	a1, t1
1:
	move	a3, s1
	la	t9, kernel_entry_addr
	lw	t9, 0(t9)
	jr	t9
	 nop
	.end	_start

strings:
str_argv0:
	.asciz	"xip"
str_cmdline:
	.asciz	SHIM_CMDLINE
str_memsize:
	.asciz	"memsize"
str_modetty0:
	.asciz	"modetty0"
str_modetty0_val:
	.asciz	"38400n8r"
strings_end:
