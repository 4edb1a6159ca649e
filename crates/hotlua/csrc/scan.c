/* The scan: one pass over the collector's object list that retargets old closures, the same
** for every backend: `backend.h` (lua54/ or luajit/, chosen by build.rs through the include
** path) names the collector's types and gives the few operations that differ, each with its
** invariants; the invariants of the whole are at the top of that file. What becomes of each
** closure it meets is verdict.h's. */

#include "backend.h"
#include "plan.h"
#include "prefetch.h"
#include "ptr_vec.h"
#include "verdict.h"

/* What a scan did, between hotlua_scan_prepare and hotlua_scan_commit or
** hotlua_scan_abandon. Allocated with malloc, owned by the caller (src/switch/inplace.rs).
**
** A retargeted closure is put back from what `undo` logged of it, or, when retarget changed
** nothing but its prototype (a run-time closure whose cells stay in place) and the new
** prototype has one old counterpart (undo_target), from that alone: the common case logs
** nothing, so a scan of a big heap allocates almost nothing. Those are told apart from the
** closures that already ran a new prototype before the scan (`born_new`) and from those made
** after it (they come before `first` on the collector's list). */
typedef struct HotluaScan {
  const HotluaPlan *plan;  /* the plan hotlua_scan_prepare ran with (the caller keeps it until
                              commit or abandon) */
  lua_State *L;            /* the thread it ran on, NULL before it ran */
  int emergency_was;       /* emergency_collection_stop's answer, for commit and abandon */
  PtrVec undo;      /* closures retargeted with a log: each, then closure_saved_words(it)
                       words that closure_save kept of it before (see undo_entry_next); an
                       entry put back has the low bit of its closure set (closures are
                       aligned) */
  size_t unlogged;  /* closures retargeted without a log */
  HObject *first;   /* the first object of the collector's list when the scan began */
  PtrVec born_new;  /* the closures that ran a new prototype before the scan, sorted at the
                       first search (born_new_sorted) */
  int born_new_sorted;
  PtrVec grown;     /* closures whose new version needs more upvalues than they have: the
                       closure, its new prototype, its remap (replaced by a new closure) */
  size_t grown_made;   /* closures of `grown` whose replacement is made (on the stack) */
  PtrVec stale;     /* run-time closures left old: the closure, the new prototype it would
                       take, or NULL */
  PtrVec copied;    /* HFrame *, the retargeted closure it ran, and that closure's undo entry
                       or NULL, of each frame of a suspended thread given a copy */
  size_t copies_made;  /* frames of `copied` whose copy is installed */
  Judged judged;
} HotluaScan;

HotluaScan *hotlua_scan_new(void) { return (HotluaScan *)calloc(1, sizeof(HotluaScan)); }

/* The closure of undo entry `e`, NULL once it was put back. */
static HClosure *undo_closure(void *const *e) {
  return ((uintptr_t)e[0] & 1) ? NULL : (HClosure *)e[0];
}

/* The undo entry after `e` (whose closure's upvalue count did not change: retarget keeps it). */
static void **undo_entry_next(void **e) {
  HClosure *cl = (HClosure *)((uintptr_t)e[0] & ~(uintptr_t)1);
  return e + 1 + closure_saved_words(cl);
}

/* Puts the closure of undo entry `e` back as it was and marks the entry. */
static void undo_closure_put_back(lua_State *L, void **e) {
  closure_restore(L, (HClosure *)e[0], e + 1);
  e[0] = (void *)((uintptr_t)e[0] | 1);
}

/* Whether `cl` ran a new prototype before the scan. The list is sorted at the first search:
** a scan that retargets only a module's functions (ten thousand new closures on the list)
** never searches it. */
static int born_new(HotluaScan *scan, const HClosure *cl) {
  if (scan->born_new.len == 0) return 0;
  if (!scan->born_new_sorted) {
    sort_unique(&scan->born_new, 1);
    scan->born_new_sorted = 1;
  }
  return bsearch(&cl, scan->born_new.items, scan->born_new.len, sizeof(void *), cmp_ptr) != NULL;
}

/* Whether `cl`, which runs a new prototype, was retargeted by this scan without a log: the
** prototype it had is then undo_target of the one it has. */
static int retargeted_unlogged(const HotluaPlan *plan, HotluaScan *scan, const HClosure *cl) {
  const HProto *p = closure_proto(cl);
  return scan->unlogged > 0 && undo_target(plan, p) != NULL &&
         closure_nupvalues(cl) == proto_nupvalues(p) && !born_new(scan, cl);
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
** alive until the next reload, which skips it through `plan->ignore`), or `false`.
** Allocates: runs protected, like replace_closure; each object is on the stack before
** anything else can allocate. */
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

