/* The scan: one pass over the collector's object list that retargets old closures, the same
** for every backend: `backend.h` (lua54/ or luajit/, chosen by build.rs through the include
** path) names the collector's types and gives the few operations that differ, each with its
** invariants; the invariants of the whole are at the top of that file. */

#include "backend.h"
#include "plan.h"
#include "prefetch.h"

static int cmp_ptr(const void *a, const void *b);

/* Whether the scan leaves `cl` alone whatever its prototype: one of hotlua's anchors. */
static int ignored(const HotluaPlan *plan, const HClosure *cl) {
  const void *key = cl;
  return plan->ignore_len != 0 &&
         bsearch(&key, plan->ignore, plan->ignore_len, sizeof(void *), cmp_ptr) != NULL;
}

/* A growable array of pointers (malloc: the scan must not allocate Lua objects for it). */
typedef struct PtrVec { void **items; size_t len, cap; } PtrVec;

static int push(PtrVec *v, void *item) {
  if (v->len == v->cap) {
    size_t cap = v->cap ? v->cap * 2 : 256;
    void **items = (void **)realloc(v->items, cap * sizeof(void *));
    if (items == NULL) return 0;
    v->items = items;
    v->cap = cap;
  }
  v->items[v->len++] = item;
  return 1;
}

/* How far below the current object the scan asks the cache for memory, and at most how many
** lines it asks for at each object (see prefetch_below). */
#define PREFETCH_DISTANCE 4096
#define PREFETCH_LINES 16

/* Asks the cache for the memory below `o` down to PREFETCH_DISTANCE bytes, each 64-byte line
** once (`*ahead`: the lowest line asked for so far, as an address). The list holds the newest object first
** and the allocator hands out memory upwards, so the objects that follow `o` in the list lie
** mostly just below it: each is a cache miss the walk would wait on, one after the other
** (measured: the walk of 1.3 million objects 45 ms without the hint, 24 ms with it). A guess
** that misses costs a wasted line; a prefetch never faults, whatever the address. */
static void prefetch_below(uintptr_t *ahead, const void *o) {
  /* Addresses as integers: they are compared across unrelated objects. */
  uintptr_t at = (uintptr_t)o, want = at - PREFETCH_DISTANCE;
  int lines = 0;
  if (at < PREFETCH_DISTANCE) return;
  if (*ahead < want || *ahead > at) *ahead = want + 64;
  while (*ahead > want && lines++ < PREFETCH_LINES) {
    *ahead -= 64;
    PREFETCH((const void *)*ahead);
  }
}

static int cmp_ptr(const void *a, const void *b) {
  size_t x = (size_t)*(void *const *)a, y = (size_t)*(void *const *)b;
  return (x > y) - (x < y);
}

/* Gives the frame `f` of a suspended (or dead) thread its own copy of its closure `cl`: same
** prototype, same upvalue cells. When the thread resumes, the frame runs the copy, in the old
** code with the old constants, while `cl` itself can take the new prototype. Allocates (may
** raise a memory error: the caller runs protected). The copy is stored into the frame before
** anything else can allocate; stack slots need no barrier (threads are always traversed
** again in the atomic phase). */
static void copy_frame_closure(lua_State *L, HFrame *f, HClosure *cl) {
  HCell *uv[256];
  int j;
  HClosure *copy = hotlua_new_closure(L, closure_nupvalues(cl));
  for (j = 0; j < closure_nupvalues(cl); j++) uv[j] = closure_cell(cl, j);
  closure_init(copy, closure_proto(cl), uv, closure_nupvalues(cl));
  frame_set_closure(f, copy);
  lua_pop(L, 1);
}

