/* The scan: one pass over the collector's object list that retargets old closures (see
** inplace.h). */

#include "inplace.h"

/* What the Rust side planned, and the counters the scan fills. Layout mirrored by
** `Plan` in src/switch/inplace.rs. Hash tables are open addressing over a power-of-two
** capacity (`mask + 1`), empty slots hold NULL keys, probed linearly from hash(key). */
typedef struct HotluaPlan {
  /* old prototype -> 1 + index into new_protos/remap_offset, or 0: old, but unpaired */
  const Proto *const *proto_keys;
  const size_t *proto_values;
  size_t proto_mask;
  const Proto *const *new_protos;
  /* remap[remap_offset[k] + j]: the old upvalue index that new upvalue j of pair k takes,
  ** -1 when its value cannot be known, -2 when the variable changed scope (a per-call local
  ** now at module level or the other way round, with no live cell to bind), or -3 - c: the
  ** live cell cells[c] (a module-level local the planner joined) */
  const size_t *remap_offset;
  const int *remap;
  UpVal *const *cells;
  /* planner pairs: old closure -> new closure (both Lua closures) */
  const LClosure *const *pair_keys;
  const LClosure *const *pair_values;
  size_t pair_mask;
  /* closures the scan never takes for the module's (hotlua's anchors), sorted */
  const void *const *ignore;
  size_t ignore_len;
  /* out: old closures of planner pairs left old, for the walk (capacity: number of pairs) */
  const LClosure **fallback;
  size_t fallback_len;
  /* out: counters */
  size_t objects_scanned;
  size_t pairs_retargeted;
  size_t runtime_retargeted;
  /* closures that are not planner pairs (those go to `fallback` instead) left old: */
  size_t left_running;     /* on a frame of a thread that is running or resuming another */
  size_t left_upvalue;     /* needs an upvalue whose value cannot be known */
  size_t left_unpaired;    /* its prototype has no counterpart in the new file */
  size_t left_ambiguous;   /* several new functions could be its counterpart */
  size_t left_scope;       /* a variable it captures changed scope, with no live cell */
  size_t frames_running;   /* frames of running threads executing an old function */
  size_t frames_copied;    /* suspended frames given a private copy of their closure */
} HotluaPlan;

static size_t hash_ptr(const void *p, size_t mask) {
  size_t x = (size_t)p >> 4;
  x ^= x >> 17;
  x *= (size_t)0x9E3779B97F4A7C15ull;
  return (x >> 7) & mask;
}

/* 1 + index of the pair of old prototype `p`, 0 for an unpaired old prototype, (size_t)-2 for
** an ambiguous one, or (size_t)-1 when `p` is not an old prototype of the batch. */
static size_t proto_lookup(const HotluaPlan *plan, const Proto *p) {
  size_t h;
  if (plan->proto_keys == NULL) return (size_t)-1;
  for (h = hash_ptr(p, plan->proto_mask);; h = (h + 1) & plan->proto_mask) {
    const Proto *k = plan->proto_keys[h];
    if (k == p) return plan->proto_values[h];
    if (k == NULL) return (size_t)-1;
  }
}

/* The new closure paired with old closure `cl` by the planner, or NULL. */
static const LClosure *pair_lookup(const HotluaPlan *plan, const LClosure *cl) {
  size_t h;
  if (plan->pair_keys == NULL) return NULL;
  for (h = hash_ptr(cl, plan->pair_mask);; h = (h + 1) & plan->pair_mask) {
    const LClosure *k = plan->pair_keys[h];
    if (k == cl) return plan->pair_values[h];
    if (k == NULL) return NULL;
  }
}

static int cmp_ptr(const void *a, const void *b);

