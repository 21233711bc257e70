/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Entry point of the dirtying test guest: multiboot v1 header, own flat GDT,
 * an IDT with panic stubs for the CPU exceptions, the 1 kHz PIT tick handler
 * (IRQ0 remapped to vector 0x20) and the spurious IRQ7 handler.  Hands the
 * multiboot magic and info pointer to dirty_main() in dirty.c.
 */
#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003 /* page-align modules, want memory info */

	.section .multiboot, "a"
	.balign 4
	.long MB_MAGIC
	.long MB_FLAGS
	.long -(MB_MAGIC + MB_FLAGS)

	.text
	.globl _start
_start:
	cli
	cld
	movl $stack_top, %esp
	movl %eax, %esi		/* multiboot magic */
	movl %ebx, %edi		/* multiboot info (physical = linear) */
	lgdt gdt_desc
	ljmp $0x08, $1f
1:	movw $0x10, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %fs
	movw %ax, %gs
	movw %ax, %ss
	call idt_setup
	lidt idt_desc
	pushl %edi
	pushl %esi
	call dirty_main
2:	cli
	hlt
	jmp 2b

/* Fill idt[] with interrupt gates: exceptions 0..31, IRQ0, spurious IRQ7. */
idt_setup:
	xorl %ecx, %ecx
3:	movl exc_table(,%ecx,4), %eax
	call set_gate
	incl %ecx
	cmpl $32, %ecx
	jne 3b
	movl $0x20, %ecx
	movl $irq0_entry, %eax
	call set_gate
	movl $0x27, %ecx
	movl $spurious_entry, %eax
	call set_gate
	ret

/* %ecx = vector, %eax = handler; clobbers %edx. */
set_gate:
	leal idt(,%ecx,8), %edx
	movw %ax, (%edx)
	movw $0x08, 2(%edx)
	movw $0x8E00, 4(%edx)
	shrl $16, %eax
	movw %ax, 6(%edx)
	ret

	.globl irq0_entry
irq0_entry:
	pushl %eax
	incl pit_ticks
	movb $0x20, %al
	outb %al, $0x20		/* EOI to the master PIC */
	popl %eax
	iret

spurious_entry:
	iret

.macro EXC n
exc_\n:
	pushl $\n
	jmp exc_common
.endm
.irp n,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	EXC \n
.endr

exc_common:
	cli
	call exc_panic		/* argument: the vector pushed by the stub */
4:	hlt
	jmp 4b

	.section .rodata
	.balign 4
exc_table:
.irp n,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	.long exc_\n
.endr

	.balign 8
gdt:
	.quad 0x0000000000000000
	.quad 0x00CF9A000000FFFF	/* 0x08: flat 32-bit code */
	.quad 0x00CF92000000FFFF	/* 0x10: flat 32-bit data */
gdt_end:

	.balign 4
	.word 0
gdt_desc:
	.word gdt_end - gdt - 1
	.long gdt

	.word 0
idt_desc:
	.word 256 * 8 - 1
	.long idt

	.bss
	.balign 8
idt:
	.skip 256 * 8
	.globl pit_ticks
pit_ticks:
	.skip 4
	.balign 16
stack_bottom:
	.skip 16384
stack_top:
