// SPDX-License-Identifier: GPL-2.0-only
/*
 * The one lookup: faultability ranges and userfault bits of a guest_memfd
 * inode. See state.h for the model.
 *
 * Faultability tree
 * -----------------
 * Inside the file every index has a non-NULL entry: xa_mk_value(state) for
 * a range of whole 2M blocks with one state (the last block may be cut
 * short by the end of the file); GMEM_LEAF_ENTRY, a value too, for a range
 * of whole 1G blocks that are not uniform, whose 2M blocks their leaves in
 * the 1G table describe (see below); or, only where there is no leaf (the
 * partial 1G block at the end of the file, files without a 1G table), a
 * chunk pointer for exactly one 2M block whose pages differ. Beyond the
 * file the tree is NULL. Keeping state 0 as a value (not NULL) means no
 * store ever extends itself over a neighbouring NULL range, which makes
 * the allocation needs of a store predictable (see below). Equal
 * neighbouring values are always merged: the layout depends only on the
 * page states.
 *
 * Chunks are copy-on-write: a changed block gets a new chunk and the old one
 * is freed after an RCU grace period, so readers see one consistent block.
 * The one exception is the common single-page case: an update inside one
 * word of a chunk that leaves the block non-uniform stores that word in
 * place (gmem_update_word()); a page's state never spans words, so each
 * page still reads as before or after the update. The other single-page
 * case, the first page of a uniform 2M block to change, takes a short cut
 * too: in a 1G block that is not uniform, a new chunk in its leaf and no
 * tree store at all (gmem_update_leaf_split()); without a leaf, one new
 * chunk stored into the value range (gmem_update_split()).
 *
 * Every other update goes through the general path of
 * kvm_gmem_state_update(). It first plans, without changing anything and
 * allocating any new chunk, the new entry of every 2M block of the hull
 * of the request (gmem_plan_update()), then the tree entries: a whole 1G
 * block with a leaf becomes one entry, its state if it is uniform
 * afterwards, GMEM_LEAF_ENTRY if not, and the first and last entries merge
 * with equal neighbours (gmem_plan_tree()). A planned tree entry either
 *  - equals the existing entry (nothing to do),
 *  - replaces exactly one existing entry with the same range (an "exact
 *    fit" store: the maple tree swaps one slot and never allocates), or
 *  - is "structural": it splits or merges entries and may allocate nodes.
 * The exact fits are stored in place: each is one pointer store that
 * readers see atomically, and none can fail. A single structural entry is
 * stored in place too: mas_preallocate() reserves every node the store can
 * need before anything changes, so the commit cannot fail, and the tree,
 * in RCU mode as the VMA tree is for lockless VMA lookups, replaces the
 * nodes it rewrites copy-on-write (a reader sees the old or the new ones;
 * the old ones are freed after a grace period). Several structural
 * entries cannot be preallocated together (the second store's needs
 * depend on the first), so such an update is applied to a private
 * __mt_dup() copy of the tree outside RCU mode, which replaces the tree
 * under RCU; a failure just drops the copy. Only then, with nothing left
 * that can fail, do the leaves take the new 2M entries, and then the tree
 * its entries. Either way an allocation failure leaves the map exactly as
 * it was. A copy costs O(tree nodes); the tree stays small because a
 * fragmented 1G block costs one entry.
 *
 * Bound: a 2M block costs at most one chunk, and a 1G block one leaf, so a
 * file where every other page differs costs 512 chunks of 144 bytes plus a
 * leaf of 4.5 KiB per GiB, about 77 KiB.
 *
 * 1G table
 * --------
 * gig_state[] holds a byte per 1G block of the file: the state plus one if
 * one value entry covers the whole block, else 0. A whole 1G block that is
 * or was not uniform has a leaf in gig_blk[] (struct kvm_gmem_blk_leaf):
 * per 2M block the state plus one if the block has one state, else 0 and
 * a pointer to its chunk. A leaf always describes its block, uniform or
 * not; it is the only description of the 2M blocks of a block that is not
 * uniform, for which the tree holds GMEM_LEAF_ENTRY. Only a 1G block the
 * request covers in part can stop being uniform, so an update needs at
 * most two new leaves, allocated before anything changes; leaves are freed
 * only on destroy.
 *
 * Ordering: a new leaf is filled, then published; the leaves take an
 * update before the tree, and the 1G bytes follow the tree (with release
 * stores that lookups pair with acquire loads). So a 1G byte or a tree
 * entry that sends a reader to a leaf is stored after the leaf describes
 * the block, and a leaf of a block that is uniform before and after the
 * update is not read. Within a leaf, a 2M block turning into a chunk gets
 * its pointer, then its byte 0; one turning uniform its byte, then a NULL
 * pointer (gmem_leaf_set()): a reader that finds a NULL pointer behind a 0
 * byte reads the byte again (gmem_leaf_read()). So a reader sees each
 * block either before or after a concurrent update, as with the tree.
 *
 * A lookup in a file with the tables needs no tree walk except in the
 * partial 1G block at the end of the file; a file above
 * KVM_GMEM_MAX_GIGS (no tables) walks the tree, and as a value entry
 * covers whole 2M blocks and a chunk exactly one, the walk needs the span
 * of the entry only for a 1G order. The tables cost 9 bytes per GiB of
 * file plus 4.5 KiB per GiB that was ever not uniform.
 */
#include "internal.h"
#include "missing.h"

#define GMEM_PAGES_PER_WORD	(BITS_PER_LONG / KVM_GMEM_STATE_BITS)
#define GMEM_CHUNK_WORDS	(KVM_GMEM_BLOCK_PAGES / GMEM_PAGES_PER_WORD)
/* The state bits of every page of a word set to @st. */
#define GMEM_REP(st)		((unsigned long)(st) * (~0UL / KVM_GMEM_STATE_MASK))

struct kvm_gmem_chunk {
	unsigned long bits[GMEM_CHUNK_WORDS];
	union {
		struct rcu_head rcu;
		/* Planning lists (new or dead chunks), before any free. */
		struct kvm_gmem_chunk *next;
	};
};

struct kvm_gmem_state_tree {
	struct maple_tree mt;
	struct rcu_head rcu;
};

/*
 * Tree value of whole 1G blocks that are not uniform: their 2M blocks are
 * described by their leaves (files with a 1G table only).
 */
#define GMEM_LEAF		(KVM_GMEM_STATE_MASK + 1)
#define GMEM_LEAF_ENTRY		xa_mk_value(GMEM_LEAF)

/*
 * 1G leaf: per 2M block, the state plus one if the block has one state,
 * else 0 and the block's chunk; NULL chunk pointers for the others.
 */
struct kvm_gmem_blk_leaf {
	u8 val[KVM_GMEM_BLOCKS_PER_GIG];
	struct kvm_gmem_chunk __rcu *chunk[KVM_GMEM_BLOCKS_PER_GIG];
};

static struct kmem_cache *kvm_gmem_chunk_cache;
static struct kmem_cache *kvm_gmem_leaf_cache;

#define GMEM_MT_FLAGS		(MT_FLAGS_USE_RCU | MT_FLAGS_LOCK_EXTERN)
#define GMEM_GFP		KVM_GMEM_STATE_GFP

/*
 * guest_memfd's init and the KUnit suite both take the cache; they run one
 * after the other (module init, then the suite), never concurrently.
 */
static unsigned int kvm_gmem_chunk_cache_users;

int kvm_gmem_state_cache_init(void)
{
	if (kvm_gmem_chunk_cache_users++)
		return 0;
	kvm_gmem_chunk_cache = kmem_cache_create("kvm_gmem_state_chunk",
						 sizeof(struct kvm_gmem_chunk),
						 0, SLAB_ACCOUNT, NULL);
	kvm_gmem_leaf_cache = kmem_cache_create("kvm_gmem_state_leaf",
						sizeof(struct kvm_gmem_blk_leaf),
						0, SLAB_ACCOUNT, NULL);
	if (kvm_gmem_chunk_cache && kvm_gmem_leaf_cache)
		return 0;
	kmem_cache_destroy(kvm_gmem_chunk_cache);
	kmem_cache_destroy(kvm_gmem_leaf_cache);
	kvm_gmem_chunk_cache = NULL;
	kvm_gmem_leaf_cache = NULL;
	kvm_gmem_chunk_cache_users--;
	return -ENOMEM;
}

void kvm_gmem_state_cache_exit(void)
{
	if (WARN_ON_ONCE(!kvm_gmem_chunk_cache_users) ||
	    --kvm_gmem_chunk_cache_users)
		return;
	rcu_barrier();
	kmem_cache_destroy(kvm_gmem_chunk_cache);
	kmem_cache_destroy(kvm_gmem_leaf_cache);
	kvm_gmem_chunk_cache = NULL;
	kvm_gmem_leaf_cache = NULL;
}

static inline bool gmem_is_chunk(void *entry)
{
	return entry && !xa_is_value(entry);
}

static inline unsigned int gmem_chunk_get(const struct kvm_gmem_chunk *c,
					  unsigned long off)
{
	/* A word may change in place under a reader: see gmem_update_word(). */
	return (READ_ONCE(c->bits[off / GMEM_PAGES_PER_WORD]) >>
		((off % GMEM_PAGES_PER_WORD) * KVM_GMEM_STATE_BITS)) &
	       KVM_GMEM_STATE_MASK;
}

/* The 2M block of @index within its 1G block. */
static inline unsigned long gmem_blk_of(pgoff_t index)
{
	return (index >> KVM_GMEM_STATE_ORDER_2M) & (KVM_GMEM_BLOCKS_PER_GIG - 1);
}

/* Whether 1G block @g is wholly in a file with a 1G table (it has leaves). */
static inline bool gmem_gig_leafy(struct kvm_gmem_state *s, unsigned long g)
{
	return s->gig_blk &&
	       (g + 1) << KVM_GMEM_STATE_ORDER_1G <= s->nr_pages;
}

/*
 * Entry of 2M block @b of leaf @leaf: a value or its chunk. Under the RCU
 * read lock (chunks are freed after a grace period; leaves live until the
 * file goes). A writer turning a chunk into a value stores the byte and
 * then clears the pointer, and the other way round sets the pointer and
 * then the byte (gmem_leaf_set()): a cleared pointer behind a zero byte
 * means the byte has just changed, so read it again.
 */
static __always_inline void *gmem_leaf_read(struct kvm_gmem_blk_leaf *leaf,
					    unsigned long b)
{
	struct kvm_gmem_chunk *c;
	u8 v;

	for (;;) {
		/* Pairs with the release store in gmem_leaf_set(). */
		v = smp_load_acquire(&leaf->val[b]);
		if (v)
			return xa_mk_value(v - 1);
		c = rcu_dereference(leaf->chunk[b]);
		if (c)
			return c;
		/* The pointer load before the byte load again. */
		smp_rmb();
		cpu_relax();
	}
}

/*
 * State of page @index from leaf @leaf, and the largest order, at most
 * @max_order, over which it is uniform (2M at most).
 */
static __always_inline unsigned int
gmem_leaf_lookup(struct kvm_gmem_blk_leaf *leaf, pgoff_t index,
		 unsigned int max_order, unsigned int *order)
{
	unsigned long b = gmem_blk_of(index);
	unsigned int st;
	void *entry;
	u8 v;

	/* A uniform block needs no RCU: pairs with gmem_leaf_set(). */
	v = smp_load_acquire(&leaf->val[b]);
	if (!v) {
		rcu_read_lock();
		entry = gmem_leaf_read(leaf, b);
		if (gmem_is_chunk(entry)) {
			st = gmem_chunk_get(entry,
					    index & (KVM_GMEM_BLOCK_PAGES - 1));
			rcu_read_unlock();
			*order = 0;
			return st;
		}
		rcu_read_unlock();
		v = xa_to_value(entry) + 1;
	}
	*order = max_order >= KVM_GMEM_STATE_ORDER_2M ?
		 KVM_GMEM_STATE_ORDER_2M : 0;
	return v - 1;
}

/*
 * State of page @pos of chunk @c, whose 2M block starts at @base, and in
 * *@span_end the end of the run of that state before @stop (at most the
 * end of the block).
 */
static unsigned int gmem_chunk_span(const struct kvm_gmem_chunk *c,
				    pgoff_t base, pgoff_t pos, pgoff_t stop,
				    pgoff_t *span_end)
{
	unsigned int st = gmem_chunk_get(c, pos - base);
	pgoff_t e;

	for (e = pos + 1; e < stop; e++)
		if (gmem_chunk_get(c, e - base) != st)
			break;
	*span_end = e;
	return st;
}

static void gmem_chunk_free_rcu(struct rcu_head *head)
{
	kmem_cache_free(kvm_gmem_chunk_cache,
			container_of(head, struct kvm_gmem_chunk, rcu));
}

static struct kvm_gmem_state_tree *gmem_tree_alloc(struct kvm_gmem_state *s)
{
	struct kvm_gmem_state_tree *t = kmalloc(sizeof(*t), GMEM_GFP);

	if (!t)
		return NULL;
	mt_init_flags(&t->mt, GMEM_MT_FLAGS);
	mt_set_external_lock(&t->mt, s->lock);
	return t;
}

static void gmem_tree_free_rcu(struct rcu_head *head)
{
	struct kvm_gmem_state_tree *t =
		container_of(head, struct kvm_gmem_state_tree, rcu);

	/*
	 * No reader and no writer is left: nothing to assert any more, and
	 * the nodes can go at once, outside RCU mode (as exit_mmap() does).
	 */
	mt_on_stack(t->mt);
	mt_clear_in_rcu(&t->mt);
	__mt_destroy(&t->mt);
	kfree(t);
}

static inline struct kvm_gmem_state_tree *gmem_tree_locked(struct kvm_gmem_state *s)
{
	return rcu_dereference_protected(s->tree, lockdep_is_held(s->lock));
}

/* Entry of 2M block @b of leaf @leaf: a value or its chunk. */
static void *gmem_leaf_entry(struct kvm_gmem_state *s,
			     struct kvm_gmem_blk_leaf *leaf, unsigned long b)
{
	u8 v = leaf->val[b];

	if (v)
		return xa_mk_value(v - 1);
	return rcu_dereference_protected(leaf->chunk[b],
					 lockdep_is_held(s->lock));
}

/*
 * Make @entry (a value or a chunk) the entry of 2M block @b of leaf @leaf,
 * in the order gmem_leaf_read() relies on.
 */
static void gmem_leaf_set(struct kvm_gmem_blk_leaf *leaf, unsigned long b,
			  void *entry)
{
	if (gmem_is_chunk(entry)) {
		rcu_assign_pointer(leaf->chunk[b], entry);
		/* The chunk before the byte that sends readers to it. */
		smp_store_release(&leaf->val[b], 0);
	} else {
		WRITE_ONCE(leaf->val[b], xa_to_value(entry) + 1);
		/*
		 * The byte before the cleared pointer that sends readers back
		 * to it; pairs with the smp_rmb() in gmem_leaf_read().
		 */
		smp_wmb();
		RCU_INIT_POINTER(leaf->chunk[b], NULL);
	}
}

/* The leaf of 1G block @g if its 2M blocks are described there, or NULL. */
static struct kvm_gmem_blk_leaf *gmem_leaf_locked(struct kvm_gmem_state *s,
						  unsigned long g)
{
	if (!gmem_gig_leafy(s, g) || s->gig_state[g])
		return NULL;
	return s->gig_blk[g];
}

int kvm_gmem_state_init(struct kvm_gmem_state *s, struct rw_semaphore *lock,
			pgoff_t nr_pages, unsigned int state)
{
	struct kvm_gmem_state_tree *t;
	unsigned long nr_gigs;
	int ret;

	if (!nr_pages || state & ~KVM_GMEM_STATE_MASK)
		return -EINVAL;

	memset(s, 0, sizeof(*s));
	s->lock = lock;
	s->nr_pages = nr_pages;
	spin_lock_init(&s->uf_lock);
	atomic_set(&s->uf_waiters, 0);

	nr_gigs = DIV_ROUND_UP(nr_pages, KVM_GMEM_GIG_PAGES);
	if (nr_gigs <= KVM_GMEM_MAX_GIGS) {
		s->gig_state = kvzalloc(nr_gigs, GMEM_GFP);
		s->gig_blk = kvcalloc(nr_gigs, sizeof(*s->gig_blk), GMEM_GFP);
		if (!s->gig_state || !s->gig_blk)
			goto nomem;
		/* Only whole 1G blocks can be mapped as one. */
		memset(s->gig_state, state + 1, nr_pages >> KVM_GMEM_STATE_ORDER_1G);
	}

	t = gmem_tree_alloc(s);
	if (!t)
		goto nomem;

	down_write(lock);
	{
		MA_STATE(mas, &t->mt, 0, nr_pages - 1);

		ret = mas_store_gfp(&mas, xa_mk_value(state), GMEM_GFP);
	}
	up_write(lock);
	if (ret) {
		kfree(t);
		goto nomem;
	}
	RCU_INIT_POINTER(s->tree, t);
	return 0;

nomem:
	kvfree(s->gig_state);
	kvfree(s->gig_blk);
	memset(s, 0, sizeof(*s));
	return -ENOMEM;
}

/* Free @leaf and, after a grace period, its chunks. */
static void gmem_leaf_free(struct kvm_gmem_blk_leaf *leaf)
{
	struct kvm_gmem_chunk *c;
	unsigned long b;

	if (!leaf)
		return;
	for (b = 0; b < KVM_GMEM_BLOCKS_PER_GIG; b++) {
		/* No reader or writer is left. */
		c = rcu_dereference_protected(leaf->chunk[b], true);
		if (c)
			call_rcu(&c->rcu, gmem_chunk_free_rcu);
	}
	kmem_cache_free(kvm_gmem_leaf_cache, leaf);
}

void kvm_gmem_state_destroy(struct kvm_gmem_state *s)
{
	struct kvm_gmem_state_tree *t;
	unsigned long g;
	void *entry;

	down_write(s->lock);
	t = gmem_tree_locked(s);
	if (t) {
		MA_STATE(mas, &t->mt, 0, 0);

		mas_for_each(&mas, entry, ULONG_MAX) {
			if (gmem_is_chunk(entry))
				call_rcu(&((struct kvm_gmem_chunk *)entry)->rcu,
					 gmem_chunk_free_rcu);
		}
		RCU_INIT_POINTER(s->tree, NULL);
		/* The file is going away: no reader is left. */
		mt_clear_in_rcu(&t->mt);
		__mt_destroy(&t->mt);
	}
	up_write(s->lock);
	kfree(t);

	kvm_gmem_missing_destroy(s);
	if (s->gig_blk) {
		for (g = 0; g < DIV_ROUND_UP(s->nr_pages, KVM_GMEM_GIG_PAGES); g++)
			gmem_leaf_free(s->gig_blk[g]);
	}
	kvfree(s->gig_blk);
	kvfree(s->gig_state);
	s->gig_blk = NULL;
	s->gig_state = NULL;
	s->nr_blk_leaves = 0;
	s->nr_chunks = 0;
}

/* Planning an update. */

struct gmem_run {
	pgoff_t first;
	pgoff_t last;
	void *entry;
};

#define GMEM_INLINE_RUNS	8

struct gmem_plan {
	struct gmem_run *runs;
	unsigned long nr;
	unsigned long cap;
	struct kvm_gmem_chunk *fresh;	/* allocated for this update */
	struct kvm_gmem_chunk *dead;	/* replaced by this update */
	unsigned long nr_fresh;
	unsigned long nr_dead;
	bool changed;			/* a page changes state */
	struct gmem_run inline_runs[GMEM_INLINE_RUNS];
};

static void gmem_plan_init(struct gmem_plan *p)
{
	p->runs = p->inline_runs;
	p->nr = 0;
	p->cap = GMEM_INLINE_RUNS;
	p->fresh = NULL;
	p->dead = NULL;
	p->nr_fresh = 0;
	p->nr_dead = 0;
	p->changed = false;
}

static void gmem_plan_release(struct gmem_plan *p, bool failed)
{
	struct kvm_gmem_chunk *c;

	while (failed && p->fresh) {
		c = p->fresh;
		p->fresh = c->next;
		kmem_cache_free(kvm_gmem_chunk_cache, c);
	}
	if (p->runs != p->inline_runs)
		kvfree(p->runs);
}

/* Append a run, merging it into the previous one if both are equal values. */
static int gmem_plan_push(struct gmem_plan *p, pgoff_t first, pgoff_t last,
			  void *entry)
{
	struct gmem_run *prev = p->nr ? &p->runs[p->nr - 1] : NULL;

	if (prev && prev->last + 1 == first && !gmem_is_chunk(entry) &&
	    prev->entry == entry) {
		prev->last = last;
		return 0;
	}

	if (p->nr == p->cap) {
		struct gmem_run *runs;

		runs = kvmalloc_array(p->cap * 2, sizeof(*runs), GMEM_GFP);
		if (!runs)
			return -ENOMEM;
		memcpy(runs, p->runs, p->nr * sizeof(*runs));
		if (p->runs != p->inline_runs)
			kvfree(p->runs);
		p->runs = runs;
		p->cap *= 2;
	}
	p->runs[p->nr++] = (struct gmem_run) {
		.first = first, .last = last, .entry = entry,
	};
	return 0;
}

/* Mask of the state bits of pages [@a, @b] of a word, 0 <= a <= b < 32. */
static inline unsigned long gmem_page_mask(unsigned int a, unsigned int b)
{
	unsigned long lo = (unsigned long)a * KVM_GMEM_STATE_BITS;
	unsigned long hi = (unsigned long)b * KVM_GMEM_STATE_BITS +
			   KVM_GMEM_STATE_BITS - 1;

	return GENMASK(hi, lo);
}

/* @word with the pages of mask @m set to (state | @set) & ~@clear. */
static inline unsigned long gmem_word_apply(unsigned long word,
					    unsigned long m, unsigned int set,
					    unsigned int clear)
{
	return (word | (GMEM_REP(set) & m)) & ~(GMEM_REP(clear) & m);
}

/*
 * Whether the first @nvalid pages of a block's words have one state; the
 * pages beyond them (past the end of the file) are 0, as in every chunk.
 */
static bool gmem_words_uniform(const unsigned long *words,
			       unsigned long nvalid)
{
	unsigned long want = GMEM_REP(words[0] & KVM_GMEM_STATE_MASK);
	unsigned int w;

	for (w = 0; w * GMEM_PAGES_PER_WORD < nvalid; w++) {
		unsigned long pa = w * GMEM_PAGES_PER_WORD;

		if (pa + GMEM_PAGES_PER_WORD > nvalid)
			want &= gmem_page_mask(0, nvalid - 1 - pa);
		if (words[w] != want)
			return false;
	}
	return true;
}

/*
 * The words of a block whose first @nvalid pages are described by @entry
 * (a chunk or a value), with (state | @set) & ~@clear applied to its pages
 * [@a, @b] (block-relative); pages beyond @nvalid are 0.
 */
static void gmem_block_words(unsigned long *words, void *entry,
			     unsigned long nvalid, unsigned long a,
			     unsigned long b, unsigned int set,
			     unsigned int clear)
{
	unsigned int w, wv = DIV_ROUND_UP(nvalid, GMEM_PAGES_PER_WORD);

	if (gmem_is_chunk(entry))
		memcpy(words, ((struct kvm_gmem_chunk *)entry)->bits,
		       sizeof(unsigned long) * GMEM_CHUNK_WORDS);
	else
		for (w = 0; w < GMEM_CHUNK_WORDS; w++)
			words[w] = GMEM_REP(xa_to_value(entry));
	/* Keep pages beyond the end of the file at 0. */
	for (w = wv; w < GMEM_CHUNK_WORDS; w++)
		words[w] = 0;
	if (nvalid % GMEM_PAGES_PER_WORD)
		words[wv - 1] &= gmem_page_mask(0, nvalid % GMEM_PAGES_PER_WORD - 1);

	/* @a <= @b < @nvalid: the words holding them are valid. */
	for (w = a / GMEM_PAGES_PER_WORD; w <= b / GMEM_PAGES_PER_WORD; w++) {
		unsigned long pa = w * GMEM_PAGES_PER_WORD;
		unsigned long pb = pa + GMEM_PAGES_PER_WORD - 1;

		words[w] = gmem_word_apply(words[w],
					   gmem_page_mask(max(a, pa) - pa,
							  min(b, pb) - pa),
					   set, clear);
	}
}

/*
 * Plan one 2M block [@bs, @be] whose current entry is @entry, applying
 * (state | @set) & ~@clear to pages [@start, @end) of it.
 */
static int gmem_plan_block(struct gmem_plan *p, void *entry, pgoff_t bs,
			   pgoff_t be, pgoff_t start, pgoff_t end,
			   unsigned int set, unsigned int clear)
{
	unsigned long words[GMEM_CHUNK_WORDS];
	unsigned long nvalid = be - bs + 1;
	struct kvm_gmem_chunk *old = gmem_is_chunk(entry) ? entry : NULL;
	struct kvm_gmem_chunk *c;

	gmem_block_words(words, entry, nvalid, max(start, bs) - bs,
			 min(end - 1, be) - bs, set, clear);

	if (gmem_words_uniform(words, nvalid)) {
		void *val = xa_mk_value(words[0] & KVM_GMEM_STATE_MASK);

		if (old) {
			old->next = p->dead;
			p->dead = old;
			p->nr_dead++;
		}
		if (val != entry)
			p->changed = true;
		return gmem_plan_push(p, bs, be, val);
	}

	if (old && !memcmp(old->bits, words, sizeof(words)))
		return gmem_plan_push(p, bs, be, old);

	p->changed = true;

	c = kmem_cache_alloc(kvm_gmem_chunk_cache, GMEM_GFP);
	if (!c)
		return -ENOMEM;
	memcpy(c->bits, words, sizeof(words));
	c->next = p->fresh;
	p->fresh = c;
	p->nr_fresh++;
	if (old) {
		old->next = p->dead;
		p->dead = old;
		p->nr_dead++;
	}
	return gmem_plan_push(p, bs, be, c);
}

/*
 * Plan the entries of every 2M block of the hull of [@start, @end) after
 * the update: values (equal neighbours merged) and chunks, wherever the
 * blocks are described (tree or leaf). gmem_plan_tree() turns them into
 * tree entries.
 */
