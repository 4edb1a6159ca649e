/* What the Rust side planned for the scan (src/switch/inplace/tables.rs), the counters the scan
** fills, and the lookups into it: the same for every backend (lua54/, luajit/), whose
** `backend.h` is included first and names the prototype, closure and cell types. */

#ifndef HOTLUA_PLAN_H
#define HOTLUA_PLAN_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* Layout mirrored by `CPlan` in src/switch/inplace/tables.rs. Hash tables are open addressing
** over a power-of-two capacity (`mask + 1`), empty slots hold NULL keys, probed linearly from
** hash(key). */
typedef struct HotluaPlan {
  /* old prototype -> 1 + index into new_protos/remap_offset, or 0: old, but unpaired */
  const HProto *const *proto_keys;
  const size_t *proto_values;
  size_t proto_mask;
  const HProto *const *new_protos;
  /* remap[remap_offset[k] + j]: the old upvalue index that new upvalue j of pair k takes,
  ** -1 when its value cannot be known, -2 when the variable changed scope (a per-call local
  ** now at module level or the other way round, with no live cell to bind), or -3 - c: the
  ** live cell cells[c] (a module-level local the planner joined) */
  const size_t *remap_offset;
  const int *remap;
  HCell *const *cells;
  /* planner pairs: old closure -> new closure (both Lua closures) */
  const HClosure *const *pair_keys;
  const HClosure *const *pair_values;
  size_t pair_mask;
  /* every new prototype a closure can be retargeted to -> the one old prototype paired with
  ** it, or NULL when several are */
  const HProto *const *new_proto_keys;
  const HProto *const *new_proto_values;
  size_t new_proto_mask;
  /* closures the scan never takes for the module's (hotlua's anchors), sorted */
  const void *const *ignore;
  size_t ignore_len;
  /* out: old closures of planner pairs left old, for the walk (capacity: number of pairs) */
  const HClosure **fallback;
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

static inline size_t hash_ptr(const void *p, size_t mask) {
  size_t x = (size_t)p >> 4;
  x ^= x >> 17;
  x *= (size_t)0x9E3779B97F4A7C15ull;
  return (x >> 7) & mask;
}

/* 1 + index of the pair of old prototype `p`, 0 for an unpaired old prototype, (size_t)-2 for
** an ambiguous one, or (size_t)-1 when `p` is not an old prototype of the batch. */
static inline size_t proto_lookup(const HotluaPlan *plan, const HProto *p) {
  size_t h;
  if (plan->proto_keys == NULL) return (size_t)-1;
  for (h = hash_ptr(p, plan->proto_mask);; h = (h + 1) & plan->proto_mask) {
    const HProto *k = plan->proto_keys[h];
    if (k == p) return plan->proto_values[h];
    if (k == NULL) return (size_t)-1;
  }
}

/* The new closure paired with old closure `cl` by the planner, or NULL. */
static inline const HClosure *pair_lookup(const HotluaPlan *plan, const HClosure *cl) {
  size_t h;
  if (plan->pair_keys == NULL) return NULL;
  for (h = hash_ptr(cl, plan->pair_mask);; h = (h + 1) & plan->pair_mask) {
    const HClosure *k = plan->pair_keys[h];
    if (k == cl) return plan->pair_values[h];
    if (k == NULL) return NULL;
  }
}

/* The slot of new prototype `p` in new_proto_keys, or (size_t)-1 when `p` is not one. */
static inline size_t new_proto_slot(const HotluaPlan *plan, const HProto *p) {
  size_t h;
  if (plan->new_proto_keys == NULL) return (size_t)-1;
  for (h = hash_ptr(p, plan->new_proto_mask);; h = (h + 1) & plan->new_proto_mask) {
    const HProto *k = plan->new_proto_keys[h];
    if (k == p) return h;
    if (k == NULL) return (size_t)-1;
  }
}

/* Whether `p` is one of the new prototypes a closure can be retargeted to. */
static inline int is_new_proto(const HotluaPlan *plan, const HProto *p) {
  return new_proto_slot(plan, p) != (size_t)-1;
}

/* The one old prototype paired with new prototype `p`, or NULL (several, or `p` is not new). */
static inline const HProto *undo_target(const HotluaPlan *plan, const HProto *p) {
  size_t h = new_proto_slot(plan, p);
  return h == (size_t)-1 ? NULL : plan->new_proto_values[h];
}

#endif