/* What a scan found and did, between hotlua_scan_prepare and hotlua_scan_commit or
** hotlua_scan_abandon. Allocated with malloc, owned by the caller (src/switch/inplace.rs). */
typedef struct HotluaScan {
  PtrVec todo;      /* closures to retarget, two words each: the closure, then its planner
                       pair, or 1 + 2 * its prototype's proto_lookup (the low bit tells them
                       apart: closures are aligned); commit derives prototype and cells from
                       that word, so the list (and the fresh memory it faults in) stays small */
  PtrVec grown;     /* closures whose new version needs more upvalues than they have: the
                       closure, its new prototype, its remap (replaced by a new closure) */
  size_t grown_made;   /* closures of `grown` whose replacement is made (on the stack) */
  PtrVec stale;     /* run-time closures left old: the closure, the new prototype it would
                       take, or NULL */
  PtrVec copied;    /* HFrame *, then the closure it ran, of each frame given a copy */
  size_t copies_made;  /* frames of `copied` whose copy is installed */
} HotluaScan;

HotluaScan *hotlua_scan_new(void) { return (HotluaScan *)calloc(1, sizeof(HotluaScan)); }

/* Fills `uv` with the upvalue cells closure `cl` takes with new prototype `np`, from
** `source`: the planner's new closure paired with `cl`, or (`paired` false) the remap of
** `cl`'s prototype pair. */
static void take_cells(const HotluaPlan *plan, const HClosure *cl, const HProto *np,
                       const void *source, int paired, HCell **uv) {
  int j;
  if (paired) {
    const HClosure *pair = (const HClosure *)source;
    for (j = 0; j < proto_nupvalues(np); j++) uv[j] = closure_cell(pair, j);
    return;
  }
  for (j = 0; j < proto_nupvalues(np); j++) {
    int from = ((const int *)source)[j];
    uv[j] = from <= -3 ? plan->cells[-from - 3] : closure_cell(cl, from);
  }
}

/* What becomes of a candidate closure that runs on no frame of a running thread. */
typedef enum {
  TAKES_NEW,       /* it takes the new prototype */
  LEFT_FALLBACK,   /* a planner pair that cannot take it in place: the walk switches it */
  LEFT_UNPAIRED, LEFT_AMBIGUOUS, LEFT_SCOPE, LEFT_UPVALUE  /* kept old, for that reason */
} Verdict;

/* Judges candidate `cl`: `paired`, the planner's new closure for it or NULL, and `k`, the
** proto_lookup of its prototype (when unpaired). With TAKES_NEW, `*np` is the prototype it
** takes and `*source` where its cells come from (see take_cells). Changes nothing. */
static Verdict judge(const HotluaPlan *plan, const HClosure *cl, const HClosure *paired,
                     size_t k, HProto **np, const void **source) {
  const int *remap;
  int j;
  if (paired) {
    *np = closure_proto(paired);
    *source = paired;
    return closure_fits(cl, *np) ? TAKES_NEW : LEFT_FALLBACK;
  }
  if (k == 0) return LEFT_UNPAIRED;
  if (k == (size_t)-2) return LEFT_AMBIGUOUS;
  *np = (HProto *)plan->new_protos[k - 1];
  remap = plan->remap + plan->remap_offset[k - 1];
  for (j = 0; j < proto_nupvalues(*np); j++) {
    if (remap[j] == -2) return LEFT_SCOPE;
    if (remap[j] >= closure_nupvalues(cl) || remap[j] == -1) return LEFT_UPVALUE;
  }
  *source = remap;
  return TAKES_NEW;
}

/* The counter of `plan` a closure left old with `verdict` counts in. */
static size_t *left_counter(HotluaPlan *plan, Verdict verdict) {
  switch (verdict) {
    case LEFT_UNPAIRED: return &plan->left_unpaired;
    case LEFT_AMBIGUOUS: return &plan->left_ambiguous;
    case LEFT_SCOPE: return &plan->left_scope;
    default: return &plan->left_upvalue;
  }
}

/* The new prototype an unpaired closure with prototype lookup `k` would take, or NULL. */
static void *would_take(const HotluaPlan *plan, size_t k) {
  return k != 0 && k != (size_t)-1 && k != (size_t)-2 ? (void *)plan->new_protos[k - 1] : NULL;
}

/* Pushes `cl` and a new closure of `np` with the cells `remap` gives (its own by name, live
** module cells), for the walk to switch every reference from the one to the other. Each is on
** the stack (anchored) before anything else can allocate; a new object needs no barrier.
** Allocates: may raise a memory error or a stack overflow (the caller runs protected, and a
** closure made is then only garbage). Invariant: `remap` holds no -1 or -2 (judge). */
static void replace_closure(lua_State *L, const HotluaPlan *plan, HClosure *cl, HProto *np,
                            const int *remap) {
  HCell *uv[256];
  luaL_checkstack(L, 2, "hotlua: retargeting closures");
  push_closure(L, cl);
  take_cells(plan, cl, np, remap, 0, uv);
  closure_init(hotlua_new_closure(L, proto_nupvalues(np)), np, uv, proto_nupvalues(np));
}

/* Pushes `true`, then each closure of `scan->stale` with an anchor of the new prototype it
** would take (a closure of that prototype that is never called: it only keeps the prototype
** alive until the next reload, which skips it through `plan->ignore`), or `false`. Allocates: runs protected, like
** replace_closure; each object is on the stack before anything else can allocate. */
static void push_stale(lua_State *L, HotluaScan *scan) {
  size_t i;
  luaL_checkstack(L, 1, "hotlua: retargeting closures");
  lua_pushboolean(L, 1);
  for (i = 0; i + 1 < scan->stale.len; i += 2) {
    HProto *np = (HProto *)scan->stale.items[i + 1];
    luaL_checkstack(L, 2, "hotlua: retargeting closures");
    push_closure(L, (HClosure *)scan->stale.items[i]);
    if (np != NULL) {
      /* As many upvalues as the prototype declares, each a fresh closed cell: reading one
      ** through the debug API finds a cell, never memory past the closure. */
      closure_init(hotlua_new_closure(L, proto_nupvalues(np)), np, NULL, 0);
    } else {
      lua_pushboolean(L, 0);
    }
  }
}

/* Records candidate `cl` (`paired`, `k`: see judge), which runs on no frame of a running
** thread as far as the scan knows yet, where its verdict sends it: `scan->todo` (or
** `scan->grown`, whose new version needs more upvalues than it has, or in LuaJIT fewer), the
** fallback list, or `scan->stale` with a counter. Returns 0 when memory ran out. */
static int take(HotluaPlan *plan, HotluaScan *scan, HClosure *cl, const HClosure *paired,
                size_t k) {
  HProto *np = NULL;
  const void *source = NULL;
  Verdict verdict = judge(plan, cl, paired, k, &np, &source);
  if (verdict == LEFT_FALLBACK) {
    plan->fallback[plan->fallback_len++] = cl;
    return 1;
  }
  if (verdict != TAKES_NEW) {
    /* A run-time closure left old: remembered, with the new prototype it would have taken if
    ** there is one, so that the next reload counts it and tries it again. */
    ++*left_counter(plan, verdict);
    return push(&scan->stale, cl) && push(&scan->stale, would_take(plan, k));
  }
  if (paired) plan->pairs_retargeted++;
  else plan->runtime_retargeted++;
  if (!paired && !closure_fits(cl, np))
    return push(&scan->grown, cl) && push(&scan->grown, np) && push(&scan->grown, (void *)source);
  return push(&scan->todo, cl) &&
         push(&scan->todo, paired ? (void *)paired : (void *)(1 + 2 * (uintptr_t)k));
}

/* What `take` decided for the closure at `item` of `scan->todo`: `*np` and `*source` as judge
** gave them; returns whether the planner paired it. */
static int todo_verdict(const HotluaPlan *plan, void *const *item, HProto **np,
                        const void **source) {
  uintptr_t word = (uintptr_t)item[1];
  size_t k = (size_t)(word >> 1);
  if ((word & 1) == 0) {
    *np = closure_proto((const HClosure *)item[1]);
    *source = item[1];
    return 1;
  }
  *np = (HProto *)plan->new_protos[k - 1];
  *source = plan->remap + plan->remap_offset[k - 1];
  return 0;
}

/* Takes back what `take` decided for the closures of sorted `running` (on frames of running
** threads, whose interpreter frame caches their code and constants): each keeps its old code,
** a planner pair left to the walk, any other counted as running and remembered as stale.
** One pass over `todo` and `grown`; a few lookups per running closure. */
static int keep_running(HotluaPlan *plan, HotluaScan *scan, const PtrVec *running) {
  size_t i, kept;
  int ok = 1;
  for (i = kept = 0; i + 1 < scan->todo.len; i += 2) {
    void **item = scan->todo.items + i;
    HClosure *cl = (HClosure *)item[0];
    HProto *np;
    const void *source;
    if (bsearch(&cl, running->items, running->len, sizeof(void *), cmp_ptr) == NULL) {
      memmove(scan->todo.items + kept, item, 2 * sizeof(void *));
      kept += 2;
    } else if (todo_verdict(plan, item, &np, &source)) {
      plan->pairs_retargeted--;
      plan->fallback[plan->fallback_len++] = cl;
    } else {
      plan->runtime_retargeted--;
      plan->left_running++;
      ok = ok && push(&scan->stale, cl) && push(&scan->stale, np);
    }
  }
  scan->todo.len = kept;
  for (i = kept = 0; i + 2 < scan->grown.len; i += 3) {
    void **item = scan->grown.items + i;
    if (bsearch(&item[0], running->items, running->len, sizeof(void *), cmp_ptr) == NULL) {
      memmove(scan->grown.items + kept, item, 3 * sizeof(void *));
      kept += 3;
    } else {
      plan->runtime_retargeted--;
      plan->left_running++;
      ok = ok && push(&scan->stale, item[0]) && push(&scan->stale, item[1]);
    }
  }
  scan->grown.len = kept;
  /* Those left old for another reason count as running instead. */
  for (i = 0; i < running->len; i++) {
    HClosure *cl = (HClosure *)running->items[i];
    const HClosure *paired = pair_lookup(plan, cl);
    size_t k = paired ? 0 : proto_lookup(plan, closure_proto(cl));
    HProto *np;
    const void *source;
    Verdict verdict = judge(plan, cl, paired, k, &np, &source);
    if (!paired && verdict != TAKES_NEW && verdict != LEFT_FALLBACK) {
      --*left_counter(plan, verdict);
      plan->left_running++;
    }
  }
  return ok;
}