static int is_candidate(const HotluaPlan *plan, const LClosure *cl) {
  const void *key = cl;
  if (pair_lookup(plan, cl) == NULL && proto_lookup(plan, cl->p) == (size_t)-1) return 0;
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

/* Points `cl` at prototype `np` with upvalues `uv[0 .. np->sizeupvalues)`, clearing the slots
** past them. Invariant: np->sizeupvalues <= cl->nupvalues (the closure's allocated size is
** unchanged, so freeing it later uses the right size); `cl` is on no frame of a running
** thread (its savedpc would point into the old code while `k` came from the new). A black
** `cl` is given back to the collector to visit again (internals.c), which keeps the
** tri-colour invariant in incremental mode and the age invariant in generational mode. */
static void retarget(lua_State *L, LClosure *cl, Proto *np, UpVal **uv) {
  int j;
  cl->p = np;
  for (j = 0; j < np->sizeupvalues; j++) cl->upvals[j] = uv[j];
  for (; j < cl->nupvalues; j++) cl->upvals[j] = NULL;
  hotlua_barrier_back(L, obj2gco(cl), &cl->gclist);
}

/* Gives the frame `ci` of a suspended (or dead) thread its own copy of its closure `cl`:
** same prototype, same upvalue cells. When the thread resumes, luaV_execute reloads the
** frame's closure from `ci->func` and so runs the copy, in the old code with the old
** constants, while `cl` itself can take the new prototype. Allocates (may raise a memory
** error: the caller runs protected). The copy is stored into the stack slot before anything
** else can allocate; stack slots need no barrier (threads are always traversed again in the
** atomic phase). */
static void copy_frame_closure(lua_State *L, CallInfo *ci, LClosure *cl) {
  int j;
  LClosure *copy = hotlua_new_closure(L, cl->nupvalues);
  copy->p = cl->p;
  for (j = 0; j < cl->nupvalues; j++) copy->upvals[j] = cl->upvals[j];
  setclLvalue2s(L, ci->func.p, copy);
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
  PtrVec copied;    /* CallInfo *, then the closure it ran, of each frame given a copy */
  size_t copies_made;  /* frames of `copied` whose copy is installed */
} HotluaScan;

HotluaScan *hotlua_scan_new(void) { return (HotluaScan *)calloc(1, sizeof(HotluaScan)); }

/* Fills `uv` with the upvalue cells closure `cl` takes with new prototype `np`, from
** `source`: the planner's new closure paired with `cl`, or (`paired` false) the remap of
** `cl`'s prototype pair. */
static void take_cells(const HotluaPlan *plan, const LClosure *cl, const Proto *np,
                       const void *source, int paired, UpVal **uv) {
  int j;
  if (paired) {
    const LClosure *pair = (const LClosure *)source;
    for (j = 0; j < np->sizeupvalues; j++) uv[j] = pair->upvals[j];
    return;
  }
  for (j = 0; j < np->sizeupvalues; j++) {
    int from = ((const int *)source)[j];
    uv[j] = from <= -3 ? plan->cells[-from - 3] : cl->upvals[from];
  }
}

/* The new prototype closure `cl` takes, and where its cells come from (`*source`, `*paired`:
** see take_cells); NULL when `cl` keeps its old code, with the reason counted in `plan` (or
** `cl` added to the fallback list). `running` is sorted: closures on frames of running
** threads. */
static Proto *classify(HotluaPlan *plan, LClosure *cl, const PtrVec *running,
                       const void **source, int *paired_out) {
  const LClosure *paired = pair_lookup(plan, cl);
  void *key = cl;
  Proto *np;
  int j;
  if (bsearch(&key, running->items, running->len, sizeof(void *), cmp_ptr) != NULL) {
    if (paired) plan->fallback[plan->fallback_len++] = cl;
    else plan->left_running++;
    return NULL;
  }
  if (paired) {
    np = paired->p;
    if (np->sizeupvalues > cl->nupvalues) {
      plan->fallback[plan->fallback_len++] = cl;
      return NULL;
    }
    *source = paired;
    *paired_out = 1;
    return np;
  } else {
    size_t k = proto_lookup(plan, cl->p);
    const int *remap;
    if (k == 0) {
      plan->left_unpaired++;
      return NULL;
    }
    if (k == (size_t)-2) {
      plan->left_ambiguous++;
      return NULL;
    }
    np = (Proto *)plan->new_protos[k - 1];
    remap = plan->remap + plan->remap_offset[k - 1];
    for (j = 0; j < np->sizeupvalues; j++) {
      if (remap[j] == -2) {
        plan->left_scope++;
        return NULL;
      }
      if (remap[j] >= cl->nupvalues || remap[j] == -1) {
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
static void replace_closure(lua_State *L, const HotluaPlan *plan, LClosure *cl, Proto *np,
                            const int *remap) {
  UpVal *uv[256];
  LClosure *ncl;
  int j;
  luaL_checkstack(L, 2, "hotlua: retargeting closures");
  setclLvalue2s(L, L->top.p, cl);
  L->top.p++;
  ncl = hotlua_new_closure(L, np->sizeupvalues);
  take_cells(plan, cl, np, remap, 0, uv);
  ncl->p = np;
  for (j = 0; j < np->sizeupvalues; j++) ncl->upvals[j] = uv[j];
}

/* Pushes `true`, then each closure of `scan->stale` with an anchor of the new prototype it
** would take (a closure of that prototype that is never called: it only keeps the prototype
** alive until the next reload, which skips it through `plan->ignore`), or `false`. Allocates: runs protected, like
** replace_closure; each object is on the stack before anything else can allocate. */
static void push_stale(lua_State *L, HotluaScan *scan) {
  size_t i;
  luaL_checkstack(L, 1, "hotlua: retargeting closures");
  setbtvalue(s2v(L->top.p));
  L->top.p++;
  for (i = 0; i + 1 < scan->stale.len; i += 2) {
    Proto *np = (Proto *)scan->stale.items[i + 1];
    luaL_checkstack(L, 2, "hotlua: retargeting closures");
    setclLvalue2s(L, L->top.p, (LClosure *)scan->stale.items[i]);
    L->top.p++;
    if (np != NULL) {
      /* As many upvalues as the prototype declares, each a fresh closed cell: reading one
      ** through the debug API finds a cell, never memory past the closure. */
      hotlua_new_closure(L, np->sizeupvalues)->p = np;
    } else {
      lua_pushboolean(L, 0);
    }
  }
}

/* Finds every closure of the old version to retarget, changing nothing a program can see.
**
** 1. One pass over `g->allgc` (every collectable object but the main thread, the fixed
**    strings and objects with finalizers, which are tables and full userdata only: closures
**    and threads cannot have a `__gc`) collects the threads and the candidate closures.
** 2. Every frame of every thread: a frame of a running thread (status LUA_OK with frames: the
**    running one and those resuming another) executing a candidate keeps its closure
**    unchanged (the C frame of luaV_execute caches its code and constants); a frame of a
**    suspended or dead thread gets a private copy (hotlua_scan_abandon puts the original
**    back).
** 3. Each candidate is classified: kept (counted, or left to the walk in `fallback`) or put
**    on `scan->todo`, counted as retargeted, for hotlua_scan_commit.
** Returns 0, or -1 when the scan's own memory could not be allocated. Copying a frame's
** closure allocates a Lua object and may raise "not enough memory": run protected, and call
** hotlua_scan_abandon after an error. Invariants: see the top of this file. */
int hotlua_scan_prepare(lua_State *L, HotluaPlan *plan, HotluaScan *scan) {
  global_State *g = G(L);
  PtrVec threads = {NULL, 0, 0}, cands = {NULL, 0, 0}, running = {NULL, 0, 0};
  GCObject *o;
  size_t i;
  int ok = 1;

  ok = push(&threads, g->mainthread);
  for (o = g->allgc; ok && o != NULL; o = o->next) {
    plan->objects_scanned++;
    if (isdead(g, o)) continue;
    if (o->tt == LUA_VTHREAD)
      ok = push(&threads, gco2th(o));
    else if (o->tt == LUA_VLCL && is_candidate(plan, gco2lcl(o)))
      ok = push(&cands, gco2lcl(o));
  }
  for (i = 0; ok && i < threads.len; i++) {
    lua_State *th = (lua_State *)threads.items[i];
    CallInfo *ci;
    for (ci = th->ci; ok && ci != &th->base_ci; ci = ci->previous) {
      if (!isLua(ci) || !is_candidate(plan, ci_func(ci))) continue;
      if (th->status == LUA_OK) {
        plan->frames_running++;
        ok = push(&running, ci_func(ci));
      } else {
        plan->frames_copied++;
        ok = push(&scan->copied, ci) && push(&scan->copied, ci_func(ci));
      }
    }
  }
  if (ok) qsort(running.items, running.len, sizeof(void *), cmp_ptr);
  for (i = 0; ok && i < cands.len; i++) {
    LClosure *cl = (LClosure *)cands.items[i];
    const void *source = NULL;
    int paired = 0;
    Proto *np = classify(plan, cl, &running, &source, &paired);
    if (np == NULL) {
      /* A run-time closure left old: remembered, with the new prototype it would have taken
      ** if there is one, so that the next reload counts it and tries it again. */
      if (pair_lookup(plan, cl) == NULL) {
        size_t k = proto_lookup(plan, cl->p);
        int has = k != 0 && k != (size_t)-1 && k != (size_t)-2;
        ok = push(&scan->stale, cl) && push(&scan->stale, has ? (void *)plan->new_protos[k - 1] : NULL);
      }
      continue;
    }
    if (paired) plan->pairs_retargeted++;
    else plan->runtime_retargeted++;
    if (!paired && np->sizeupvalues > cl->nupvalues) {
      /* Its new version needs more upvalues (`_ENV` for an added `print`, a module local it
      ** did not use): a new closure takes its place, and the walk switches references. */
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
    CallInfo *ci = (CallInfo *)scan->copied.items[scan->copies_made * 2];
    copy_frame_closure(L, ci, (LClosure *)scan->copied.items[scan->copies_made * 2 + 1]);
    scan->copies_made++;
  }
  while (scan->grown_made * 3 < scan->grown.len) {
    void **item = scan->grown.items + scan->grown_made * 3;
    replace_closure(L, plan, (LClosure *)item[0], (Proto *)item[1], (const int *)item[2]);
    scan->grown_made++;
  }
  push_stale(L, scan);
  return 0;
}

/* Retargets every closure hotlua_scan_prepare put on `scan->todo`, with the prototype and
** cells it chose (nothing has run since), then frees `scan`. Allocates nothing and cannot
** fail. */
void hotlua_scan_commit(lua_State *L, HotluaPlan *plan, HotluaScan *scan) {
  UpVal *uv[256];
  size_t i;
  for (i = 0; i + 2 < scan->todo.len; i += 3) {
    LClosure *cl = (LClosure *)scan->todo.items[i];
    Proto *np = (Proto *)scan->todo.items[i + 1];
    uintptr_t tagged = (uintptr_t)scan->todo.items[i + 2];
    take_cells(plan, cl, np, (const void *)(tagged & ~(uintptr_t)1), (tagged & 1) == 0, uv);
    retarget(L, cl, np, uv);
  }
  free(scan->todo.items);
  free(scan->copied.items);
  free(scan->grown.items);
  free(scan->stale.items);
  free(scan);
}

/* Undoes hotlua_scan_prepare (each frame given a copy runs its own closure again) and frees
** `scan`. Allocates nothing: stack slots need no barrier (threads are always traversed again
** in the atomic phase), and the CallInfo records of a suspended thread do not move. */
void hotlua_scan_abandon(lua_State *L, HotluaScan *scan) {
  size_t i;
  for (i = 0; i < scan->copies_made; i++) {
    CallInfo *ci = (CallInfo *)scan->copied.items[i * 2];
    setclLvalue2s(L, ci->func.p, (LClosure *)scan->copied.items[i * 2 + 1]);
  }
  free(scan->todo.items);
  free(scan->copied.items);
  free(scan->grown.items);
  free(scan->stale.items);
  free(scan);
}
