/* The scan: one pass over the collector's object list that retargets old closures, the same
** for every backend: `backend.h` (lua54/ or luajit/, chosen by build.rs through the include
** path) names the collector's types and gives the few operations that differ, each with its
** invariants; the invariants of the whole are at the top of that file. */

#include "backend.h"
#include "plan.h"

static int cmp_ptr(const void *a, const void *b);

static int is_candidate(const HotluaPlan *plan, const HClosure *cl) {
  const void *key = cl;
  if (pair_lookup(plan, cl) == NULL && proto_lookup(plan, closure_proto(cl)) == (size_t)-1)
    return 0;
  return plan->ignore_len == 0 ||
         bsearch(&key, plan->ignore, plan->ignore_len, sizeof(void *), cmp_ptr) == NULL;
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
  PtrVec todo;      /* closures to retarget: the closure, its new prototype, its source */
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

/* The new prototype closure `cl` takes, and where its cells come from (`*source`, `*paired`:
** see take_cells); NULL when `cl` keeps its old code, with the reason counted in `plan` (or
** `cl` added to the fallback list). `running` is sorted: closures on frames of running
** threads. */
static HProto *classify(HotluaPlan *plan, HClosure *cl, const PtrVec *running,
                        const void **source, int *paired_out) {
  const HClosure *paired = pair_lookup(plan, cl);
  void *key = cl;
  HProto *np;
  int j;
  if (bsearch(&key, running->items, running->len, sizeof(void *), cmp_ptr) != NULL) {
    if (paired) plan->fallback[plan->fallback_len++] = cl;
    else plan->left_running++;
    return NULL;
  }
  if (paired) {
    np = closure_proto(paired);
    if (!closure_fits(cl, np)) {
      plan->fallback[plan->fallback_len++] = cl;
      return NULL;
    }
    *source = paired;
    *paired_out = 1;
    return np;
  } else {
    size_t k = proto_lookup(plan, closure_proto(cl));
    const int *remap;
    if (k == 0) {
      plan->left_unpaired++;
      return NULL;
    }
    if (k == (size_t)-2) {
      plan->left_ambiguous++;
      return NULL;
    }
    np = (HProto *)plan->new_protos[k - 1];
    remap = plan->remap + plan->remap_offset[k - 1];
    for (j = 0; j < proto_nupvalues(np); j++) {
      if (remap[j] == -2) {
        plan->left_scope++;
        return NULL;
      }
      if (remap[j] >= closure_nupvalues(cl) || remap[j] == -1) {
        plan->left_upvalue++;
        return NULL;
      }
    }
    *source = remap;
    *paired_out = 0;
    return np;
  }
}

/* Pushes `cl` and a new closure of `np` with the cells `remap` gives (its own by name, live
** module cells), for the walk to switch every reference from the one to the other. Each is on
** the stack (anchored) before anything else can allocate; a new object needs no barrier.
** Allocates: may raise a memory error or a stack overflow (the caller runs protected, and a
** closure made is then only garbage). Invariant: `remap` holds no -1 or -2 (classify). */
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

/* Finds every closure of the old version to retarget, changing nothing a program can see.
**
** 1. One pass over the collector's list of objects (backend.h: which objects it holds)
**    collects the threads and the candidate closures.
** 2. Every frame of every thread: a frame of a running thread (the running one and those
**    resuming another) executing a candidate keeps its closure unchanged (the interpreter's
**    C frame caches its code and constants); a frame of a suspended or dead thread gets a
**    private copy (hotlua_scan_abandon puts the original back).
** 3. Each candidate is classified: kept (counted, or left to the walk in `fallback`) or put
**    on `scan->todo`, counted as retargeted, for hotlua_scan_commit.
** Returns 0, or -1 when the scan's own memory could not be allocated. Copying a frame's
** closure allocates a Lua object and may raise "not enough memory": run protected, and call
** hotlua_scan_abandon after an error. Invariants: see the top of backend.h. */
int hotlua_scan_prepare(lua_State *L, HotluaPlan *plan, HotluaScan *scan) {
  PtrVec threads = {NULL, 0, 0}, cands = {NULL, 0, 0}, running = {NULL, 0, 0};
  HObject *o;
  size_t i;
  int ok = 1;

  if (main_thread_unlisted(L) != NULL) ok = push(&threads, main_thread_unlisted(L));
  for (o = objects_first(L); ok && o != NULL; o = object_next(o)) {
    lua_State *th;
    HClosure *cl;
    plan->objects_scanned++;
    if ((th = object_as_thread(L, o)) != NULL)
      ok = push(&threads, th);
    else if ((cl = object_as_closure(L, o)) != NULL && is_candidate(plan, cl))
      ok = push(&cands, cl);
  }
  for (i = 0; ok && i < threads.len; i++) {
    lua_State *th = (lua_State *)threads.items[i];
    HFrame *f;
    for (f = frame_top(th); ok && f != NULL; f = frame_below(th, f)) {
      HClosure *cl = frame_lua_closure(f);
      if (cl == NULL || !is_candidate(plan, cl)) continue;
      if (thread_running(th)) {
        plan->frames_running++;
        ok = push(&running, cl);
      } else {
        plan->frames_copied++;
        ok = push(&scan->copied, f) && push(&scan->copied, cl);
      }
    }
  }
  if (ok) qsort(running.items, running.len, sizeof(void *), cmp_ptr);
  for (i = 0; ok && i < cands.len; i++) {
    HClosure *cl = (HClosure *)cands.items[i];
    const void *source = NULL;
    int paired = 0;
    HProto *np = classify(plan, cl, &running, &source, &paired);
    if (np == NULL) {
      /* A run-time closure left old: remembered, with the new prototype it would have taken
      ** if there is one, so that the next reload counts it and tries it again. */
      if (pair_lookup(plan, cl) == NULL) {
        size_t k = proto_lookup(plan, closure_proto(cl));
        int has = k != 0 && k != (size_t)-1 && k != (size_t)-2;
        ok = push(&scan->stale, cl) &&
             push(&scan->stale, has ? (void *)plan->new_protos[k - 1] : NULL);
      }
      continue;
    }
    if (paired) plan->pairs_retargeted++;
    else plan->runtime_retargeted++;
    if (!paired && !closure_fits(cl, np)) {
      /* Its new version needs more upvalues (`_ENV` for an added `print`, a module local it
      ** did not use), or, in LuaJIT, fewer: a new closure takes its place, and the walk
      ** switches references. */
      ok = push(&scan->grown, cl) && push(&scan->grown, np) && push(&scan->grown, (void *)source);
      continue;
    }
    /* Closures and remap arrays are at least 4-byte aligned: the low bit tells them apart. */
    ok = push(&scan->todo, cl) && push(&scan->todo, np) &&
         push(&scan->todo, (void *)((uintptr_t)source | (uintptr_t)!paired));
  }
  free(threads.items);
  free(cands.items);
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
** cells it chose (nothing has run since), then frees `scan`. Allocates nothing and cannot
** fail. */
void hotlua_scan_commit(lua_State *L, HotluaPlan *plan, HotluaScan *scan) {
  HCell *uv[256];
  size_t i;
  for (i = 0; i + 2 < scan->todo.len; i += 3) {
    HClosure *cl = (HClosure *)scan->todo.items[i];
    HProto *np = (HProto *)scan->todo.items[i + 1];
    uintptr_t tagged = (uintptr_t)scan->todo.items[i + 2];
    const void *source = (const void *)(tagged & ~(uintptr_t)1);
    int paired = (tagged & 1) == 0;
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