/* Records candidate `cl` (`paired`, `k`: see judge) where its verdict sends it: retargeted
** at once, while it is in the cache (logged on `scan->undo` first, unless it keeps its cells
** in place: retarget_in_place); or `scan->grown` (its new version needs more upvalues than it
** has, or in LuaJIT fewer), the fallback list, or `scan->stale` with a counter. Returns 0 when
** memory ran out (`cl` is then unchanged). */
static int take(lua_State *L, HotluaPlan *plan, HotluaScan *scan, HClosure *cl,
                const HClosure *paired, size_t k) {
  HCell *uv[256];
  HProto *np = NULL;
  const void *source = NULL;
  void **entry;
  Verdict verdict;
  if (paired) {
    verdict = judge(plan, cl, paired, k, &np, &source);
  } else {
    const Judged *j = judge_unpaired(plan, &scan->judged, cl, k);
    if (j->in_place) {
      plan->runtime_retargeted++;
      scan->unlogged++;
      retarget_in_place(L, cl, j->np);
      return 1;
    }
    verdict = j->verdict;
    np = j->np;
    source = j->source;
  }
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
  entry = extend(&scan->undo, 1 + closure_saved_words(cl));
  if (entry == NULL) return 0;
  entry[0] = cl;
  closure_save(cl, entry + 1);
  take_cells(plan, cl, np, source, paired != NULL, uv);
  retarget(L, cl, np, uv, paired);
  return 1;
}

/* The first pair of `pairs` (closure, frame pairs sorted by closure) whose closure is `cl`,
** or NULL. */
static void **first_with(const PtrVec *pairs, const HClosure *cl) {
  void **found;
  if (pairs->len == 0) return NULL;
  found = (void **)bsearch(&cl, pairs->items, pairs->len / 2, 2 * sizeof(void *), cmp_ptr);
  while (found != NULL && found > pairs->items && found[-2] == cl) found -= 2;
  return found;
}

/* Puts back `cl`, on a frame of a running thread, which the scan retargeted (`e`: its undo
** entry, or NULL when unlogged): it keeps its old code. A planner pair is left to the walk,
** any other counted as running and remembered as stale. Returns 0 when memory ran out. */
static int put_back_running(lua_State *L, HotluaPlan *plan, HotluaScan *scan, HClosure *cl,
                            void **e) {
  HProto *np = closure_proto(cl);
  if (e != NULL) {
    undo_closure_put_back(L, e);
  } else {
    closure_set_proto(L, cl, (HProto *)undo_target(plan, np));
    scan->unlogged--;
  }
  if (pair_lookup(plan, cl) != NULL) {
    plan->pairs_retargeted--;
    plan->fallback[plan->fallback_len++] = cl;
    return 1;
  }
  plan->runtime_retargeted--;
  plan->left_running++;
  return push(&scan->stale, cl) && push(&scan->stale, np);
}

/* Settles the retargeted closures on frames: those of sorted `running` (on frames of running
** threads, whose interpreter frame caches their code and constants) are put back; each
** frame of `suspended` (closure, frame pairs of suspended or dead threads, sorted by
** closure, of closures that run a new prototype) that runs a retargeted one is put on
** `scan->copied`, to get a copy of it as it was. One pass over the log, a lookup or two per
** entry, then one over each list. Returns 0 when memory ran out. */
static int sort_out_frames(lua_State *L, HotluaPlan *plan, HotluaScan *scan,
                           const PtrVec *running, PtrVec *suspended) {
  void **e, **f, **end = scan->undo.items + scan->undo.len;
  void **suspended_end = suspended->items + suspended->len;
  size_t i;
  for (e = scan->undo.items; e < end; e = undo_entry_next(e)) {
    HClosure *cl = undo_closure(e);
    if (running->len > 0 &&
        bsearch(&cl, running->items, running->len, sizeof(void *), cmp_ptr) != NULL) {
      if (!put_back_running(L, plan, scan, cl, e)) return 0;
      continue;
    }
    for (f = first_with(suspended, cl); f != NULL && f < suspended_end && f[0] == cl; f += 2) {
      if (!push(&scan->copied, f[1]) || !push(&scan->copied, cl) || !push(&scan->copied, e))
        return 0;
      if (!frame_is_pseudo((HFrame *)f[1])) plan->frames_copied++;
      f[0] = NULL; /* settled */
    }
  }
  for (i = 0; i < running->len; i++) {
    HClosure *cl = (HClosure *)running->items[i];
    if (retargeted_unlogged(plan, scan, cl) && !put_back_running(L, plan, scan, cl, NULL))
      return 0;
  }
  for (f = suspended->items; f < suspended_end; f += 2) {
    if (f[0] == NULL || !retargeted_unlogged(plan, scan, (HClosure *)f[0])) continue;
    if (!push(&scan->copied, f[1]) || !push(&scan->copied, f[0]) || !push(&scan->copied, NULL))
      return 0;
    if (!frame_is_pseudo((HFrame *)f[1])) plan->frames_copied++;
  }
  return 1;
}

