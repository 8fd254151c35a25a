/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Test bodies for the guest_memfd state (state.c), written once and built
 * both by the userspace harness (tools/testing/guest_memfd) and as a KUnit
 * suite (state_kunit.c), in the spirit of lib/test_maple_tree.c.
 *
 * The includer defines:
 *   gmem_test_fail(ctx, file, line, fmt, ...)	report a failed assertion
 *   gmem_test_seed(ctx)			seed of the randomized test
 *   GMEM_TEST_RANDOM_OPS			operations per seed
 *   GMEM_TEST_FAIL_INJECT, gmem_test_fail_nth(n), gmem_test_fail_pending()
 *						optional allocation failure
 *						injection (harness only)
 * Every test is "static bool test_x(void *ctx)" and returns true on success.
 *
 * Diagrams: one character per unit (a page, a 2M block or a 1G block, as
 * the case says), from index 0:
 *   .  private            S  shared
 *   g  guest-shared only  G  shared and guest-shared
 */
#ifndef __KVM_GMEM_STATE_TEST_H
#define __KVM_GMEM_STATE_TEST_H

/*
 * Checks report a failure and return false; the test returns false in turn,
 * so every return is visible at the call site.
 */
static bool __gt_check(void *ctx, bool ok, const char *file, int line,
		       const char *expr)
{
	if (!ok)
		gmem_test_fail(ctx, file, line, "%s", expr);
	return ok;
}

static bool __gt_check_eq(void *ctx, unsigned long a, unsigned long b,
			  const char *file, int line, const char *ea,
			  const char *eb)
{
	if (a != b)
		gmem_test_fail(ctx, file, line, "%s == %s (0x%lx != 0x%lx)",
			       ea, eb, a, b);
	return a == b;
}

static bool __gt_check_call(void *ctx, bool ok, const char *file, int line,
			    const char *call)
{
	if (!ok)
		gmem_test_fail(ctx, file, line, "from %s", call);
	return ok;
}

