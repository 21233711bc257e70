/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dirty: a freestanding 32-bit multiboot guest that dirties memory at a
 * controlled rate over a controlled working set, checks the integrity of
 * every page before it overwrites it, and prints a heartbeat line on COM1.
 * It is the workload of ferry's live-migration rig (deploy/rig).
 *
 * Parameters (multiboot command line, "key=value" words, unknown ones are
 * ignored):
 *   rate=N     dirty rate in MiB/s; 0 = as fast as possible     (default 4)
 *   ratek=N    dirty rate in KiB/s (overrides rate=)
 *   ws=N       working set in MiB, clamped to the guest RAM       (default 32)
 *   full=0|1   0: change the 4-byte integrity word of each page;
 *              1: also rewrite the rest of the page with random data (0)
 *   hb=N       heartbeat period in ms                             (1000)
 *   invlpg=0|1 after every batch, invlpg the pages just written and the
 *              guest's own stack/data pages: works around QEMU 7.2 TCG
 *              losing writes to TLB-hot pages during migration     (1)
 *   verify=0|1 check each page's previous value before writing it (1)
 *   hz=N       PIT tick rate used to idle with sti;hlt; 0 = busy-poll (1000)
 *   on=N off=M bursty dirtying: dirty at rate= for N ms, then idle for M ms,
 *              and again (off=0, the default, dirties all the time)
 *
 * Page idx of the working set holds pass * ws_pages + idx + 1 (mod 2^32) in
 * its first word after pass "pass" wrote it.  Heartbeat line, every hb ms:
 *   HB seq=12 t_ms=13000 dirtied=852017 pass=53 rate_kib_s=262143 errors=0
 * Time comes from the TSC, calibrated against PIT channel 2.  No libc, no
 * libgcc: 64-bit division is done here with two 64/32 divl steps.
 */

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

#define COM1        0x3f8
#define PIT_HZ      1193182u
#define PAGE_SIZE   4096u
#define WS_BASE     0x400000u /* 4 MiB: above the kernel and multiboot data */
#define BATCH_MAX   4096u     /* pages per batch when running flat out */
#define MAX_REPORTS 10u       /* CORRUPT lines printed before going quiet */

struct multiboot_info {
	u32 flags;
	u32 mem_lower;
	u32 mem_upper;
	u32 boot_device;
	u32 cmdline;
};

void dirty_main(u32 magic, const struct multiboot_info *mbi);
void exc_panic(u32 vector);
void *memset(void *s, int c, unsigned long n);
void *memcpy(void *d, const void *s, unsigned long n);

extern volatile u32 pit_ticks;
extern char _data_start[], _data_end[];

static u32 tsc_per_us;

/* Parameters. */
static u32 p_rate_kib = 4 * 1024;
static u32 p_ws_mib = 32;
static u32 p_full;
static u32 p_hb_ms = 1000;
static u32 p_invlpg = 1;
static u32 p_verify = 1;
static u32 p_hz = 1000;
static u32 p_on_ms = 1000, p_off_ms; /* bursts: dirty on_ms, idle off_ms */

/* The compiler may emit calls to these two; provide them. */
void *
memset(void *s, int c, unsigned long n)
{
	u8 *p = s;

	while (n--)
		*p++ = (u8)c;
	return s;
}

void *
memcpy(void *d, const void *s, unsigned long n)
{
	u8 *dp = d;
	const u8 *sp = s;

	while (n--)
		*dp++ = *sp++;
	return d;
}