/* Finds every closure of the old version to retarget, changing nothing a program can see.
**
** 1. One pass over the collector's list of objects (backend.h: which objects it holds)
**    collects the threads and judges each candidate closure while it is in the cache: kept
**    (counted, or left to the walk in `fallback`) or put on `scan->todo`, counted as
**    retargeted, for hotlua_scan_commit.
** 2. Every frame of every thread: a frame of a running thread (the running one and those
**    resuming another) executing a candidate keeps its closure unchanged (the interpreter's
**    C frame caches its code and constants: keep_running takes back its verdict); a frame of
**    a suspended or dead thread gets a private copy (hotlua_scan_abandon puts the original
**    back).
** Returns 0, or -1 when the scan's own memory could not be allocated. Copying a frame's
** closure allocates a Lua object and may raise "not enough memory": run protected, and call
** hotlua_scan_abandon after an error. Invariants: see the top of backend.h. */
int hotlua_scan_prepare(lua_State *L, HotluaPlan *plan, HotluaScan *scan) {
  PtrVec threads = {NULL, 0, 0}, running = {NULL, 0, 0};
  HObject *o;
  size_t i;
  int ok = 1;
  uintptr_t ahead = 0;

  if (main_thread_unlisted(L) != NULL) ok = push(&threads, main_thread_unlisted(L));
  for (o = objects_first(L); ok && o != NULL; o = object_next(o)) {
    lua_State *th;
    HClosure *cl;
    prefetch_below(&ahead, o);
    plan->objects_scanned++;
    if ((th = object_as_thread(L, o)) != NULL) {
      ok = push(&threads, th);
    } else if ((cl = object_as_closure(L, o)) != NULL) {
      const HClosure *paired = pair_lookup(plan, cl);
      size_t k = paired ? 0 : proto_lookup(plan, closure_proto(cl));
      if ((paired || k != (size_t)-1) && !ignored(plan, cl)) ok = take(plan, scan, cl, paired, k);
    }
  }
  for (i = 0; ok && i < threads.len; i++) {
    lua_State *th = (lua_State *)threads.items[i];
    HFrame *f;
    for (f = frame_top(th); ok && f != NULL; f = frame_below(th, f)) {
      HClosure *cl = frame_lua_closure(f);
      if (cl == NULL || (pair_lookup(plan, cl) == NULL &&
                         proto_lookup(plan, closure_proto(cl)) == (size_t)-1) ||
          ignored(plan, cl))
        continue;
      if (thread_running(th)) {
        plan->frames_running++;
        ok = push(&running, cl);
      } else {
        if (!frame_is_pseudo(f)) plan->frames_copied++;
        ok = push(&scan->copied, f) && push(&scan->copied, cl);
      }
    }
  }
  if (ok && running.len > 0) {
    size_t unique = 0;
    qsort(running.items, running.len, sizeof(void *), cmp_ptr);
    for (i = 0; i < running.len; i++)
      if (unique == 0 || running.items[unique - 1] != running.items[i])
        running.items[unique++] = running.items[i];
    running.len = unique;
    ok = keep_running(plan, scan, &running);
  }
  free(threads.items);
  free(running.items);
  if (!ok) return -1;
  /* Last, as it is the only step that allocates Lua objects (and may raise). */
  while (scan->copies_made * 2 < scan->copied.len) {
    HFrame *f = (HFrame *)scan->copied.items[scan->copies_made * 2];
    copy_frame_closure(L, f, (HClosure *)scan->copied.items[scan->copies_made * 2 + 1]);
    scan->copies_made++;
  }
  while (scan->grown_made * 3 < scan->grown.len) {
    void **item = scan->grown.items + scan->grown_made * 3;
    replace_closure(L, plan, (HClosure *)item[0], (HProto *)item[1], (const int *)item[2]);
    scan->grown_made++;
  }
  push_stale(L, scan);
  return 0;
}

/* Retargets every closure hotlua_scan_prepare put on `scan->todo`, with the prototype and
** cells it chose (the walk that may run in between switches references, never a closure's
** cells), then frees `scan`. Allocates nothing and cannot
** fail. */
void hotlua_scan_commit(lua_State *L, HotluaPlan *plan, HotluaScan *scan) {
  HCell *uv[256];
  size_t i;
  for (i = 0; i + 1 < scan->todo.len; i += 2) {
    HClosure *cl = (HClosure *)scan->todo.items[i];
    HProto *np;
    const void *source;
    int paired;
    /* The closures lie anywhere in the heap: ask for one a few entries ahead meanwhile. */
    if (i + 16 < scan->todo.len) PREFETCH_FOR_WRITE(scan->todo.items[i + 16]);
    paired = todo_verdict(plan, scan->todo.items + i, &np, &source);
    take_cells(plan, cl, np, source, paired, uv);
    retarget(L, cl, np, uv, paired ? (const HClosure *)source : NULL);
  }
  free(scan->todo.items);
  free(scan->copied.items);
  free(scan->grown.items);
  free(scan->stale.items);
  free(scan);
}

/* Undoes hotlua_scan_prepare (each frame given a copy runs its own closure again) and frees
** `scan`. Allocates nothing: stack slots need no barrier (threads are always traversed again
** in the atomic phase), and the frames of a suspended thread do not move. */
void hotlua_scan_abandon(lua_State *L, HotluaScan *scan) {
  size_t i;
  (void)L;
  for (i = 0; i < scan->copies_made; i++) {
    HFrame *f = (HFrame *)scan->copied.items[i * 2];
    frame_set_closure(f, (HClosure *)scan->copied.items[i * 2 + 1]);
  }
  free(scan->todo.items);
  free(scan->copied.items);
  free(scan->grown.items);
  free(scan->stale.items);
  free(scan);
}