/* Takes back, for the closures of sorted `running` (on frames of running threads), what `take`
** decided for those of `scan->grown`: each keeps its old code, counted as running and
** remembered as stale; and counts as running those left old for another reason. */
static int keep_running(HotluaPlan *plan, HotluaScan *scan, const PtrVec *running) {
  size_t i, kept;
  int ok = 1;
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
  for (i = 0; i < running->len; i++) {
    HClosure *cl = (HClosure *)running->items[i];
    const HClosure *paired = pair_lookup(plan, cl);
    size_t k = paired ? 0 : proto_lookup(plan, closure_proto(cl));
    HProto *np;
    const void *source;
    Verdict verdict;
    if (paired || k == (size_t)-1) continue;
    verdict = judge(plan, cl, paired, k, &np, &source);
    if (verdict != TAKES_NEW && verdict != LEFT_FALLBACK) {
      --*left_counter(plan, verdict);
      plan->left_running++;
    }
  }
  return ok;
}

/* Gives the frame `f` of a suspended (or dead) thread a copy of `cl` as it was (`e`: its undo
** entry, or NULL when unlogged): same prototype, same upvalue cells. When the thread resumes,
** the frame runs the copy, in the old code with the old constants, while `cl` runs the new.
** Allocates (may raise a memory error: the caller runs protected). The copy is stored into
** the frame before anything else can allocate; stack slots need no barrier (threads are
** always traversed again in the atomic phase). */
static void copy_frame_closure(lua_State *L, const HotluaPlan *plan, HFrame *f, HClosure *cl,
                               void **e) {
  void *kept[2 + 256];
  HClosure *copy = hotlua_new_closure(L, closure_nupvalues(cl));
  if (e == NULL) {
    /* Unlogged: all it had but its prototype is in place. */
    closure_save(cl, kept);
    kept[0] = (void *)undo_target(plan, closure_proto(cl));
  }
  closure_restore(L, copy, e != NULL ? e + 1 : kept);
  frame_set_closure(f, copy);
  lua_pop(L, 1);
}