static inline void
outb(u16 port, u8 v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline u8
inb(u16 port)
{
	u8 v;

	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline u64
rdtsc(void)
{
	u32 lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((u64)hi << 32) | lo;
}

static inline void
invlpg(const volatile void *addr)
{
	__asm__ volatile("invlpg (%0)" : : "r"(addr) : "memory");
}

/* 64/32 division in two divl steps (each quotient fits in 32 bits). */
static u64
udiv64(u64 n, u32 d, u32 *ret_rem)
{
	u32 hi = (u32)(n >> 32), lo = (u32)n;
	u32 qhi = 0, qlo, rem;

	if (hi >= d) {
		qhi = hi / d;
		hi = hi % d;
	}
	__asm__("divl %4" : "=a"(qlo), "=d"(rem) : "a"(lo), "d"(hi), "rm"(d));
	if (ret_rem)
		*ret_rem = rem;
	return ((u64)qhi << 32) | qlo;
}

static void
serial_init(void)
{
	outb(COM1 + 1, 0x00); /* no interrupts */
	outb(COM1 + 3, 0x80); /* DLAB */
	outb(COM1 + 0, 0x01); /* 115200 baud */
	outb(COM1 + 1, 0x00);
	outb(COM1 + 3, 0x03); /* 8N1 */
	outb(COM1 + 2, 0xC7); /* FIFO on, cleared */
	outb(COM1 + 4, 0x03); /* DTR, RTS */
}

static void
ser_putc(char c)
{
	int spin = 100000;

	while (!(inb(COM1 + 5) & 0x20) && --spin)
		;
	outb(COM1, (u8)c);
}

static void
ser_puts(const char *s)
{
	while (*s) {
		if (*s == '\n')
			ser_putc('\r');
		ser_putc(*s++);
	}
}

static void
ser_putu(u64 v)
{
	char buf[21];
	int i = 20;
	u32 rem;

	buf[i] = '\0';
	do {
		v = udiv64(v, 10, &rem);
		buf[--i] = (char)('0' + rem);
	} while (v);
	ser_puts(buf + i);
}

static void
putkv(const char *key, u64 v)
{
	ser_puts(key);
	ser_putu(v);
}

void
exc_panic(u32 vector)
{
	putkv("PANIC exception=", vector);
	ser_puts("\n");
}

/* TSC ticks per microsecond, measured over 50 ms of PIT channel 2. */
static u32
calibrate_tsc(void)
{
	u32 count = PIT_HZ / 20;
	u64 t0, t1;
	u32 spin = 0, per_us;

	outb(0x61, (u8)((inb(0x61) & ~0x02) | 0x01)); /* gate on, speaker off */
	outb(0x43, 0xB0);                             /* ch2, lo/hi, mode 0 */
	outb(0x42, (u8)(count & 0xff));
	outb(0x42, (u8)(count >> 8));
	t0 = rdtsc();
	while (!(inb(0x61) & 0x20) && ++spin < 0x40000000u)
		;
	t1 = rdtsc();
	per_us = (u32)udiv64(t1 - t0, 50000, 0);
	return per_us ? per_us : 1;
}

static void
pic_pit_init(u32 hz)
{
	u32 div;

	/* Remap the PICs to 0x20/0x28 and unmask IRQ0 only. */
	outb(0x20, 0x11);
	outb(0xA0, 0x11);
	outb(0x21, 0x20);
	outb(0xA1, 0x28);
	outb(0x21, 0x04);
	outb(0xA1, 0x02);
	outb(0x21, 0x01);
	outb(0xA1, 0x01);
	outb(0x21, hz ? 0xFE : 0xFF);
	outb(0xA1, 0xFF);
	if (!hz)
		return;
	div = PIT_HZ / hz;
	if (div > 0xffff)
		div = 0xffff;
	if (div < 1)
		div = 1;
	outb(0x43, 0x34); /* ch0, lo/hi, rate generator */
	outb(0x40, (u8)(div & 0xff));
	outb(0x40, (u8)(div >> 8));
}

static u64
now_us(u64 tsc0)
{
	return udiv64(rdtsc() - tsc0, tsc_per_us, 0);
}

static int
parse_u32(const char *s, u32 *ret)
{
	u32 v = 0;

	if (*s < '0' || *s > '9')
		return -1;
	while (*s >= '0' && *s <= '9')
		v = v * 10 + (u32)(*s++ - '0');
	if (*s != '\0' && *s != ' ')
		return -1;
	*ret = v;
	return 0;
}

static int
word_is(const char *w, const char *key, const char **ret_val)
{
	while (*key && *w == *key) {
		w++;
		key++;
	}
	if (*key || *w != '=')
		return 0;
	*ret_val = w + 1;
	return 1;
}

static void
parse_cmdline(const char *s)
{
	const char *v;
	u32 n;
	int have_ratek = 0;

	while (*s) {
		while (*s == ' ')
			s++;
		if (!*s)
			break;
		if (word_is(s, "rate", &v) && !have_ratek && !parse_u32(v, &n))
			p_rate_kib = n * 1024;
		else if (word_is(s, "ratek", &v) && !parse_u32(v, &n)) {
			p_rate_kib = n;
			have_ratek = 1;
		} else if (word_is(s, "ws", &v) && !parse_u32(v, &n))
			p_ws_mib = n ? n : 1;
		else if (word_is(s, "full", &v) && !parse_u32(v, &n))
			p_full = n != 0;
		else if (word_is(s, "hb", &v) && !parse_u32(v, &n))
			p_hb_ms = n ? n : 1000;
		else if (word_is(s, "invlpg", &v) && !parse_u32(v, &n))
			p_invlpg = n != 0;
		else if (word_is(s, "verify", &v) && !parse_u32(v, &n))
			p_verify = n != 0;
		else if (word_is(s, "hz", &v) && !parse_u32(v, &n))
			p_hz = n > 10000 ? 10000 : n;
		else if (word_is(s, "on", &v) && !parse_u32(v, &n))
			p_on_ms = n ? n : 1;
		else if (word_is(s, "off", &v) && !parse_u32(v, &n))
			p_off_ms = n;
		while (*s && *s != ' ')
			s++;
	}
}

static u32 rng_state = 0x12345678u;

static inline u32
xorshift32(void)
{
	u32 x = rng_state;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	rng_state = x;
	return x;
}

/* Flush the guest's own hot pages (stack, counters) from the soft TLB. */
static void
flush_hot_pages(void)
{
	char *p;

	for (p = _data_start; p < _data_end; p += PAGE_SIZE)
		invlpg(p);
}

void
dirty_main(u32 magic, const struct multiboot_info *mbi)
{
	u64 tsc0, t_us, last_us, credit = 0, next_hb_us;
	u64 dirtied = 0, hb_dirtied = 0, hb_last_us = 0, errors = 0;
	u64 pages_per_s, credit_cap;
	u32 ws_pages, max_pages, idx = 0, pass = 0, seq = 0, reports = 0;
	u32 mem_top = 64u << 20;
	volatile u32 *ws = (volatile u32 *)WS_BASE;

	serial_init();
	if (magic != 0x2BADB002u)
		ser_puts("WARN not booted by a multiboot loader\n");
	else {
		if (mbi->flags & 0x4)
			parse_cmdline((const char *)mbi->cmdline);
		if (mbi->flags & 0x1)
			mem_top = 0x100000u + mbi->mem_upper * 1024u;
	}
	max_pages = mem_top > WS_BASE + PAGE_SIZE ? (mem_top - WS_BASE) / PAGE_SIZE : 1;
	ws_pages = p_ws_mib * 256u;
	if (p_ws_mib > 4096 || ws_pages > max_pages)
		ws_pages = max_pages;

	tsc_per_us = calibrate_tsc();
	pic_pit_init(p_hz);

	ser_puts("BOOT dirty");
	putkv(" rate_kib_s=", p_rate_kib);
	putkv(" ws_pages=", ws_pages);
	putkv(" full=", p_full);
	putkv(" hb=", p_hb_ms);
	putkv(" invlpg=", p_invlpg);
	putkv(" hz=", p_hz);
	putkv(" on=", p_on_ms);
	putkv(" off=", p_off_ms);
	putkv(" tsc_mhz=", tsc_per_us);
	putkv(" mem_kib=", mem_top / 1024u);
	ser_puts("\n");

	/* Credit is kept in page-microseconds: one page = 1000000 units. */
	pages_per_s = p_rate_kib / 4u;
	if (p_rate_kib && !pages_per_s)
		pages_per_s = 1;
	credit_cap = pages_per_s * 100000u; /* at most 100 ms of backlog */
	if (credit_cap < 1000000u)
		credit_cap = 1000000u;

	if (p_hz)
		__asm__ volatile("sti");
	tsc0 = rdtsc();
	last_us = 0;
	next_hb_us = (u64)p_hb_ms * 1000u;
	for (;;) {
		u32 n, i;

		t_us = now_us(tsc0);
		if (t_us >= next_hb_us) {
			u64 span_ms = udiv64(t_us - hb_last_us, 1000, 0);
			u64 kib = (dirtied - hb_dirtied) * 4u;
			u64 rate = 0;

			if (span_ms > 0 && span_ms <= 0xffffffffu)
				rate = udiv64(kib * 1000u, (u32)span_ms, 0);

			ser_puts("HB");
			putkv(" seq=", seq++);
			putkv(" t_ms=", udiv64(t_us, 1000, 0));
			putkv(" dirtied=", dirtied);
			putkv(" pass=", pass);
			putkv(" rate_kib_s=", rate);
			putkv(" errors=", errors);
			ser_puts("\n");
			hb_last_us = t_us;
			hb_dirtied = dirtied;
			next_hb_us += (u64)p_hb_ms * 1000u;
			if (next_hb_us <= t_us) /* we were stopped: do not burst */
				next_hb_us = t_us + (u64)p_hb_ms * 1000u;
		}

		if (p_off_ms) {
			u32 phase;

			udiv64(udiv64(t_us, 1000, 0), p_on_ms + p_off_ms, &phase);
			if (phase >= p_on_ms) { /* idle part of a burst period */
				credit = 0;
				last_us = t_us;
				if (p_hz)
					__asm__ volatile("hlt");
				continue;
			}
		}
		if (p_rate_kib == 0) {
			n = BATCH_MAX;
		} else {
			credit += (t_us - last_us) * pages_per_s;
			if (credit > credit_cap)
				credit = credit_cap;
			n = (u32)udiv64(credit, 1000000u, 0);
			if (n > BATCH_MAX)
				n = BATCH_MAX;
		}
		last_us = t_us;
		if (n == 0) {
			if (p_hz)
				__asm__ volatile("hlt");
			continue;
		}

		for (i = 0; i < n; i++) {
			volatile u32 *page = ws + (idx * (PAGE_SIZE / 4u));
			u32 want = (pass - 1u) * ws_pages + idx + 1u;
			u32 val = pass * ws_pages + idx + 1u;

			if (p_verify && pass > 0) {
				u32 got = page[0];

				if (got != want) {
					errors++;
					if (reports < MAX_REPORTS) {
						reports++;
						putkv("CORRUPT page=", idx);
						putkv(" got=", got);
						putkv(" want=", want);
						ser_puts("\n");
					}
				}
			}
			page[0] = val;
			if (p_full) {
				u32 w;

				for (w = 1; w < PAGE_SIZE / 4u; w++)
					page[w] = xorshift32();
			}
			if (p_invlpg)
				invlpg(page);
			if (++idx == ws_pages) {
				idx = 0;
				pass++;
			}
		}
		dirtied += n;
		if (p_rate_kib)
			credit -= (u64)n * 1000000u;
		if (p_invlpg)
			flush_hot_pages();
	}
}