#define gt_check(ctx, cond)						\
	__gt_check(ctx, !!(cond), __FILE__, __LINE__, #cond)
#define gt_check_eq(ctx, a, b)						\
	__gt_check_eq(ctx, (unsigned long)(a), (unsigned long)(b),	\
		      __FILE__, __LINE__, #a, #b)
#define gt_check_call(ctx, call)					\
	__gt_check_call(ctx, !!(call), __FILE__, __LINE__, #call)

#define GT_SHARED	KVM_GMEM_STATE_SHARED
#define GT_GSHARED	KVM_GMEM_STATE_GUEST_SHARED
#define GT_MISSING	KVM_GMEM_STATE_MISSING
#define GT_1T		BIT(28)		/* pages in 1 TiB */
/* The largest guest_memfd: MAX_LFS_FILESIZE in 4K pages. */
#define GT_MAX_PAGES	((unsigned long)LLONG_MAX >> 12)

struct gt_file {
	struct kvm_gmem_state s;
	struct rw_semaphore lock;
	pgoff_t nr;
};

static int gt_open(struct gt_file *f, pgoff_t nr, unsigned int state)
{
	init_rwsem(&f->lock);
	f->nr = nr;
	return kvm_gmem_state_init(&f->s, &f->lock, nr, state);
}

static void gt_close(struct gt_file *f)
{
	kvm_gmem_state_destroy(&f->s);
}

/* kvm_gmem_state_update() under the lock: 1 if a page changed state. */
static int gt_update_raw(struct gt_file *f, pgoff_t start, pgoff_t end,
			 unsigned int set, unsigned int clear)
{
	int ret;

	down_write(&f->lock);
	ret = kvm_gmem_state_update(&f->s, start, end, set, clear);
	up_write(&f->lock);
	return ret;
}

/* The same, 0 on success whether or not a page changed. */
static int gt_update(struct gt_file *f, pgoff_t start, pgoff_t end,
		     unsigned int set, unsigned int clear)
{
	int ret = gt_update_raw(f, start, end, set, clear);

	return ret < 0 ? ret : 0;
}

static int gt_set_missing(struct gt_file *f, pgoff_t start, pgoff_t end)
{
	int ret;

	down_write(&f->lock);
	ret = kvm_gmem_state_set_missing(&f->s, start, end);
	up_write(&f->lock);
	return ret;
}

static void gt_clear_missing(struct gt_file *f, pgoff_t start, pgoff_t end)
{
	down_write(&f->lock);
	kvm_gmem_state_clear_missing(&f->s, start, end);
	up_write(&f->lock);
}

static struct kvm_gmem_state_stats gt_stats(struct gt_file *f)
{
	struct kvm_gmem_state_stats st;

	down_read(&f->lock);
	kvm_gmem_state_stats(&f->s, &st);
	up_read(&f->lock);
	return st;
}

static unsigned int gt_char_state(char c)
{
	switch (c) {
	case 'S': return GT_SHARED;
	case 'g': return GT_GSHARED;
	case 'G': return GT_SHARED | GT_GSHARED;
	default: return 0;
	}
}

/* A run-length description of a whole file, the reference for big files. */
struct gt_run {
	pgoff_t start;
	pgoff_t end;
	unsigned int state;
};

/* Small enough for a kernel stack frame with KASAN. */
#define GT_MAX_RUNS	36

struct gt_runs {
	unsigned int nr;
	bool overflow;
	struct gt_run run[GT_MAX_RUNS];
};

static void gt_runs_add(struct gt_runs *r, pgoff_t start, pgoff_t end,
			unsigned int state)
{
	if (start >= end)
		return;
	if (r->nr && r->run[r->nr - 1].end == start &&
	    r->run[r->nr - 1].state == state) {
		r->run[r->nr - 1].end = end;
		return;
	}
	if (!r->nr)
		r->overflow = false;
	if (r->nr < GT_MAX_RUNS)
		r->run[r->nr++] = (struct gt_run){ start, end, state };
	else
		r->overflow = true;
}

/* Stands for the tree entry of whole 1G blocks that are not uniform. */
#define GT_LEAF_ENTRY	0x1000u

/* Whether a file of @nr pages has the 1G table (and so 1G leaves). */
static bool gt_has_table(pgoff_t nr)
{
	return DIV_ROUND_UP(nr, KVM_GMEM_GIG_PAGES) <= KVM_GMEM_MAX_GIGS;
}

/*
 * Expected canonical tree entries for the (tree-only) states of @runs: with
 * the 1G table, a whole 1G block is one value if uniform, else part of one
 * GT_LEAF_ENTRY range; other 2M blocks are one value or one chunk each.
 * Equal neighbouring values merge.
 */
static unsigned long gt_runs_entries(const struct gt_runs *runs, pgoff_t nr)
{
	const pgoff_t last_gig = round_down(nr, KVM_GMEM_GIG_PAGES);
	unsigned long count = 0, i = 0;
	bool table = gt_has_table(nr);
	unsigned int prev = ~0u;
	struct gt_runs tree, *r = &tree;
	pgoff_t pos = 0;

	/* The missing bit is not in the tree. */
	tree.nr = 0;
	for (i = 0; i < runs->nr; i++)
		gt_runs_add(&tree, runs->run[i].start, runs->run[i].end,
			    runs->run[i].state & KVM_GMEM_STATE_MASK);
	i = 0;

	while (pos < nr) {
		pgoff_t bend = min(pos + KVM_GMEM_BLOCK_PAGES, nr);

		while (r->run[i].end <= pos)
			i++;
		if (table && pos < last_gig) {
			/* A whole 1G block (pos is at its start). */
			pgoff_t gend = pos + KVM_GMEM_GIG_PAGES, jump = gend;
			unsigned int tok = GT_LEAF_ENTRY;

			if (r->run[i].end >= gend) {
				tok = r->run[i].state & KVM_GMEM_STATE_MASK;
				jump = max(gend, min(round_down(r->run[i].end,
								KVM_GMEM_GIG_PAGES),
						     last_gig));
			}
			if (tok != prev) {
				count++;
				prev = tok;
			}
			pos = jump;
			continue;
		}
		if (r->run[i].end >= bend) {
			pgoff_t e = r->run[i].end;
			pgoff_t jump = e == nr ? nr :
				       max(bend, round_down(e, KVM_GMEM_BLOCK_PAGES));

			if (prev != (r->run[i].state & KVM_GMEM_STATE_MASK)) {
				count++;
				prev = r->run[i].state & KVM_GMEM_STATE_MASK;
			}
			pos = jump;
		} else {
			count++;
			prev = ~0u;
			pos = bend;
		}
	}
	return count;
}

/* State and largest uniform aligned order of @index according to @r. */
static unsigned int gt_runs_lookup(const struct gt_runs *r, pgoff_t nr,
				   pgoff_t index, unsigned int max_order,
				   unsigned int *order)
{
	static const unsigned int orders[] = { 18, 9 };
	unsigned int i, k, st = 0;

	for (i = 0; i < r->nr; i++)
		if (index >= r->run[i].start && index < r->run[i].end)
			break;
	st = r->run[i].state;
	*order = 0;
	if (st & GT_MISSING)
		return st;
	for (k = 0; k < 2; k++) {
		pgoff_t base = index & ~((1UL << orders[k]) - 1);
		pgoff_t bend = base + (1UL << orders[k]);

		if (orders[k] > max_order || bend > nr)
			continue;
		if (r->run[i].start <= base && r->run[i].end >= bend) {
			*order = orders[k];
			break;
		}
	}
	return st;
}

/* Compare the whole file with @r: runs, lookups at every edge, entries. */
static bool gt_check_runs(void *ctx, struct gt_file *f, const struct gt_runs *r)
{
	struct kvm_gmem_state_stats st;
	struct kvm_gmem_state_iter it;
	unsigned int i = 0, state, o, eo;
	int d;

	if (!gt_check(ctx, !r->overflow))
		return false;
	kvm_gmem_state_for_each_range(&f->s, &it, 0, f->nr) {
		if (!gt_check(ctx, i < r->nr))
			return false;
		if (!gt_check_eq(ctx, it.index, r->run[i].start))
			return false;
		if (!gt_check_eq(ctx, it.run_end, r->run[i].end))
			return false;
		if (!gt_check_eq(ctx, it.state, r->run[i].state))
			return false;
		i++;
	}
	if (!gt_check_eq(ctx, i, r->nr))
		return false;

	for (i = 0; i < r->nr; i++) {
		for (d = -1; d <= 1; d++) {
			pgoff_t edges[2] = { r->run[i].start, r->run[i].end - 1 };
			unsigned int e;

			for (e = 0; e < 2; e++) {
				pgoff_t x = edges[e] + d;

				if (x >= f->nr)
					continue;
				state = kvm_gmem_state_lookup(&f->s, x, 18, &o);
				if (!gt_check_eq(ctx, state,
						 gt_runs_lookup(r, f->nr, x, 18, &eo)))
					return false;
				if (!gt_check_eq(ctx, o, eo))
					return false;
				kvm_gmem_state_lookup(&f->s, x, 9, &o);
				gt_runs_lookup(r, f->nr, x, 9, &eo);
				if (!gt_check_eq(ctx, o, eo))
					return false;
			}
		}
	}

	st = gt_stats(f);
	if (!gt_check_eq(ctx, st.tree_entries, gt_runs_entries(r, f->nr)))
		return false;
	return true;
}

/* Runs of a diagram line (one char per @unit pages). */
static void gt_diagram_runs(struct gt_runs *r, const char *d, pgoff_t unit,
			    pgoff_t nr)
{
	unsigned long i, len = strlen(d);

	r->nr = 0;
	for (i = 0; i < len; i++)
		gt_runs_add(r, i * unit, min((i + 1) * unit, nr),
			    gt_char_state(d[i]));
}

/* Build a file in the state of a diagram, starting from all private. */
static int gt_open_diagram(struct gt_file *f, const char *d, pgoff_t unit)
{
	unsigned long i, len = strlen(d);
	int ret;

	ret = gt_open(f, len * unit, 0);
	if (ret)
		return ret;
	for (i = 0; i < len && !ret; i++) {
		unsigned int st = gt_char_state(d[i]);

		if (st)
			ret = gt_update(f, i * unit, (i + 1) * unit, st, 0);
	}
	if (ret)
		gt_close(f);
	return ret;
}

struct gt_diagram_case {
	const char *name;
	pgoff_t unit;
	const char *before;
	const char *op;		/* '^' under the units the operation covers */
	unsigned int set;
	unsigned int clear;
	const char *after;
	unsigned long entries;	/* expected tree entries afterwards */
};

#define B2M	KVM_GMEM_BLOCK_PAGES
#define B1G	KVM_GMEM_GIG_PAGES

static const struct gt_diagram_case gt_diagram_cases[] = {
	/*
	 *   0123456789
	 *   ..........   2M blocks, all private
	 *     ^^^        share
	 *   ..SSS.....   three ranges
	 */
	{ "split middle", B2M, "..........", "  ^^^", GT_SHARED, 0,
	  "..SSS.....", 3 },
	/*   ..SSS.....
	 *     ^^^        unshare: merges back into one range
	 */
	{ "merge back", B2M, "..SSS.....", "  ^^^", 0, GT_SHARED,
	  "..........", 1 },
	/*   SS..SS..SS   the op fills both holes: one range */
	{ "merge holes", B2M, "SS..SS..SS", "  ^^^^^^", GT_SHARED, 0,
	  "SSSSSSSSSS", 1 },
	/*   ..........   first unit, last unit */
	{ "boundary 0", B2M, "..........", "^", GT_SHARED, 0,
	  "S.........", 2 },
	{ "boundary end", B2M, "..........", "         ^", GT_SHARED, 0,
	  ".........S", 2 },
	{ "whole file", B2M, "S.G.g.S..S", "^^^^^^^^^^", 0,
	  GT_SHARED | GT_GSHARED, "..........", 1 },
	/*   S.SG..       |= GUEST_SHARED keeps the other bit per range */
	{ "or keeps bits", B2M, "S.SG..", "^^^^^^", GT_GSHARED, 0,
	  "GgGGgg", 4 },
	/*   GGGG         &= ~SHARED on the middle */
	{ "andnot", B2M, "GGGG", " ^^ ", 0, GT_SHARED, "GggG", 3 },
	/* Pages: a fragmented 2M block is one chunk entry. */
	{ "pages chunk", 1, "........", " ^  ", GT_SHARED, 0,
	  ".S......", 1 },
	{ "pages every other", 1, "S.S.S.S.S.S.S.S.", " ^",
	  GT_SHARED, 0, "SSS.S.S.S.S.S.S.", 1 },
	{ "pages collapse", 1, "S.S.S.S.", " ^ ^ ^ ^", GT_SHARED, 0,
	  "SSSSSSSS", 1 },
	/* 1G units: orders up to 18. */
	{ "1G split", B1G, "...", " ^", GT_SHARED, 0, ".S.", 3 },
	{ "1G merge", B1G, ".S.", "^ ^", GT_SHARED, 0, "SSS", 1 },
};

static bool gt_one_diagram(void *ctx, const struct gt_diagram_case *c)
{
	unsigned long i, len = strlen(c->before), olen = strlen(c->op);
	pgoff_t os = 0, oe = 0;
	struct gt_file f;
	struct gt_runs r;

	for (i = 0; i < olen; i++) {
		if (c->op[i] != '^')
			continue;
		if (!oe)
			os = i;
		oe = i + 1;
	}
	if (!gt_check_eq(ctx, gt_open_diagram(&f, c->before, c->unit), 0))
		return false;
	gt_diagram_runs(&r, c->before, c->unit, f.nr);
	if (!gt_check_call(ctx, gt_check_runs(ctx, &f, &r)))
		return false;
	if (!gt_check_eq(ctx, gt_update(&f, os * c->unit, oe * c->unit, c->set,
					c->clear), 0))
		return false;
	gt_diagram_runs(&r, c->after, c->unit, f.nr);
	if (!gt_check_call(ctx, gt_check_runs(ctx, &f, &r)))
		return false;
	if (!gt_check_eq(ctx, gt_stats(&f).tree_entries, c->entries))
		return false;
	if (!gt_check_eq(ctx, strlen(c->after), len))
		return false;
	gt_close(&f);
	return true;
}

static bool test_diagrams(void *ctx)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(gt_diagram_cases); i++) {
		if (!gt_one_diagram(ctx, &gt_diagram_cases[i])) {
			gmem_test_fail(ctx, __FILE__, __LINE__, "case '%s'",
				       gt_diagram_cases[i].name);
			return false;
		}
	}
	return true;
}

/* Empty (1 page) and full files, odd sizes, initial states. */
static bool test_init_sizes(void *ctx)
{
	static const pgoff_t sizes[] = { 1, 2, 511, 512, 513, 1023,
					 B1G - 1, B1G, B1G + 1 };
	struct gt_file f;
	struct gt_runs r;
	unsigned int i, st, st2, o;

	for (i = 0; i < ARRAY_SIZE(sizes); i++) {
		for (st = 0; st <= KVM_GMEM_STATE_MASK; st++) {
			if (!gt_check_eq(ctx, gt_open(&f, sizes[i], st), 0))
				return false;
			r.nr = 0;
			gt_runs_add(&r, 0, sizes[i], st);
			if (!gt_check_call(ctx, gt_check_runs(ctx, &f, &r)))
				return false;
			st2 = kvm_gmem_state_lookup(&f.s, sizes[i] - 1, 18, &o);
			if (!gt_check_eq(ctx, st2, st))
				return false;
			/* Converting everything back and forth: one range. */
			if (!gt_check_eq(ctx, gt_update(&f, 0, sizes[i], GT_SHARED, 0), 0))
				return false;
			if (!gt_check_eq(ctx, gt_update(&f, 0, sizes[i], 0, GT_SHARED), 0))
				return false;
			if (!gt_check_eq(ctx, gt_stats(&f).tree_entries, 1))
				return false;
			gt_close(&f);
		}
	}
	if (!gt_check(ctx, gt_open(&f, 0, 0) == -EINVAL))
		return false;
	if (!gt_check_eq(ctx, gt_open(&f, 4, 0), 0))
		return false;
	if (!gt_check(ctx, gt_update(&f, 0, 5, GT_SHARED, 0) == -EINVAL))
		return false;
	if (!gt_check(ctx, gt_update(&f, 2, 2, GT_SHARED, 0) == -EINVAL))
		return false;
	if (!gt_check(ctx, gt_update(&f, 0, 1, 0x4, 0) == -EINVAL))
		return false;
	if (!gt_check(ctx, gt_set_missing(&f, 3, 5) == -EINVAL))
		return false;
	gt_close(&f);
	return true;
}

/* Page-granular edits around 2M and 1G boundaries and the file end. */
static bool test_boundaries(void *ctx)
{
	const pgoff_t nr = 2 * B1G + 3 * B2M + 5;
	static const long deltas[] = { -1, 0, 1 };
	pgoff_t marks[] = { 0, B2M, 2 * B2M, B1G, B1G + B2M, 2 * B1G,
			    nr - 5, nr - 1 };
	struct gt_file f;
	struct gt_runs r;
	unsigned int i, j, k;

	for (i = 0; i < ARRAY_SIZE(marks); i++) {
		for (j = 0; j < ARRAY_SIZE(deltas); j++) {
			pgoff_t s = marks[i] + deltas[j];

			for (k = 1; k <= 3; k++) {
				pgoff_t len = k == 1 ? 1 : k == 2 ? B2M + 1 : B1G;
				pgoff_t e;

				if ((long)s < 0 || s >= nr)
					continue;
				e = min(s + len, nr);
				if (!gt_check_eq(ctx, gt_open(&f, nr, 0), 0))
					return false;
				if (!gt_check_eq(ctx, gt_update(&f, s, e, GT_SHARED, 0), 0))
					return false;
				r.nr = 0;
				gt_runs_add(&r, 0, s, 0);
				gt_runs_add(&r, s, e, GT_SHARED);
				gt_runs_add(&r, e, nr, 0);
				if (!gt_check_call(ctx, gt_check_runs(ctx, &f, &r)))
					return false;
				/* And back: a single range again. */
				if (!gt_check_eq(ctx, gt_update(&f, s, e, 0, GT_SHARED), 0))
					return false;
				r.nr = 0;
				gt_runs_add(&r, 0, nr, 0);
				if (!gt_check_call(ctx, gt_check_runs(ctx, &f, &r)))
					return false;
				if (!gt_check_eq(ctx, gt_stats(&f).chunks, 0))
					return false;
				gt_close(&f);
			}
		}
	}
	return true;
}

/* 1 TiB and MAX_LFS_FILESIZE files: nothing may cost per page. */
static bool test_huge_files(void *ctx)
{
	static const pgoff_t sizes[] = { GT_1T, 64 * GT_1T + 7, GT_MAX_PAGES };
	struct gt_file f;
	struct gt_runs r;
	unsigned int i, o;

	for (i = 0; i < ARRAY_SIZE(sizes); i++) {
		pgoff_t nr = sizes[i];
		pgoff_t a = nr - 3 * B1G - 17, b = nr - B2M + 1;

		if (!gt_check_eq(ctx, gt_open(&f, nr, GT_SHARED), 0))
			return false;
		if (!gt_check_eq(ctx, gt_update(&f, a, b, GT_GSHARED, GT_SHARED), 0))
			return false;
		if (!gt_check_eq(ctx, gt_update(&f, nr - 1, nr, 0, GT_SHARED), 0))
			return false;
		if (!gt_check_eq(ctx, gt_update(&f, 0, 1, 0, GT_SHARED), 0))
			return false;
		r.nr = 0;
		gt_runs_add(&r, 0, 1, 0);
		gt_runs_add(&r, 1, a, GT_SHARED);
		gt_runs_add(&r, a, b, GT_GSHARED);
		gt_runs_add(&r, b, nr - 1, GT_SHARED);
		gt_runs_add(&r, nr - 1, nr, 0);
		if (!gt_check_call(ctx, gt_check_runs(ctx, &f, &r)))
			return false;
		if (!gt_check_eq(ctx, kvm_gmem_state_lookup(&f.s, nr / 2, 18, &o),
				 GT_SHARED))
			return false;
		if (!gt_check_eq(ctx, o, 18))
			return false;
		/*
		 * Ranges cost bytes, the file size only its 1G table: 9 bytes
		 * per 1G block, and a leaf (a byte and a chunk pointer per 2M
		 * block) for each of the three 1G blocks with a chunk.
		 */
		if (!gt_check(ctx, gt_stats(&f).bytes <
			      8192 + (f.s.gig_state ? 9 * DIV_ROUND_UP(nr, B1G) +
				      3 * (B1G / B2M) * (1 + sizeof(void *)) : 0)))
			return false;

		/* Userfault bits near the end where the table fits. */
		if (nr / B1G < KVM_GMEM_MAX_GIGS) {
			if (!gt_check_eq(ctx, gt_set_missing(&f, nr - B1G - 3, nr - 2), 0))
				return false;
			/* Part of [a, b) is missing now. */
			r.nr = 0;
			gt_runs_add(&r, 0, 1, 0);
			gt_runs_add(&r, 1, a, GT_SHARED);
			gt_runs_add(&r, a, nr - B1G - 3, GT_GSHARED);
			gt_runs_add(&r, nr - B1G - 3, b, GT_GSHARED | GT_MISSING);
			gt_runs_add(&r, b, nr - 2, GT_SHARED | GT_MISSING);
			gt_runs_add(&r, nr - 2, nr - 1, GT_SHARED);
			gt_runs_add(&r, nr - 1, nr, 0);
			if (!gt_check_call(ctx, gt_check_runs(ctx, &f, &r)))
				return false;
			if (!gt_check_eq(ctx, kvm_gmem_state_clear_missing_one(&f.s, nr - 3),
					 KVM_GMEM_UF_CLEARED))
				return false;
			if (!gt_check_eq(ctx, kvm_gmem_state_clear_missing_one(&f.s, nr - 3),
					 KVM_GMEM_UF_NOT_MISSING))
				return false;
		} else {
			if (!gt_check(ctx, gt_set_missing(&f, nr - 2, nr - 1) == -ENOMEM))
				return false;
		}
		gt_close(&f);
	}
	return true;
}

/* Userfault bits: summaries, orders, the clear result and waiters. */
static bool test_userfault(void *ctx)
{
	const pgoff_t nr = 3 * B1G + 100;
	struct gt_file f;
	unsigned int o;
	pgoff_t i;

	if (!gt_check_eq(ctx, gt_open(&f, nr, 0), 0))
		return false;
	if (!gt_check_eq(ctx, kvm_gmem_state_clear_missing_one(&f.s, 5),
			 KVM_GMEM_UF_NOT_MISSING))
		return false;
	if (!gt_check_eq(ctx, kvm_gmem_state_lookup(&f.s, 5, 18, &o), 0))
		return false;
	if (!gt_check_eq(ctx, o, 18))
		return false;

	/* One missing page in the second 2M block of the second 1G block. */
	if (!gt_check_eq(ctx, gt_set_missing(&f, B1G + B2M + 7, B1G + B2M + 8), 0))
		return false;
	if (!gt_check_eq(ctx, kvm_gmem_state_lookup(&f.s, B1G + B2M + 7, 18, &o),
			 GT_MISSING))
		return false;
	if (!gt_check_eq(ctx, o, 0))
		return false;
	kvm_gmem_state_lookup(&f.s, B1G + B2M + 8, 18, &o);
	if (!gt_check_eq(ctx, o, 0))
		return false;
	kvm_gmem_state_lookup(&f.s, B1G, 18, &o);
	if (!gt_check_eq(ctx, o, 9))
		return false;
	kvm_gmem_state_lookup(&f.s, 0, 18, &o);
	if (!gt_check_eq(ctx, o, 18))
		return false;
	kvm_gmem_state_lookup(&f.s, 2 * B1G, 18, &o);
	if (!gt_check_eq(ctx, o, 18))
		return false;
	/* The tail past the last whole 1G block maps at most 2M. */
	kvm_gmem_state_lookup(&f.s, 3 * B1G, 18, &o);
	if (!gt_check_eq(ctx, o, 0))
		return false;

	kvm_gmem_state_wait_prepare(&f.s);
	if (!gt_check_eq(ctx, kvm_gmem_state_clear_missing_one(&f.s, B1G + B2M + 7),
			 KVM_GMEM_UF_WAKE))
		return false;
	kvm_gmem_state_wait_finish(&f.s);
	kvm_gmem_state_lookup(&f.s, B1G + B2M + 8, 18, &o);
	if (!gt_check_eq(ctx, o, 18))
		return false;

	/* Every other page of a 2M block: the summary clears on the last. */
	for (i = 0; i < B2M; i += 2)
		if (!gt_check_eq(ctx, gt_set_missing(&f, B2M + i, B2M + i + 1), 0))
			return false;
	for (i = 0; i < B2M; i += 2) {
		kvm_gmem_state_lookup(&f.s, B2M + 1, 18, &o);
		if (!gt_check_eq(ctx, o, 0))
			return false;
		if (!gt_check_eq(ctx, kvm_gmem_state_clear_missing_one(&f.s, B2M + i),
				 KVM_GMEM_UF_CLEARED))
			return false;
	}
	kvm_gmem_state_lookup(&f.s, B2M + 1, 18, &o);
	if (!gt_check_eq(ctx, o, 18))
		return false;

	/* A range across 1G boundaries, cleared from the middle. */
	if (!gt_check_eq(ctx, gt_set_missing(&f, B1G - 3, 2 * B1G + 3), 0))
		return false;
	gt_clear_missing(&f, B1G + 1, 2 * B1G);
	kvm_gmem_state_lookup(&f.s, B1G + B2M, 18, &o);
	if (!gt_check_eq(ctx, o, 9))
		return false;
	kvm_gmem_state_lookup(&f.s, 0, 18, &o);
	if (!gt_check_eq(ctx, o, 9))
		return false;
	if (!gt_check_eq(ctx, kvm_gmem_state_lookup(&f.s, B1G, 9, &o), GT_MISSING))
		return false;
	gt_clear_missing(&f, 0, nr);
	for (i = 0; i < 3; i++) {
		kvm_gmem_state_lookup(&f.s, i * B1G, 18, &o);
		if (!gt_check_eq(ctx, o, 18))
			return false;
	}
	/* Max order is honoured. */
	kvm_gmem_state_lookup(&f.s, 0, 12, &o);
	if (!gt_check_eq(ctx, o, 9))
		return false;
	kvm_gmem_state_lookup(&f.s, 0, 0, &o);
	if (!gt_check_eq(ctx, o, 0))
		return false;
	gt_close(&f);
	return true;
}

/* A 1G block gets a leaf when it stops being uniform, and only then. */
static bool test_leaves(void *ctx)
{
	struct gt_file f;

	if (!gt_check_eq(ctx, gt_open(&f, 2 * B1G, 0), 0))
		return false;
	/* Whole 1G blocks stay uniform. */
	if (!gt_check_eq(ctx, gt_update(&f, B1G, 2 * B1G, GT_SHARED, 0), 0))
		return false;
	/* Covers the first 1G block in part, but changes nothing there. */
	if (!gt_check_eq(ctx, gt_update(&f, 100, 2 * B1G, 0, GT_SHARED), 0))
		return false;
	if (!gt_check_eq(ctx, f.s.nr_blk_leaves, 0))
		return false;
	if (!gt_check_eq(ctx, gt_update(&f, 100, 101, GT_SHARED, 0), 0))
		return false;
	if (!gt_check_eq(ctx, f.s.nr_blk_leaves, 1))
		return false;
	/* The mixed 1G block is one entry, the private one another. */
	if (!gt_check_eq(ctx, gt_stats(&f).tree_entries, 2))
		return false;
	/* Uniform again: the leaf stays, the tree is one range again. */
	if (!gt_check_eq(ctx, gt_update(&f, 100, 101, 0, GT_SHARED), 0))
		return false;
	if (!gt_check_eq(ctx, f.s.nr_blk_leaves, 1))
		return false;
	if (!gt_check_eq(ctx, gt_stats(&f).tree_entries, 1))
		return false;
	if (!gt_check_eq(ctx, gt_stats(&f).chunks, 0))
		return false;
	gt_close(&f);
	return true;
}

/* Fragmentation on purpose must stay within the fixed bounds. */
static bool test_fragmented_bound(void *ctx)
{
	const pgoff_t nr = B1G;
	struct kvm_gmem_state_stats st;
	struct gt_file f;
	pgoff_t i;

	if (!gt_check_eq(ctx, gt_open(&f, nr, 0), 0))
		return false;
	for (i = 0; i < nr; i += 2)
		if (!gt_check_eq(ctx, gt_update(&f, i, i + 1,
						GT_SHARED | GT_GSHARED, 0), 0))
			return false;
	st = gt_stats(&f);
	if (!gt_check_eq(ctx, st.chunks, nr / B2M))
		return false;
	if (!gt_check(ctx, st.bytes <= 128 * 1024))
		return false;
	/* Converting back leaves the minimum: one range, no chunk. */
	if (!gt_check_eq(ctx, gt_update(&f, 0, nr, 0, GT_SHARED | GT_GSHARED), 0))
		return false;
	st = gt_stats(&f);
	if (!gt_check_eq(ctx, st.tree_entries, 1))
		return false;
	if (!gt_check_eq(ctx, st.chunks, 0))
		return false;

	for (i = 0; i < nr; i += 2)
		if (!gt_check_eq(ctx, gt_set_missing(&f, i, i + 1), 0))
			return false;
	st = gt_stats(&f);
	if (!gt_check(ctx, st.bytes <= 40 * 1024))
		return false;
	gt_close(&f);
	return true;
}

/* The iterator yields maximal runs across entries, chunks and bits. */
static bool test_iterator(void *ctx)
{
	struct gt_file f;
	struct kvm_gmem_state_iter it;
	struct gt_runs r;
	unsigned int n = 0;

	if (!gt_check_eq(ctx, gt_open(&f, 4 * B2M, 0), 0))
		return false;
	/* Chunk in block 1 whose tail equals block 2's value: one run. */
	if (!gt_check_eq(ctx, gt_update(&f, B2M + 100, 3 * B2M, GT_SHARED, 0), 0))
		return false;
	if (!gt_check_eq(ctx, gt_set_missing(&f, 2 * B2M + 10, 2 * B2M + 20), 0))
		return false;
	r.nr = 0;
	gt_runs_add(&r, 0, B2M + 100, 0);
	gt_runs_add(&r, B2M + 100, 2 * B2M + 10, GT_SHARED);
	gt_runs_add(&r, 2 * B2M + 10, 2 * B2M + 20, GT_SHARED | GT_MISSING);
	gt_runs_add(&r, 2 * B2M + 20, 3 * B2M, GT_SHARED);
	gt_runs_add(&r, 3 * B2M, 4 * B2M, 0);
	if (!gt_check_call(ctx, gt_check_runs(ctx, &f, &r)))
		return false;
	/* A window in the middle of runs. */
	kvm_gmem_state_for_each_range(&f.s, &it, B2M + 50, 2 * B2M + 15)
		n++;
	if (!gt_check_eq(ctx, n, 3))
		return false;
	if (!gt_check_eq(ctx, it.run_end, 2 * B2M + 15))
		return false;
	if (!gt_check_eq(ctx, it.state, GT_SHARED | GT_MISSING))
		return false;
	gt_close(&f);
	return true;
}

#ifdef GMEM_TEST_FAIL_INJECT
/* A copy of everything observable, to prove a failed call changed nothing. */
struct gt_snapshot {
	struct gt_runs r;
	struct kvm_gmem_state_stats st;
};

static bool gt_snap(void *ctx, struct gt_file *f, struct gt_snapshot *snap)
{
	struct kvm_gmem_state_iter it;

	snap->r.nr = 0;
	kvm_gmem_state_for_each_range(&f->s, &it, 0, f->nr) {
		if (!gt_check(ctx, snap->r.nr < GT_MAX_RUNS))
			return false;
		gt_runs_add(&snap->r, it.index, it.run_end, it.state);
	}
	snap->st = gt_stats(f);
	return true;
}

enum gt_op { GT_OP_UPDATE, GT_OP_SET_MISSING };

/*
 * Run @op with the 1st, 2nd, ... allocation failing until it succeeds;
 * every failure must return -ENOMEM and leave the file unchanged.
 */
static bool gt_fail_every_alloc(void *ctx, struct gt_file *f, enum gt_op op,
				pgoff_t s, pgoff_t e, unsigned int set,
				unsigned int clear, unsigned long *nr_failed)
{
	struct gt_snapshot before, after;
	bool pending;
	long n;
	int ret;

	if (!gt_check_call(ctx, gt_snap(ctx, f, &before)))
		return false;
	for (n = 1; ; n++) {
		gmem_test_fail_nth(n);
		if (op == GT_OP_UPDATE)
			ret = gt_update(f, s, e, set, clear);
		else
			ret = gt_set_missing(f, s, e);
		pending = gmem_test_fail_pending();
		gmem_test_fail_nth(0);
		if (!ret)
			break;
		if (!gt_check(ctx, ret == -ENOMEM))
			return false;
		if (!gt_check(ctx, !pending))
			return false;
		if (!gt_check_call(ctx, gt_snap(ctx, f, &after)))
			return false;
		if (!gt_check_call(ctx, gt_check_runs(ctx, f, &before.r)))
			return false;
		if (!gt_check_eq(ctx, after.st.tree_entries, before.st.tree_entries))
			return false;
		if (!gt_check_eq(ctx, after.st.chunks, before.st.chunks))
			return false;
		if (!gt_check_eq(ctx, after.st.uf_leaves, before.st.uf_leaves))
			return false;
		if (!gt_check_eq(ctx, after.st.bytes, before.st.bytes))
			return false;
		(*nr_failed)++;
	}
	/* The call succeeded without reaching the armed failure. */
	if (!gt_check(ctx, pending))
		return false;
	return true;
}

static bool test_alloc_failure(void *ctx)
{
	const pgoff_t nr = 2 * B1G + 3 * B2M + 17;
	unsigned long failed = 0;
	struct gt_file f;
	pgoff_t i;
	long n;
	int ret;

	/* Init of a shared file allocates the first tree node. */
	for (n = 1; ; n++) {
		gmem_test_fail_nth(n);
		ret = gt_open(&f, nr, GT_SHARED);
		if (!ret)
			break;
		if (!gt_check(ctx, ret == -ENOMEM))
			return false;
		failed++;
	}
	gmem_test_fail_nth(0);

	/* Split a range (one structural store): preallocation fails. */
	if (!gt_check_call(ctx, gt_fail_every_alloc(ctx, &f, GT_OP_UPDATE, B2M, 3 * B2M,
						    0, GT_SHARED, &failed)))
		return false;
	/* A new chunk inside a value range. */
	if (!gt_check_call(ctx, gt_fail_every_alloc(ctx, &f, GT_OP_UPDATE, 5, 6,
						    0, GT_SHARED, &failed)))
		return false;
	/* Modify a chunk (copy on write), then collapse it (merge). */
	if (!gt_check_call(ctx, gt_fail_every_alloc(ctx, &f, GT_OP_UPDATE, 7, 9,
						    0, GT_SHARED, &failed)))
		return false;
	if (!gt_check_call(ctx, gt_fail_every_alloc(ctx, &f, GT_OP_UPDATE, 0, B2M,
						    0, GT_SHARED, &failed)))
		return false;
	/* Unaligned range: head and tail chunks and a middle (copy path). */
	if (!gt_check_call(ctx, gt_fail_every_alloc(ctx, &f, GT_OP_UPDATE, B1G - 3,
						    B1G + 5 * B2M + 9, GT_GSHARED, 0,
						    &failed)))
		return false;
	/* Several merges at once (copy path) over the file end. */
	if (!gt_check_call(ctx, gt_fail_every_alloc(ctx, &f, GT_OP_UPDATE, 0, nr,
						    0, GT_GSHARED, &failed)))
		return false;
	/* Many chunks: the plan outgrows its inline runs. */
	for (i = 0; i < 10 * B2M; i += B2M)
		if (!gt_check_eq(ctx, gt_update(&f, i + 1, i + 2, GT_GSHARED, 0), 0))
			return false;
	if (!gt_check_call(ctx, gt_fail_every_alloc(ctx, &f, GT_OP_UPDATE, 0, 10 * B2M + 1,
						    0, GT_SHARED, &failed)))
		return false;
	if (!gt_check_call(ctx, gt_fail_every_alloc(ctx, &f, GT_OP_UPDATE, 3, 10 * B2M - 3,
						    GT_SHARED, GT_GSHARED, &failed)))
		return false;
	/* Userfault: the table, then leaves across 1G blocks. */
	if (!gt_check_call(ctx, gt_fail_every_alloc(ctx, &f, GT_OP_SET_MISSING, 3, 4,
						    0, 0, &failed)))
		return false;
	if (!gt_check_call(ctx, gt_fail_every_alloc(ctx, &f, GT_OP_SET_MISSING, B1G - 1,
						    nr, 0, 0, &failed)))
		return false;
	gt_close(&f);
	if (!gt_check(ctx, failed >= 12))
		return false;
	return true;
}
#endif /* GMEM_TEST_FAIL_INJECT */

/* Randomized test against a byte-per-page reference model. */

struct gt_rand {
	u64 s;
};

static u64 gt_rand_next(struct gt_rand *r)
{
	/* xorshift64* */
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return r->s * 0x2545F4914F6CDD1DULL;
}

static unsigned long gt_rand_below(struct gt_rand *r, unsigned long n)
{
	return n ? gt_rand_next(r) % n : 0;
}

struct gt_model {
	pgoff_t nr;
	u8 *page;		/* state | GT_MISSING per page */
	u16 *blk;		/* per 2M block: uniform value, or 0xffff */
	u8 *dirty;		/* per 2M block: blk[] must be recomputed */
};

static u16 gt_model_blk(struct gt_model *m, unsigned long b)
{
	pgoff_t s = b * B2M, e = min(s + B2M, m->nr), i;
	u16 v = m->page[s];

	if (!m->dirty[b])
		return m->blk[b];
	for (i = s + 1; i < e; i++) {
		if (m->page[i] != v) {
			v = 0xffff;
			break;
		}
	}
	m->blk[b] = v;
	m->dirty[b] = 0;
	return v;
}

static void gt_model_touch(struct gt_model *m, pgoff_t s, pgoff_t e)
{
	unsigned long b;

	for (b = s / B2M; b <= (e - 1) / B2M; b++)
		m->dirty[b] = 1;
}

static unsigned int gt_model_order(struct gt_model *m, pgoff_t index,
				   unsigned int max_order)
{
	u8 v = m->page[index];
	unsigned long b, b0;

	if (v & GT_MISSING)
		return 0;
	if (max_order >= 18) {
		b0 = round_down(index, B1G) / B2M;
		if ((b0 + B1G / B2M) * B2M <= m->nr) {
			for (b = b0; b < b0 + B1G / B2M; b++)
				if (gt_model_blk(m, b) != v)
					break;
			if (b == b0 + B1G / B2M)
				return 18;
		}
	}
	if (max_order >= 9) {
		b = index / B2M;
		if ((b + 1) * B2M <= m->nr && gt_model_blk(m, b) == v)
			return 9;
	}
	return 0;
}

/* Expected canonical tree entries of the model (see gt_runs_entries()). */
static unsigned long gt_model_entries(struct gt_model *m)
{
	unsigned long b, nb = DIV_ROUND_UP(m->nr, B2M), count = 0;
	bool table = gt_has_table(m->nr);
	unsigned int prev = ~0u;
	pgoff_t i;

	for (b = 0; b < nb; b++) {
		pgoff_t s = b * B2M, e = min(s + B2M, m->nr);
		unsigned int v = m->page[s] & KVM_GMEM_STATE_MASK;

		if (table && s + B1G <= m->nr) {
			/* A whole 1G block (s is at its start). */
			for (i = s + 1; i < s + B1G; i++)
				if ((m->page[i] & KVM_GMEM_STATE_MASK) != v)
					break;
			if (i < s + B1G)
				v = GT_LEAF_ENTRY;
			if (v != prev) {
				count++;
				prev = v;
			}
			b += B1G / B2M - 1;
			continue;
		}

		for (i = s + 1; i < e; i++)
			if ((m->page[i] & KVM_GMEM_STATE_MASK) != v)
				break;
		if (i < e) {
			count++;
			prev = ~0u;
		} else if (v != prev) {
			count++;
			prev = v;
		}
	}
	return count;
}

static bool gt_model_check_index(void *ctx, struct gt_file *f,
				 struct gt_model *m, pgoff_t x,
				 unsigned int max_order)
{
	unsigned int st, o;

	if (x >= m->nr)
		return true;
	st = kvm_gmem_state_lookup(&f->s, x, max_order, &o);
	if (st != m->page[x] || o != gt_model_order(m, x, max_order)) {
		gmem_test_fail(ctx, __FILE__, __LINE__,
			       "index %lu: state %x order %u, model %x order %u",
			       x, st, o, m->page[x], gt_model_order(m, x, max_order));
		return false;
	}
	return true;
}

static bool gt_model_check_all(void *ctx, struct gt_file *f, struct gt_model *m)
{
	struct kvm_gmem_state_iter it;
	pgoff_t i;

	kvm_gmem_state_for_each_range(&f->s, &it, 0, m->nr) {
		for (i = it.index; i < it.run_end; i++)
			if (!gt_check_eq(ctx, m->page[i], it.state))
				return false;
		if (!gt_check(ctx, it.run_end == m->nr ||
			      m->page[it.run_end] != it.state))
			return false;
	}
	if (!gt_check_eq(ctx, gt_stats(f).tree_entries, gt_model_entries(m)))
		return false;
	return true;
}

/* A random position, biased towards 2M and 1G boundaries. */
static pgoff_t gt_rand_pos(struct gt_rand *r, pgoff_t nr)
{
	unsigned long k = gt_rand_below(r, 8);
	pgoff_t base;

	if (k < 3)
		return gt_rand_below(r, nr);
	base = k < 6 ? round_down(gt_rand_below(r, nr), B2M) :
		       round_down(gt_rand_below(r, nr), B1G);
	base += gt_rand_below(r, 5);
	base -= min_t(pgoff_t, base, gt_rand_below(r, 3));
	return min(base, nr - 1);
}

static pgoff_t gt_rand_len(struct gt_rand *r)
{
	unsigned long k = gt_rand_below(r, 1000);

	if (k < 500)
		return 1 + gt_rand_below(r, 8);
	if (k < 800)
		return 1 + gt_rand_below(r, 2 * B2M);
	if (k < 995)
		return B2M * (1 + gt_rand_below(r, 16));
	return 1 + gt_rand_below(r, 3 * B1G);
}

static bool gt_random_seed(void *ctx, u64 seed, unsigned long nr_ops,
			   pgoff_t nr)
{
	struct gt_rand r = { .s = seed ? seed : 1 };
	struct gt_model m = { .nr = nr };
	unsigned long op, nb = DIV_ROUND_UP(nr, B2M);
	struct gt_file f;
	bool ok = false;
	int ret;

	m.page = kvzalloc(nr, GFP_KERNEL);
	m.blk = kvcalloc(nb, sizeof(*m.blk), GFP_KERNEL);
	m.dirty = kvzalloc(nb, GFP_KERNEL);
	if (!m.page || !m.blk || !m.dirty)
		goto free;
	memset(m.dirty, 1, nb);
	if (gt_open(&f, nr, 0))
		goto free;

	for (op = 0; op < nr_ops; op++) {
		pgoff_t s = gt_rand_pos(&r, nr);
		pgoff_t e = min(s + gt_rand_len(&r), nr);
		unsigned int kind = gt_rand_below(&r, 100);
		unsigned int set = gt_rand_below(&r, 4), clear = gt_rand_below(&r, 4);
		bool inject = false;
		pgoff_t i;

#ifdef GMEM_TEST_FAIL_INJECT
		inject = gt_rand_below(&r, 64) == 0;
		if (inject)
			gmem_test_fail_nth(1 + gt_rand_below(&r, 4));
#endif
		if (kind < 70) {
			bool changed = false;

			for (i = s; i < e; i++)
				changed |= ((m.page[i] | set) & ~clear &
					    KVM_GMEM_STATE_MASK) !=
					   (m.page[i] & KVM_GMEM_STATE_MASK);
			ret = gt_update_raw(&f, s, e, set, clear);
			/* It says whether a page changed, and only then. */
			if (ret >= 0 && !gt_check_eq(ctx, ret, changed))
				goto report;
			if (ret >= 0) {
				ret = 0;
				for (i = s; i < e; i++)
					m.page[i] = (m.page[i] & GT_MISSING) |
						    ((m.page[i] | set) & ~clear &
						     KVM_GMEM_STATE_MASK);
			}
		} else if (kind < 80) {
			ret = gt_set_missing(&f, s, e);
			if (!ret) {
				for (i = s; i < e; i++)
					m.page[i] |= GT_MISSING;
			}
		} else if (kind < 85) {
			gt_clear_missing(&f, s, e);
			ret = 0;
			for (i = s; i < e; i++)
				m.page[i] &= ~GT_MISSING;
		} else {
			enum kvm_gmem_uf_clear c;

			c = kvm_gmem_state_clear_missing_one(&f.s, s);
			ret = 0;
			if (c != (m.page[s] & GT_MISSING ? KVM_GMEM_UF_CLEARED :
						     KVM_GMEM_UF_NOT_MISSING)) {
				gmem_test_fail(ctx, __FILE__, __LINE__,
					       "clear_one %lu: %d", s, c);
				goto close;
			}
			m.page[s] &= ~GT_MISSING;
			e = s + 1;
		}
#ifdef GMEM_TEST_FAIL_INJECT
		if (inject)
			gmem_test_fail_nth(0);
#endif
		if (ret && !(inject && ret == -ENOMEM)) {
			gmem_test_fail(ctx, __FILE__, __LINE__,
				       "op %lu kind %u [%lu, %lu) returned %d",
				       op, kind, s, e, ret);
			goto close;
		}
		gt_model_touch(&m, s, e);

		if (!gt_model_check_index(ctx, &f, &m, s, 18) ||
		    !gt_model_check_index(ctx, &f, &m, e - 1, 18) ||
		    !gt_model_check_index(ctx, &f, &m, e, 9) ||
		    (s && !gt_model_check_index(ctx, &f, &m, s - 1, 18)) ||
		    !gt_model_check_index(ctx, &f, &m, gt_rand_below(&r, nr), 18))
			goto report;
		if ((op & 0x3fff) == 0 && !gt_model_check_all(ctx, &f, &m))
			goto report;
	}
	ok = gt_model_check_all(ctx, &f, &m);
	if (ok) {
		/* Back to all private and present: the minimum again. */
		gt_update(&f, 0, nr, 0, KVM_GMEM_STATE_MASK);
		gt_clear_missing(&f, 0, nr);
		ok = gt_stats(&f).tree_entries == 1 && gt_stats(&f).chunks == 0;
		if (!ok)
			gmem_test_fail(ctx, __FILE__, __LINE__, "not minimal");
	}
	goto close;
report:
	gmem_test_fail(ctx, __FILE__, __LINE__, "seed %llu failed at op %lu",
		       (unsigned long long)seed, op);
close:
	gt_close(&f);
free:
	kvfree(m.page);
	kvfree(m.blk);
	kvfree(m.dirty);
	return ok;
}

static bool test_random(void *ctx)
{
	/* Two 1G blocks, a few 2M blocks and a partial one. */
	pgoff_t nr = 2 * B1G + 3 * B2M + 77;

	if (!gt_random_seed(ctx, gmem_test_seed(ctx), GMEM_TEST_RANDOM_OPS, nr))
		return false;
	/* Whole 1G blocks only: every block may get a leaf. */
	if (!gt_random_seed(ctx, gmem_test_seed(ctx) ^ 1,
			    GMEM_TEST_RANDOM_OPS / 4, 3 * B1G))
		return false;
	/*
	 * A last 1G block of 511 2M blocks and a bit, which only the tree
	 * describes: up to a thousand entries, so that single stores into
	 * the live tree split, rebalance and span its nodes.
	 */
	return gt_random_seed(ctx, gmem_test_seed(ctx) ^ 2,
			      GMEM_TEST_RANDOM_OPS / 4, 2 * B1G - B2M + 77);
}

#endif /* __KVM_GMEM_STATE_TEST_H */
