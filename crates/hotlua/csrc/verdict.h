/* What becomes of one old closure the scan (scan.c) meets: whether hotlua leaves it alone, the
** prototype it takes and where its cells come from, or why it keeps its old code; with the
** one-entry memos that let a run of closures of one prototype be judged once. Reads the plan
** (plan.h) and the closure and changes nothing but its memos. Included by scan.c alone. */

#ifndef HOTLUA_VERDICT_H
#define HOTLUA_VERDICT_H

#include "backend.h"
#include "plan.h"
#include "ptr_vec.h"

/* Whether the scan leaves `cl` alone whatever its prototype: one of hotlua's anchors. */
static inline int ignored(const HotluaPlan *plan, const HClosure *cl) {
  const void *key = cl;
  return plan->ignore_len != 0 &&
         bsearch(&key, plan->ignore, plan->ignore_len, sizeof(void *), cmp_ptr) != NULL;
}

/* What becomes of a candidate closure that runs on no frame of a running thread. */
typedef enum {
  TAKES_NEW,       /* it takes the new prototype */
  LEFT_FALLBACK,   /* a planner pair that cannot take it in place: the walk switches it */
  LEFT_UNPAIRED, LEFT_AMBIGUOUS, LEFT_SCOPE, LEFT_UPVALUE  /* kept old, for that reason */
} Verdict;

/* How `take` judged the last closure it met that no planner pair names: the closures of a
** prototype made at run time are many, often in a row, and are judged alike (judge and
** needs_no_log read only their prototype and upvalue count). */
typedef struct Judged {
  const HProto *proto;  /* NULL before the first */
  int nupvalues;
  Verdict verdict;
  HProto *np;           /* with TAKES_NEW: see judge */
  const void *source;
  int in_place;         /* it takes np with its own cells, unlogged: retarget_in_place */
} Judged;

/* Fills `uv` with the upvalue cells closure `cl` takes with new prototype `np`, from
** `source`: the planner's new closure paired with `cl`, or (`paired` false) the remap of
** `cl`'s prototype pair. */
static inline void take_cells(const HotluaPlan *plan, const HClosure *cl, const HProto *np,
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

/* Judges candidate `cl`: `paired`, the planner's new closure for it or NULL, and `k`, the
** proto_lookup of its prototype (when unpaired). With TAKES_NEW, `*np` is the prototype it
** takes and `*source` where its cells come from (see take_cells). Changes nothing. */
static inline Verdict judge(const HotluaPlan *plan, const HClosure *cl, const HClosure *paired,
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
static inline size_t *left_counter(HotluaPlan *plan, Verdict verdict) {
  switch (verdict) {
    case LEFT_UNPAIRED: return &plan->left_unpaired;
    case LEFT_AMBIGUOUS: return &plan->left_ambiguous;
    case LEFT_SCOPE: return &plan->left_scope;
    default: return &plan->left_upvalue;
  }
}

/* The new prototype an unpaired closure with prototype lookup `k` would take, or NULL. */
static inline void *would_take(const HotluaPlan *plan, size_t k) {
  return k != 0 && k != (size_t)-1 && k != (size_t)-2 ? (void *)plan->new_protos[k - 1] : NULL;
}

/* What the scan's pass knows of the prototype the last closure it met runs: a heap's
** closures run a few prototypes, often in runs, and one entry saves the lookups of most. */
typedef struct ProtoClass {
  const HProto *proto;  /* NULL before the first closure */
  size_t k;             /* proto_lookup(plan, proto) */
  int is_new;           /* is_new_proto(plan, proto) */
} ProtoClass;

/* The class of `p`, from `last` when it is the last closure's prototype. */
static inline const ProtoClass *classify(const HotluaPlan *plan, ProtoClass *last,
                                         const HProto *p) {
  if (last->proto != p) {
    last->proto = p;
    last->k = proto_lookup(plan, p);
    last->is_new = last->k == (size_t)-1 && is_new_proto(plan, p);
  }
  return last;
}

/* Whether `cl` runs a prototype of the old version the scan knows. */
static inline int candidate(const HotluaPlan *plan, const HClosure *cl) {
  return pair_lookup(plan, cl) != NULL || proto_lookup(plan, closure_proto(cl)) != (size_t)-1;
}

/* Whether retargeting unpaired `cl` to `np` with `remap` changes nothing but its prototype,
** and undo_target tells which it had: then no log is needed to put it back. */
static inline int needs_no_log(const HotluaPlan *plan, const HClosure *cl, const HProto *np,
                               const int *remap) {
  int j;
  if (undo_target(plan, np) != closure_proto(cl) || closure_nupvalues(cl) != proto_nupvalues(np))
    return 0;
  for (j = 0; j < proto_nupvalues(np); j++)
    if (remap[j] != j) return 0;
  return 1;
}

/* judge (and needs_no_log) of `cl`, which no planner pair names, with proto_lookup `k`,
** from `memo` when the last such closure had the same prototype and upvalue count. */
static inline const Judged *judge_unpaired(const HotluaPlan *plan, Judged *memo,
                                           const HClosure *cl, size_t k) {
  if (memo->proto == closure_proto(cl) && memo->nupvalues == closure_nupvalues(cl)) return memo;
  memo->proto = closure_proto(cl);
  memo->nupvalues = closure_nupvalues(cl);
  memo->np = NULL;
  memo->source = NULL;
  memo->verdict = judge(plan, cl, NULL, k, &memo->np, &memo->source);
  memo->in_place = memo->verdict == TAKES_NEW && closure_fits(cl, memo->np) &&
                   needs_no_log(plan, cl, memo->np, (const int *)memo->source);
  return memo;
}

#endif