static int gmem_plan_update(struct kvm_gmem_state *s, struct maple_tree *mt,
			    struct gmem_plan *p, pgoff_t start, pgoff_t end,
			    unsigned int set, unsigned int clear)
{
	MA_STATE(mas, mt, 0, 0);
	pgoff_t first = round_down(start, KVM_GMEM_BLOCK_PAGES);
	pgoff_t last = min(round_up(end, KVM_GMEM_BLOCK_PAGES), s->nr_pages) - 1;
	/* Fully covered blocks are [f0, f1). */
	pgoff_t f0 = round_up(start, KVM_GMEM_BLOCK_PAGES);
	pgoff_t f1 = end == s->nr_pages ? end :
		     round_down(end, KVM_GMEM_BLOCK_PAGES);
	pgoff_t pos = first, walked = 0, seg_last;
	void *tree_entry = NULL, *entry;
	bool leaf_entry;
	int ret;

	while (pos <= last) {
		pgoff_t be = min(pos + KVM_GMEM_BLOCK_PAGES - 1, s->nr_pages - 1);

		/* One walk per tree entry, however many blocks it covers. */
		if (!tree_entry || pos > walked) {
			mas_set(&mas, pos);
			tree_entry = mas_walk(&mas);
			if (WARN_ON_ONCE(!tree_entry || mas.index > pos))
				return -EINVAL;
			walked = mas.last;
		}
		entry = tree_entry;
		seg_last = walked;
		leaf_entry = entry == GMEM_LEAF_ENTRY;
		if (leaf_entry) {
			struct kvm_gmem_blk_leaf *leaf =
				s->gig_blk[pos >> KVM_GMEM_STATE_ORDER_1G];

			if (WARN_ON_ONCE(!leaf))
				return -EINVAL;
			entry = gmem_leaf_entry(s, leaf, gmem_blk_of(pos));
			seg_last = be;
		}

		if (pos < f0 || pos >= f1 || gmem_is_chunk(entry)) {
			ret = gmem_plan_block(p, entry, pos, be, start, end,
					      set, clear);
			pos = be + 1;
		} else {
			pgoff_t seg_end = min(seg_last, f1 - 1);
			unsigned int st = xa_to_value(entry);
			unsigned int nst = (st | set) & ~clear;

			if (nst != st)
				p->changed = true;
			ret = gmem_plan_push(p, pos, seg_end, xa_mk_value(nst));
			pos = seg_end + 1;
		}
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * State of 1G block @g after plan @p if it is uniform then, else GMEM_LEAF.
 * @i is the first run of @p that reaches into the block; the part of the
 * block @p covers is [@a, @z].
 */
static unsigned int gmem_gig_after(struct kvm_gmem_state *s,
				   struct gmem_plan *p, unsigned long i,
				   unsigned long g, pgoff_t a, pgoff_t z)
{
	pgoff_t gs = g << KVM_GMEM_STATE_ORDER_1G;
	pgoff_t ge = gs + KVM_GMEM_GIG_PAGES - 1;
	struct kvm_gmem_blk_leaf *leaf;
	unsigned int v;
	void *entry;
	u8 want;

	entry = p->runs[i].entry;
	if (gmem_is_chunk(entry))
		return GMEM_LEAF;
	for (; i < p->nr && p->runs[i].first <= z; i++)
		if (p->runs[i].entry != entry)
			return GMEM_LEAF;
	v = xa_to_value(entry);
	if (a == gs && z == ge)
		return v;

	/* The rest of the block is as it was. */
	want = v + 1;
	if (s->gig_state[g])
		return s->gig_state[g] == want ? v : GMEM_LEAF;
	leaf = s->gig_blk[g];
	if (WARN_ON_ONCE(!leaf))
		return GMEM_LEAF;
	if (a > gs && memchr_inv(leaf->val, want, gmem_blk_of(a)))
		return GMEM_LEAF;
	if (z < ge && memchr_inv(&leaf->val[gmem_blk_of(z) + 1], want,
				 KVM_GMEM_BLOCKS_PER_GIG - 1 - gmem_blk_of(z)))
		return GMEM_LEAF;
	return v;
}

/*
 * The tree entries of plan @p in @tp: in a file with a 1G table, a whole
 * 1G block the plan reaches into is one entry over all of it, its state if
 * it is uniform afterwards, GMEM_LEAF if not; the part of a partial 1G
 * block at the end of the file, and every block of a file without a
 * table, keeps the plan's entries. Then the first and the last entry merge
 * with equal neighbours in the tree.
 */
static int gmem_plan_tree(struct kvm_gmem_state *s, struct maple_tree *mt,
			  struct gmem_plan *p, struct gmem_plan *tp)
{
	MA_STATE(mas, mt, 0, 0);
	pgoff_t pos = p->runs[0].first, last = p->runs[p->nr - 1].last;
	unsigned long i = 0, g;
	struct gmem_run *r;
	void *entry;
	int ret;

	while (pos <= last) {
		pgoff_t gs, ge;

		g = pos >> KVM_GMEM_STATE_ORDER_1G;
		if (!gmem_gig_leafy(s, g)) {
			for (; i < p->nr; i++) {
				r = &p->runs[i];
				ret = gmem_plan_push(tp, max(r->first, pos),
						     r->last, r->entry);
				if (ret)
					return ret;
			}
			break;
		}
		gs = g << KVM_GMEM_STATE_ORDER_1G;
		ge = gs + KVM_GMEM_GIG_PAGES - 1;
		ret = gmem_plan_push(tp, gs, ge,
				     xa_mk_value(gmem_gig_after(s, p, i, g, pos,
								min(ge, last))));
		if (ret)
			return ret;
		/* The next block starts at a run that reaches past this one. */
		while (i < p->nr && p->runs[i].last <= ge)
			i++;
		pos = ge + 1;
	}

	r = &tp->runs[0];
	if (r->first && !gmem_is_chunk(r->entry)) {
		mas_set(&mas, r->first - 1);
		entry = mas_walk(&mas);
		if (entry == r->entry)
			r->first = mas.index;
	}
	r = &tp->runs[tp->nr - 1];
	if (r->last + 1 < s->nr_pages && !gmem_is_chunk(r->entry)) {
		mas_set(&mas, r->last + 1);
		entry = mas_walk(&mas);
		if (entry == r->entry)
			r->last = mas.last;
	}
	return 0;
}

enum gmem_store_kind {
	GMEM_STORE_NONE,
	GMEM_STORE_EXACT,
	GMEM_STORE_STRUCTURAL,
};

/*
 * What run @r needs. A run whose entry the tree already holds over all of
 * it needs no store even if that entry reaches further: the other runs'
 * stores only overwrite their own ranges, which carves the old entry down
 * to @r (so making a chunk in the middle of a range is one store).
 */
static enum gmem_store_kind gmem_classify(struct maple_tree *mt,
					  struct gmem_run *r)
{
	MA_STATE(mas, mt, r->first, r->first);
	void *entry = mas_walk(&mas);

	if (entry == r->entry && mas.index <= r->first && mas.last >= r->last)
		return GMEM_STORE_NONE;
	if (mas.index != r->first || mas.last != r->last)
		return GMEM_STORE_STRUCTURAL;
	return GMEM_STORE_EXACT;
}

/*
 * Prepare structural run @r for a store into the live tree: preallocate
 * every node the store can need, so that mas_store_prealloc() cannot fail.
 */
static int gmem_prepare_in_place(struct ma_state *mas, struct gmem_run *r)
{
	mas_set_range(mas, r->first, r->last);
	return mas_preallocate(mas, r->entry, GMEM_GFP);
}

/*
 * Commit plan @p in place: the structural run, if any, prepared in @mas by
 * gmem_prepare_in_place(), then the exact fits. Nothing fails any more.
 */
static void gmem_commit_direct(struct maple_tree *mt, struct gmem_plan *p,
			       struct ma_state *mas, long structural)
{
	unsigned long i;
	int ret;

	if (structural >= 0)
		mas_store_prealloc(mas, p->runs[structural].entry);

	for (i = 0; i < p->nr; i++) {
		struct gmem_run *r = &p->runs[i];

		if ((long)i == structural ||
		    gmem_classify(mt, r) != GMEM_STORE_EXACT)
			continue;
		mas_set_range(mas, r->first, r->last);
		/* An exact fit swaps one slot and never allocates. */
		ret = mas_store_gfp(mas, r->entry, GFP_NOWAIT);
		WARN_ON_ONCE(ret);
	}
}

/*
 * Build a copy of the tree @old with plan @p applied in *@copy, outside RCU
 * mode; nobody sees it before gmem_copy_publish(). On failure nothing is
 * left.
 */
static int gmem_copy_build(struct kvm_gmem_state *s,
			   struct kvm_gmem_state_tree *old, struct gmem_plan *p,
			   struct kvm_gmem_state_tree **copy)
{
	MA_STATE(mas, NULL, 0, 0);
	struct kvm_gmem_state_tree *t = gmem_tree_alloc(s);
	unsigned long i;
	int ret;

	if (!t)
		return -ENOMEM;
	ret = __mt_dup(&old->mt, &t->mt, GMEM_GFP);
	if (ret) {
		kfree(t);
		return ret;
	}
	/*
	 * No reader can see the copy before it is published: build it
	 * outside RCU mode, so replaced nodes are freed at once, as
	 * dup_mmap() does with the copy of the VMA tree.
	 */
	mt_clear_in_rcu(&t->mt);

	mas.tree = &t->mt;
	for (i = 0; i < p->nr; i++) {
		struct gmem_run *r = &p->runs[i];

		if (gmem_classify(&t->mt, r) == GMEM_STORE_NONE)
			continue;
		mas_set_range(&mas, r->first, r->last);
		ret = mas_store_gfp(&mas, r->entry, GMEM_GFP);
		if (ret) {
			__mt_destroy(&t->mt);
			kfree(t);
			return ret;
		}
	}
	*copy = t;
	return 0;
}

/* Replace the tree @old by the copy @t from gmem_copy_build(). */
static void gmem_copy_publish(struct kvm_gmem_state *s,
			      struct kvm_gmem_state_tree *old,
			      struct kvm_gmem_state_tree *t)
{
	mt_set_in_rcu(&t->mt);
	rcu_assign_pointer(s->tree, t);
	call_rcu(&old->rcu, gmem_tree_free_rcu);
}

/*
 * The entry tree plan @tp stores over 1G block @g, a block with leaves
 * that the update reaches into (one entry covers all of it), or NULL if
 * the plan does not reach it. *@i is a cursor into @tp: 0 for the first
 * call, then kept for calls with ascending @g.
 */
static void *gmem_plan_gig_entry(struct gmem_plan *tp, unsigned long g,
				 unsigned long *i)
{
	pgoff_t base = g << KVM_GMEM_STATE_ORDER_1G;

	while (*i < tp->nr && tp->runs[*i].last < base)
		(*i)++;
	if (*i < tp->nr && tp->runs[*i].first <= base)
		return tp->runs[*i].entry;
	return NULL;
}

/*
 * Whether 1G block @g needs a new leaf: it has none and tree plan @tp makes
 * it GMEM_LEAF_ENTRY. A 1G block without a leaf is uniform, and only one
 * the update covers in part can stop being so.
 */
static bool gmem_blk_needs_leaf(struct kvm_gmem_state *s,
				struct gmem_plan *tp, unsigned long g)
{
	unsigned long i = 0;

	return !s->gig_blk[g] && gmem_gig_leafy(s, g) &&
	       gmem_plan_gig_entry(tp, g, &i) == GMEM_LEAF_ENTRY;
}

/* Allocate the (at most two) leaves an update of [@start, @end) needs. */
static int gmem_blk_prepare(struct kvm_gmem_state *s, struct gmem_plan *tp,
			    pgoff_t start, pgoff_t end,
			    struct kvm_gmem_blk_leaf **fresh)
{
	unsigned long g0 = start >> KVM_GMEM_STATE_ORDER_1G;
	unsigned long g1 = (end - 1) >> KVM_GMEM_STATE_ORDER_1G;
	unsigned long i, g;

	if (!s->gig_blk)
		return 0;
	for (i = 0; i < 2; i++) {
		g = i ? g1 : g0;
		if ((i && g1 == g0) || !gmem_blk_needs_leaf(s, tp, g))
			continue;
		fresh[i] = kmem_cache_alloc(kvm_gmem_leaf_cache, GMEM_GFP);
		if (!fresh[i])
			return -ENOMEM;
		/* A new leaf starts out as the uniform 1G block it describes. */
		memset(fresh[i]->val, s->gig_state[g], KVM_GMEM_BLOCKS_PER_GIG);
		memset(fresh[i]->chunk, 0, sizeof(fresh[i]->chunk));
	}
	return 0;
}

static void gmem_blk_release(struct kvm_gmem_blk_leaf **fresh)
{
	if (fresh[0])
		kmem_cache_free(kvm_gmem_leaf_cache, fresh[0]);
	if (fresh[1])
		kmem_cache_free(kvm_gmem_leaf_cache, fresh[1]);
}

/*
 * Store the new entries of the 2M blocks of plan @p for [@start, @end)
 * (values and chunks, not tree entries) into the leaves, and publish the
 * leaves of @fresh (from gmem_blk_prepare()). Runs before the tree takes
 * the update: a 1G block whose tree entry does not send readers to its
 * leaf yet (or any more) does not read it, and one whose entry does sees
 * each of its 2M blocks before or after the update.
 */
static void gmem_blk_update(struct kvm_gmem_state *s, struct gmem_plan *p,
			    pgoff_t start, pgoff_t end,
			    struct kvm_gmem_blk_leaf **fresh)
{
	pgoff_t hs = round_down(start, KVM_GMEM_BLOCK_PAGES);
	pgoff_t he = min(round_up(end, KVM_GMEM_BLOCK_PAGES), s->nr_pages);
	unsigned long g0 = start >> KVM_GMEM_STATE_ORDER_1G;
	unsigned long g1 = (end - 1) >> KVM_GMEM_STATE_ORDER_1G;
	struct kvm_gmem_blk_leaf *leaf;
	unsigned long i, g, b, b1;
	pgoff_t a, z, next;

	if (!s->gig_blk)
		return;
	for (i = 0; i < p->nr; i++) {
		struct gmem_run *r = &p->runs[i];

		z = min(r->last + 1, he);
		for (a = max(r->first, hs); a < z; a = next) {
			g = a >> KVM_GMEM_STATE_ORDER_1G;
			next = min((g + 1) << KVM_GMEM_STATE_ORDER_1G, z);
			if (g == g0 && fresh[0])
				leaf = fresh[0];
			else if (g == g1 && fresh[1])
				leaf = fresh[1];
			else
				leaf = s->gig_blk[g];
			if (!leaf)
				continue;
			b1 = gmem_blk_of(next - 1);
			for (b = gmem_blk_of(a); b <= b1; b++)
				gmem_leaf_set(leaf, b, r->entry);
		}
	}

	for (i = 0; i < 2; i++) {
		if (!fresh[i])
			continue;
		/* Publish the filled leaf; pairs with the lookup's acquire. */
		smp_store_release(&s->gig_blk[i ? g1 : g0], fresh[i]);
		s->nr_blk_leaves++;
		fresh[i] = NULL;
	}
}

/*
 * Set the 1G table entries of the blocks [@start, @end) touches, after the
 * tree took plan @tp, from the entry @tp stored over each whole 1G block.
 * Merges with neighbours change no page state, so no other block can have
 * changed; the partial 1G block at the end of the file is never mapped
 * as one (0).
 */
static void gmem_gig_refresh(struct kvm_gmem_state *s, struct gmem_plan *tp,
			     pgoff_t start, pgoff_t end)
{
	unsigned long g, g1 = (end - 1) >> KVM_GMEM_STATE_ORDER_1G, i = 0;
	void *entry;
	u8 val;

	if (!s->gig_state)
		return;
	for (g = start >> KVM_GMEM_STATE_ORDER_1G; g <= g1; g++) {
		val = 0;
		if (gmem_gig_leafy(s, g)) {
			entry = gmem_plan_gig_entry(tp, g, &i);
			if (!WARN_ON_ONCE(!entry) && entry != GMEM_LEAF_ENTRY)
				val = xa_to_value(entry) + 1;
		}
		/*
		 * Readers take state and order from this one byte; a 0 sends
		 * them to the leaf, filled before (pairs with the acquire in
		 * kvm_gmem_state_lookup()).
		 */
		smp_store_release(&s->gig_state[g], val);
	}
}

/*
 * Whether the block of chunk @c, with word @w replaced by @word, has one
 * state over its first @nvalid pages.
 */
static bool gmem_chunk_uniform_with(const struct kvm_gmem_chunk *c,
				    unsigned int w, unsigned long word,
				    unsigned long nvalid)
{
	unsigned long words[GMEM_CHUNK_WORDS];
	unsigned long pa = w * GMEM_PAGES_PER_WORD;
	unsigned long want = GMEM_REP(word & KVM_GMEM_STATE_MASK);

	/* Most single-page updates leave their own word mixed: done. */
	if (pa + GMEM_PAGES_PER_WORD > nvalid)
		want &= gmem_page_mask(0, nvalid - 1 - pa);
	if (word != want)
		return false;
	memcpy(words, c->bits, sizeof(words));
	words[w] = word;
	return gmem_words_uniform(words, nvalid);
}

/*
 * Fast path of an update confined to one word of an existing chunk (up to
 * 32 pages, a single page always) that leaves its block non-uniform: one
 * store of that word. Every page's state lies in one word, so a reader
 * sees each page before or after the update, as with a copied chunk; the
 * tree and the 1G tables keep describing a chunk. No allocation, no grace
 * period. Returns 1 if it stored the word, 0 if the pages had the state
 * already, or -EAGAIN, with nothing changed, if the slow path must run.
 */
static int gmem_update_word(struct kvm_gmem_state *s,
			    struct kvm_gmem_chunk *c, pgoff_t start,
			    pgoff_t end, unsigned int set, unsigned int clear)
{
	pgoff_t base = round_down(start, KVM_GMEM_BLOCK_PAGES);
	unsigned long nvalid = min_t(pgoff_t, KVM_GMEM_BLOCK_PAGES,
				     s->nr_pages - base);
	unsigned long a = start - base, b = end - 1 - base;
	unsigned long w = a / GMEM_PAGES_PER_WORD, pa, m, word;

	if (b / GMEM_PAGES_PER_WORD != w)
		return -EAGAIN;

	pa = w * GMEM_PAGES_PER_WORD;
	m = gmem_page_mask(a - pa, b - pa);
	word = gmem_word_apply(c->bits[w], m, set, clear);
	if (word == c->bits[w])
		return 0;
	/* Would the block become uniform? Then it must merge: slow path. */
	if (gmem_chunk_uniform_with(c, w, word, nvalid))
		return -EAGAIN;
	WRITE_ONCE(c->bits[w], word);
	return 1;
}

/*
 * A new chunk for the 2M block [@bs, @be] whose value @entry changes in
 * part, [@start, @end) of it, or NULL: -EAGAIN if the update is not
 * confined to the block or covers all of it (the block stays uniform:
 * general path), 0 if the pages have the state already, -ENOMEM.
 */
static struct kvm_gmem_chunk *gmem_split_chunk(void *entry, pgoff_t bs,
					       pgoff_t be, pgoff_t start,
					       pgoff_t end, unsigned int set,
					       unsigned int clear, int *ret)
{
	unsigned int st = xa_to_value(entry);
	struct kvm_gmem_chunk *c;

	*ret = -EAGAIN;
	if (end - 1 > be || (start == bs && end - 1 == be))
		return NULL;
	*ret = 0;
	if (((st | set) & ~clear) == st)
		return NULL;
	c = kmem_cache_alloc(kvm_gmem_chunk_cache, GMEM_GFP);
	if (!c) {
		*ret = -ENOMEM;
		return NULL;
	}
	gmem_block_words(c->bits, entry, be - bs + 1, start - bs, end - 1 - bs,
			 set, clear);
	*ret = 1;
	return c;
}

/*
 * Fast path of the other common single-page case in a 1G block that is
 * not uniform: the first page of a uniform 2M block to change. The block
 * gets a chunk in the leaf; the tree and the 1G block's byte stay as they
 * are. Returns 1, 0 if the pages had the state already, -EAGAIN with
 * nothing changed if the general path must run, or -ENOMEM.
 */
static int gmem_update_leaf_split(struct kvm_gmem_state *s,
				  struct kvm_gmem_blk_leaf *leaf, void *entry,
				  pgoff_t start, pgoff_t end, unsigned int set,
				  unsigned int clear)
{
	pgoff_t bs = round_down(start, KVM_GMEM_BLOCK_PAGES);
	struct kvm_gmem_chunk *c;
	int ret;

	c = gmem_split_chunk(entry, bs, bs + KVM_GMEM_BLOCK_PAGES - 1, start,
			     end, set, clear, &ret);
	if (!c)
		return ret;
	gmem_leaf_set(leaf, gmem_blk_of(bs), c);
	s->nr_chunks++;
	return 1;
}

/*
 * The same in the tree, for 2M blocks without a leaf (the partial 1G block
 * at the end of the file, files without a 1G table): the chunk is stored
 * into the value range in place (see gmem_prepare_in_place()). @mas walked
 * to @start and found value @entry. Saves the general path's planning and
 * its walks.
 */
static int gmem_update_split(struct kvm_gmem_state *s, struct ma_state *mas,
			     void *entry, pgoff_t start, pgoff_t end,
			     unsigned int set, unsigned int clear)
{
	pgoff_t bs = round_down(start, KVM_GMEM_BLOCK_PAGES);
	pgoff_t be = min(bs + KVM_GMEM_BLOCK_PAGES, s->nr_pages) - 1;
	struct gmem_run r = { .first = bs, .last = be };
	struct kvm_gmem_chunk *c;
	int ret;

	c = gmem_split_chunk(entry, bs, be, start, end, set, clear, &ret);
	if (!c)
		return ret;
	r.entry = c;
	ret = gmem_prepare_in_place(mas, &r);
	if (ret) {
		kmem_cache_free(kvm_gmem_chunk_cache, c);
		return ret;
	}
	mas_store_prealloc(mas, c);
	s->nr_chunks++;
	return 1;
}

/*
 * The fast paths of an update inside one 2M block: a word of a chunk, or
 * a first change to a uniform block. -EAGAIN if the general path must run.
 */
static int gmem_update_fast(struct kvm_gmem_state *s,
			    struct kvm_gmem_state_tree *t, pgoff_t start,
			    pgoff_t end, unsigned int set, unsigned int clear)
{
	MA_STATE(mas, &t->mt, start, start);
	unsigned long g = start >> KVM_GMEM_STATE_ORDER_1G;
	struct kvm_gmem_blk_leaf *leaf;
	void *entry;

	if ((end - 1) >> KVM_GMEM_STATE_ORDER_2M !=
	    start >> KVM_GMEM_STATE_ORDER_2M)
		return -EAGAIN;

	leaf = gmem_leaf_locked(s, g);
	if (leaf) {
		entry = gmem_leaf_entry(s, leaf, gmem_blk_of(start));
		if (gmem_is_chunk(entry))
			return gmem_update_word(s, entry, start, end, set, clear);
		return gmem_update_leaf_split(s, leaf, entry, start, end, set,
					      clear);
	}
	/* A uniform 1G block with a leaf to be: general path. */
	if (gmem_gig_leafy(s, g))
		return -EAGAIN;

	entry = mas_walk(&mas);
	if (gmem_is_chunk(entry))
		return gmem_update_word(s, entry, start, end, set, clear);
	return gmem_update_split(s, &mas, entry, start, end, set, clear);
}

int kvm_gmem_state_update(struct kvm_gmem_state *s, pgoff_t start,
			  pgoff_t end, unsigned int set, unsigned int clear)
{
	MA_STATE(mas, NULL, 0, 0);
	struct kvm_gmem_blk_leaf *fresh[2] = { NULL, NULL };
	struct kvm_gmem_state_tree *t, *copy = NULL;
	unsigned long i, nr_structural = 0;
	struct gmem_plan p, tp;
	struct kvm_gmem_chunk *c;
	long structural = -1;
	int ret;

	lockdep_assert_held_write(s->lock);
	if (start >= end || end > s->nr_pages ||
	    (set | clear) & ~KVM_GMEM_STATE_MASK)
		return -EINVAL;
	if (!set && !clear)
		return 0;

	t = gmem_tree_locked(s);
	ret = gmem_update_fast(s, t, start, end, set, clear);
	if (ret != -EAGAIN)
		return ret;

	gmem_plan_init(&p);
	gmem_plan_init(&tp);
	ret = gmem_plan_update(s, &t->mt, &p, start, end, set, clear);
	/* No page changes state: the plan made no chunk and dropped none. */
	if (ret || !p.changed)
		goto out;
	ret = gmem_plan_tree(s, &t->mt, &p, &tp);
	if (ret)
		goto out;

	for (i = 0; i < tp.nr; i++) {
		if (gmem_classify(&t->mt, &tp.runs[i]) ==
		    GMEM_STORE_STRUCTURAL) {
			structural = i;
			nr_structural++;
		}
	}

	ret = gmem_blk_prepare(s, &tp, start, end, fresh);
	if (ret)
		goto out;

	/* Everything that can fail, before anything changes. */
	mas.tree = &t->mt;
	if (nr_structural > 1)
		ret = gmem_copy_build(s, t, &tp, &copy);
	else if (nr_structural)
		ret = gmem_prepare_in_place(&mas, &tp.runs[structural]);
	if (ret)
		goto out;

	gmem_blk_update(s, &p, start, end, fresh);
	if (copy)
		gmem_copy_publish(s, t, copy);
	else
		gmem_commit_direct(&t->mt, &tp, &mas, structural);
	gmem_gig_refresh(s, &tp, start, end);

	s->nr_chunks += p.nr_fresh;
	s->nr_chunks -= p.nr_dead;
	while (p.dead) {
		c = p.dead;
		p.dead = c->next;
		call_rcu(&c->rcu, gmem_chunk_free_rcu);
	}
	ret = 1;
out:
	gmem_blk_release(fresh);
	gmem_plan_release(&tp, false);
	gmem_plan_release(&p, ret < 0);
	return ret;
}

/* Lookups. */

/*
 * gmem_tree_lookup() without the 1G table: the span of the entry decides
 * about a 1G order. Under the RCU read lock.
 */
static noinline unsigned int gmem_tree_lookup_span(struct maple_tree *mt,
						   pgoff_t index,
						   unsigned int *order)
{
	MA_STATE(mas, mt, index, index);
	pgoff_t base = round_down(index, KVM_GMEM_BLOCK_PAGES);
	void *entry;

	entry = mas_walk(&mas);
	if (gmem_is_chunk(entry)) {
		*order = 0;
		return gmem_chunk_get(entry, index - base);
	}
	*order = 0;
	if (base + KVM_GMEM_BLOCK_PAGES - 1 <= mas.last)
		*order = KVM_GMEM_STATE_ORDER_2M;
	base = round_down(index, KVM_GMEM_GIG_PAGES);
	if (base >= mas.index && base + KVM_GMEM_GIG_PAGES - 1 <= mas.last)
		*order = KVM_GMEM_STATE_ORDER_1G;
	return xa_to_value(entry);
}

/*
 * State of page @index in the tree and the largest order, at most
 * @max_order, over which the tree state is uniform. Under the RCU read lock.
 */
static inline unsigned int gmem_tree_lookup(struct kvm_gmem_state *s,
					    struct maple_tree *mt,
					    pgoff_t index,
					    unsigned int max_order,
					    unsigned int *order)
{
	pgoff_t base = round_down(index, KVM_GMEM_BLOCK_PAGES);
	void *entry;

	/*
	 * A chunk covers exactly the 2M block around @index, and a value
	 * entry whole 2M blocks (the last one may be cut short by the end of
	 * the file). So only a 1G order needs the span of the entry, and with
	 * the 1G table the caller has ruled that out.
	 */
	if (unlikely(max_order >= KVM_GMEM_STATE_ORDER_1G && !s->gig_state))
		return gmem_tree_lookup_span(mt, index, order);

	entry = mtree_load(mt, index);
	/* Never here: such a 1G block's table byte sends readers to its leaf. */
	if (WARN_ON_ONCE(entry == GMEM_LEAF_ENTRY)) {
		*order = 0;
		return 0;
	}
	if (gmem_is_chunk(entry)) {
		*order = 0;
		return gmem_chunk_get(entry, index - base);
	}
	*order = max_order >= KVM_GMEM_STATE_ORDER_2M &&
		 base + KVM_GMEM_BLOCK_PAGES <= s->nr_pages ?
		 KVM_GMEM_STATE_ORDER_2M : 0;
	return xa_to_value(entry);
}

unsigned int __kvm_gmem_state_lookup(struct kvm_gmem_state *s, pgoff_t index,
				     unsigned int max_order,
				     unsigned int *order, unsigned int mask)
{
	unsigned long g = index >> KVM_GMEM_STATE_ORDER_1G;
	struct kvm_gmem_blk_leaf *leaf = NULL;
	struct kvm_gmem_state_tree *t;
	struct kvm_gmem_uf *uf;
	unsigned int st, o;
	u8 val = 0;

	if (WARN_ON_ONCE(index >= s->nr_pages)) {
		if (order)
			*order = 0;
		return 0;
	}
	if (!order)
		max_order = 0;

	/*
	 * A uniform 1G or 2M block needs no walk: state and order come from
	 * one byte (see "1G table" above).
	 */
	if (likely(s->gig_state)) {
		/* Pairs with smp_store_release() in gmem_gig_refresh(). */
		val = smp_load_acquire(&s->gig_state[g]);
		o = KVM_GMEM_STATE_ORDER_1G;
		if (!val)
			/*
			 * A 0 for a whole 1G block means its leaf describes
			 * it, and was published and filled before the 0 was
			 * stored. Pairs with the release in gmem_blk_update().
			 */
			leaf = smp_load_acquire(&s->gig_blk[g]);
	}
	if (val) {
		st = val - 1;
		if (o > max_order)
			o = max_order >= KVM_GMEM_STATE_ORDER_2M ?
			    KVM_GMEM_STATE_ORDER_2M : 0;
	} else if (leaf) {
		st = gmem_leaf_lookup(leaf, index, max_order, &o);
	} else {
		rcu_read_lock();
		t = rcu_dereference(s->tree);
		st = gmem_tree_lookup(s, &t->mt, index, max_order, &o);
		rcu_read_unlock();
	}

	/* Pairs with smp_store_release() of s->uf in set_missing. */
	uf = mask & KVM_GMEM_STATE_MISSING ? smp_load_acquire(&s->uf) : NULL;
	if (unlikely(uf))
		st |= kvm_gmem_missing_lookup(uf, index, &o);
	if (order)
		*order = o;
	return st;
}

/*
 * gmem_tree_span() in a 1G block whose leaf describes it, up to @limit at
 * most (within the block). Under the RCU read lock.
 */
static unsigned int gmem_leaf_span(struct kvm_gmem_state *s, pgoff_t pos,
				   pgoff_t limit, pgoff_t *span_end)
{
	pgoff_t bs = round_down(pos, KVM_GMEM_BLOCK_PAGES);
	pgoff_t e = bs + KVM_GMEM_BLOCK_PAGES;
	struct kvm_gmem_blk_leaf *leaf;
	void *entry;
	u8 v;

	/*
	 * Published before the tree entry that sent us here (pairs with the
	 * release in gmem_blk_update(); see gmem_tree_span()).
	 */
	leaf = smp_load_acquire(&s->gig_blk[pos >> KVM_GMEM_STATE_ORDER_1G]);
	if (WARN_ON_ONCE(!leaf)) {
		*span_end = limit;
		return 0;
	}
	entry = gmem_leaf_read(leaf, gmem_blk_of(pos));
	if (!gmem_is_chunk(entry)) {
		/* A uniform block: so are the next ones with the same byte. */
		v = xa_to_value(entry) + 1;
		while (e < limit) {
			/* Pairs with gmem_leaf_set(), as in the lookup. */
			if (smp_load_acquire(&leaf->val[gmem_blk_of(e)]) != v)
				break;
			e += KVM_GMEM_BLOCK_PAGES;
		}
		*span_end = min(e, limit);
		return v - 1;
	}
	return gmem_chunk_span(entry, bs, pos,
			       min_t(pgoff_t, limit, bs + KVM_GMEM_BLOCK_PAGES),
			       span_end);
}

/* Tree state at @pos and the end of the span of the same tree state. */
static unsigned int gmem_tree_span(struct kvm_gmem_state *s,
				   struct maple_tree *mt, pgoff_t pos,
				   pgoff_t limit, pgoff_t *span_end)
{
	MA_STATE(mas, mt, pos, pos);
	void *entry = mas_walk(&mas);

	if (entry == GMEM_LEAF_ENTRY) {
		/*
		 * A value carries no address dependency to the leaf: order
		 * the tree load before the leaf pointer load, which pairs with
		 * gmem_blk_update() publishing the leaf before the tree entry.
		 */
		smp_rmb();
		return gmem_leaf_span(s, pos,
				      min_t(pgoff_t, limit,
					    (pos | (KVM_GMEM_GIG_PAGES - 1)) + 1),
				      span_end);
	}
	if (!gmem_is_chunk(entry)) {
		*span_end = min(mas.last, limit - 1) + 1;
		return xa_to_value(entry);
	}
	return gmem_chunk_span(entry, mas.index, pos, min(limit, mas.last + 1),
			       span_end);
}

unsigned int kvm_gmem_state_range(struct kvm_gmem_state *s, pgoff_t index,
				  pgoff_t end, pgoff_t *run_end)
{
	/* Pairs with smp_store_release() of s->uf in set_missing. */
	struct kvm_gmem_uf *uf = smp_load_acquire(&s->uf);
	struct kvm_gmem_state_tree *t;
	pgoff_t pos = index, span_end, m;
	unsigned int st, st2;
	bool missing;

	end = min(end, s->nr_pages);
	if (WARN_ON_ONCE(index >= end)) {
		*run_end = end;
		return 0;
	}

	missing = kvm_gmem_missing_test(uf, index);
	rcu_read_lock();
	t = rcu_dereference(s->tree);
	st = gmem_tree_span(s, &t->mt, pos, end, &span_end);
	for (;;) {
		m = kvm_gmem_missing_next_change(uf, pos, span_end, missing);
		if (m < span_end) {
			*run_end = m;
			break;
		}
		pos = span_end;
		if (pos >= end) {
			*run_end = end;
			break;
		}
		st2 = gmem_tree_span(s, &t->mt, pos, end, &span_end);
		if (st2 != st) {
			*run_end = pos;
			break;
		}
	}
	rcu_read_unlock();
	return st | (missing ? KVM_GMEM_STATE_MISSING : 0);
}

void kvm_gmem_state_stats(struct kvm_gmem_state *s,
			  struct kvm_gmem_state_stats *stats)
{
	MA_STATE(mas, &gmem_tree_locked(s)->mt, 0, 0);
	struct maple_enode *node = NULL;
	unsigned long leaves = 0, level;
	void *entry;

	memset(stats, 0, sizeof(*stats));
	rcu_read_lock();
	mas_for_each(&mas, entry, s->nr_pages - 1) {
		stats->tree_entries++;
		if (mas.node != node) {
			node = mas.node;
			leaves++;
		}
	}
	rcu_read_unlock();

	/*
	 * Leaf nodes are counted; the few internal nodes are estimated from
	 * the fan-out of a half-full node.
	 */
	stats->tree_nodes = leaves;
	for (level = leaves; level > 1; ) {
		level = DIV_ROUND_UP(level, MAPLE_RANGE64_SLOTS / 2);
		stats->tree_nodes += level;
	}
	stats->chunks = s->nr_chunks;
	stats->uf_leaves = s->nr_uf_leaves;
	stats->bytes = sizeof(struct kvm_gmem_state_tree) +
		       stats->tree_nodes * sizeof(struct maple_node) +
		       stats->chunks * sizeof(struct kvm_gmem_chunk) +
		       kvm_gmem_missing_bytes(s);
	if (s->gig_state)
		stats->bytes += DIV_ROUND_UP(s->nr_pages, KVM_GMEM_GIG_PAGES) *
				(sizeof(u8) + sizeof(u8 *)) +
				s->nr_blk_leaves *
				sizeof(struct kvm_gmem_blk_leaf);
}