/* Retargets every closure of the old version that can take the new code, in one pass, keeping
** what hotlua_scan_abandon needs to put each back.
**
** 1. One pass over the collector's list of objects (backend.h: which objects it holds)
**    collects the threads and judges each candidate closure while it is in the cache: kept
**    (counted, or left to the walk in `fallback`), or retargeted and counted.
** 2. Every frame of every thread: a closure the scan retargeted on a frame of a running thread
**    (the running one and those resuming another; the interpreter's C frame caches its code
**    and constants) is put back; a frame of a suspended or dead thread that runs one gets a
**    copy of it as it was.
** Returns 0, or -1 when the scan's own memory could not be allocated. Copying a frame's
** closure allocates a Lua object and may raise "not enough memory": run protected, and call
** hotlua_scan_abandon after an error or -1. Invariants: see the top of backend.h. */
int hotlua_scan_prepare(lua_State *L, HotluaPlan *plan, HotluaScan *scan) {
  PtrVec threads = {NULL, 0, 0}, running = {NULL, 0, 0}, suspended = {NULL, 0, 0};
  HObject *o;
  size_t i, scanned = 0;
  int ok = 1;
  uintptr_t ahead = 0;
  ProtoClass last = {NULL, 0, 0};

  scan->plan = plan;
  scan->L = L;
  scan->emergency_was = emergency_collection_stop(L);
  scan->first = objects_first(L);
  if (main_thread_unlisted(L) != NULL) ok = push(&threads, main_thread_unlisted(L));
  for (o = scan->first; ok && o != NULL; o = object_next(o)) {
    lua_State *th;
    HClosure *cl;
    prefetch_below(&ahead, o);
    scanned++;
    if ((th = object_as_thread(L, o)) != NULL) {
      ok = push(&threads, th);
    } else if ((cl = object_as_closure(L, o)) != NULL) {
      /* A planner pair's old closure runs an old prototype (the pairing's map holds each). */
      const ProtoClass *kind = classify(plan, &last, closure_proto(cl));
      if (kind->k != (size_t)-1) {
        const HClosure *paired = pair_lookup(plan, cl);
        if (!ignored(plan, cl)) ok = take(L, plan, scan, cl, paired, paired ? 0 : kind->k);
      } else if (kind->is_new) {
        ok = push(&scan->born_new, cl);
      }
    }
  }
  plan->objects_scanned += scanned;
  /* The closures on frames that may have been retargeted (they run a new prototype now), and
  ** on running frames those left old too. */
  for (i = 0; ok && i < threads.len; i++) {
    lua_State *th = (lua_State *)threads.items[i];
    HFrame *f;
    for (f = frame_top(th); ok && f != NULL; f = frame_below(th, f)) {
      HClosure *cl = frame_lua_closure(f);
      if (cl == NULL || ignored(plan, cl)) continue;
      if (thread_running(th)) {
        if (is_new_proto(plan, closure_proto(cl)) || candidate(plan, cl)) ok = push(&running, cl);
      } else if (is_new_proto(plan, closure_proto(cl)) && !born_new(scan, cl)) {
        ok = push(&suspended, cl) && push(&suspended, f);
      }
    }
  }
  if (ok && (running.len > 0 || suspended.len > 0)) {
    sort_unique(&running, 1);
    sort_unique(&suspended, 2);
    ok = sort_out_frames(L, plan, scan, &running, &suspended) && keep_running(plan, scan, &running);
  }
  /* Frames of running threads that run the old version, counted now that they run it again. */
  for (i = 0; ok && i < threads.len; i++) {
    lua_State *th = (lua_State *)threads.items[i];
    HFrame *f;
    for (f = frame_top(th); thread_running(th) && f != NULL; f = frame_below(th, f)) {
      HClosure *cl = frame_lua_closure(f);
      if (cl != NULL && !ignored(plan, cl) && candidate(plan, cl)) plan->frames_running++;
    }
  }
  free(threads.items);
  free(running.items);
  free(suspended.items);
  if (!ok) return -1;
  /* Last, as it is the only step that allocates Lua objects (and may raise). */
  while (scan->copies_made * 3 < scan->copied.len) {
    void **item = scan->copied.items + scan->copies_made * 3;
    copy_frame_closure(L, plan, (HFrame *)item[0], (HClosure *)item[1], (void **)item[2]);
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

/* Gives back the emergency collection and frees `scan`. */
static void scan_free(HotluaScan *scan) {
  if (scan->L != NULL) emergency_collection_restore(scan->L, scan->emergency_was);
  free(scan->undo.items);
  free(scan->born_new.items);
  free(scan->copied.items);
  free(scan->grown.items);
  free(scan->stale.items);
  free(scan);
}

/* Keeps what hotlua_scan_prepare did and frees `scan`. Allocates nothing and cannot fail. */
void hotlua_scan_commit(HotluaScan *scan) { scan_free(scan); }

/* Undoes hotlua_scan_prepare: each frame given a copy runs its own closure again, and each
** closure retargeted is put back as it was (nothing has run since: the walk that may run in
** between switches references, never a closure's prototype or cells): those logged from the
** log, the others by a second pass over the objects the scan met. Then frees `scan`.
** Allocates nothing; a frame's stack slot needs no barrier (threads are always traversed
** again in the atomic phase), and the frames of a suspended thread do not move. */
void hotlua_scan_abandon(lua_State *L, HotluaScan *scan) {
  const HotluaPlan *plan = scan->plan;
  void **e, **end = scan->undo.items + scan->undo.len;
  HObject *o;
  size_t i;
  for (i = 0; i < scan->copies_made; i++)
    frame_set_closure((HFrame *)scan->copied.items[i * 3],
                      (HClosure *)scan->copied.items[i * 3 + 1]);
  for (e = scan->undo.items; e < end; e = undo_entry_next(e))
    if (undo_closure(e) != NULL) undo_closure_put_back(L, e);
  /* Those logged run their old prototype again: what still runs a new one without being
  ** born new was retargeted unlogged. */
  for (o = scan->first; scan->unlogged > 0 && o != NULL; o = object_next(o)) {
    HClosure *cl = object_as_closure(L, o);
    if (cl != NULL && retargeted_unlogged(plan, scan, cl)) {
      closure_set_proto(L, cl, (HProto *)undo_target(plan, closure_proto(cl)));
      scan->unlogged--;
    }
  }
  scan_free(scan);
}
