/*
** The `inplace` engine's C side: points live Lua closures of a reloaded module at the new
** function prototypes.
**
** Compiled by crates/hotlua/build.rs against the internal headers of the exact Lua that mlua
** vendors (the Lua 5.4 source folder of the `lua-src` crate whose public headers mlua-sys
** exported), and linked into the same program as that Lua. Every function here reads or
** writes the collector's own structures (Proto, LClosure, CallInfo, the `allgc` list), so it
** is only valid for that one release: the check below stops the build on any other.
**
** Callers (src/switch/inplace.rs) hold the invariants every function relies on:
**   - the collector is stopped (`lua_gc(L, LUA_GCSTOP)`) for the whole reload, so no object
**     is freed or moved while a pointer read here is used; objects already dead but not yet
**     swept (a cycle stopped in its sweep phase) are skipped with `isdead`;
**   - Proto pointers handed back and forth stay alive: they belong to closures the caller
**     holds references to (the planner's old and new functions) or are children of those;
**   - `hotlua_scan_prepare` runs inside a protected call (it can raise "not enough memory");
**     nothing runs Lua code between it and `hotlua_scan_commit` or `hotlua_scan_abandon`.
*/

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lua.h"

#include "ldebug.h"
#include "lfunc.h"
#include "lgc.h"
#include "lobject.h"
#include "lopcodes.h"
#include "lstate.h"
#include "lstring.h"

#if LUA_VERSION_NUM != 504
#error "hotlua's inplace engine is written for Lua 5.4"
#endif
#if !defined(HOTLUA_EXPECTED_RELEASE) || LUA_VERSION_RELEASE_NUM != HOTLUA_EXPECTED_RELEASE
#error "hotlua's inplace engine must be compiled against the Lua release mlua vendors"
#endif

/* The release compiled against, for a run-time cross-check with lua_version-free code. */
int hotlua_inplace_release(void) { return LUA_VERSION_RELEASE_NUM; }

/* The prototype of the Lua closure at `idx` of L's stack, or NULL for anything else.
** Invariant: `idx` is a valid stack index of L. */
const Proto *hotlua_proto_of(lua_State *L, int idx) {
  if (lua_type(L, idx) != LUA_TFUNCTION || lua_iscfunction(L, idx)) return NULL;
  /* lua_topointer gives a collectable object's own address: here the LClosure */
  return ((const LClosure *)lua_topointer(L, idx))->p;
}

/* The LClosure address of the Lua closure at `idx` (what lua_topointer returns), or NULL. */
const void *hotlua_closure_of(lua_State *L, int idx) {
  if (lua_type(L, idx) != LUA_TFUNCTION || lua_iscfunction(L, idx)) return NULL;
  return lua_topointer(L, idx);
}

/* Number of prototypes nested directly in `p`. Invariant: `p` is a live Proto. */
int hotlua_proto_nchildren(const Proto *p) { return p->sizep; }

/* Child `i` of `p` (0-based). Invariant: 0 <= i < p->sizep. */
const Proto *hotlua_proto_child(const Proto *p, int i) { return p->p[i]; }

/* Number of upvalues the prototype declares. */
int hotlua_proto_nupvalues(const Proto *p) { return p->sizeupvalues; }

/* Name of upvalue `i` of `p` and its length, or NULL when the code is stripped.
** Names are compared by content by the caller: long names are not interned. */
const char *hotlua_proto_upvalue_name(const Proto *p, int i, size_t *len) {
  TString *name = p->upvalues[i].name;
  if (name == NULL) return NULL;
  *len = tsslen(name);
  return getstr(name);
}

/* Where upvalue `i` of `p` comes from: returns its index in the enclosing function's
** registers (`*instack` = 1: a local of the enclosing call) or upvalues (`*instack` = 0). */
int hotlua_proto_upvalue_origin(const Proto *p, int i, int *instack) {
  *instack = p->upvalues[i].instack;
  return p->upvalues[i].idx;
}

/* Upvalue cell `i` of the Lua closure `cl` (an address lua_topointer gave).
** Invariant: `cl` is a live LClosure and 0 <= i < cl->nupvalues. */
const void *hotlua_closure_cell(const void *cl, int i) {
  return ((const LClosure *)cl)->upvals[i];
}

/* The line where the function of `p` is defined (0 for a main chunk). */
int hotlua_proto_line(const Proto *p) { return p->linedefined; }

/* The chunk name of `p` (its `source`), or NULL. */
const char *hotlua_proto_source(const Proto *p, size_t *len) {
  if (p->source == NULL) return NULL;
  *len = tsslen(p->source);
  return getstr(p->source);
}

/* Writes the string constant `k` (or "?" for any other constant) into buf[pos..cap). */
static size_t put_const(char *buf, size_t pos, size_t cap, const TValue *k) {
  const char *s = "?";
  size_t len = 1;
  if (ttisstring(k)) {
    s = getstr(tsvalue(k));
    len = tsslen(tsvalue(k));
  }
  if (pos + len > cap) len = cap > pos ? cap - pos : 0;
  memcpy(buf + pos, s, len);
  return pos + len;
}

static size_t put_str(char *buf, size_t pos, size_t cap, const char *s) {
  size_t len = s ? strlen(s) : 1;
  if (s == NULL) s = "?";
  if (pos + len > cap) len = cap > pos ? cap - pos : 0;
  memcpy(buf + pos, s, len);
  return pos + len;
}

static size_t put_upvalue(char *buf, size_t pos, size_t cap, const Proto *p, int i) {
  TString *name = (i < p->sizeupvalues) ? p->upvalues[i].name : NULL;
  size_t len;
  if (name == NULL) return put_str(buf, pos, cap, "?");
  len = tsslen(name);
  if (pos + len > cap) len = cap > pos ? cap - pos : 0;
  memcpy(buf + pos, getstr(name), len);
  return pos + len;
}

/* Names the value register `reg` holds before instruction `pc`: the instruction that last
** loaded it (a global, a field, a method, an upvalue, a local). Scans back at most 16
** instructions; jumps are not followed, so this is a name for pairing, not a proof. */
static size_t put_register_source(char *buf, size_t pos, size_t cap, const Proto *p, int reg,
                                  int pc) {
  int q;
  const char *local = luaF_getlocalname(p, reg + 1, pc);
  if (local != NULL) {
    pos = put_str(buf, pos, cap, "local ");
    return put_str(buf, pos, cap, local);
  }
  for (q = pc - 1; q >= 0 && q >= pc - 16; q--) {
    Instruction i = p->code[q];
    if (!testAMode(GET_OPCODE(i)) || GETARG_A(i) != reg) continue;
    switch (GET_OPCODE(i)) {
      case OP_GETTABUP:
        pos = put_upvalue(buf, pos, cap, p, GETARG_B(i));
        pos = put_str(buf, pos, cap, ".");
        return put_const(buf, pos, cap, &p->k[GETARG_C(i)]);
      case OP_GETFIELD:
        pos = put_register_source(buf, pos, cap, p, GETARG_B(i), q);
        pos = put_str(buf, pos, cap, ".");
        return put_const(buf, pos, cap, &p->k[GETARG_C(i)]);
      case OP_SELF:
        pos = put_register_source(buf, pos, cap, p, GETARG_B(i), q);
        pos = put_str(buf, pos, cap, ":");
        if (GETARG_k(i)) return put_const(buf, pos, cap, &p->k[GETARG_C(i)]);
        return put_str(buf, pos, cap, "?");
      case OP_GETUPVAL:
        pos = put_str(buf, pos, cap, "upvalue ");
        return put_upvalue(buf, pos, cap, p, GETARG_B(i));
      case OP_MOVE:
        return put_register_source(buf, pos, cap, p, GETARG_B(i), q);
      default:
        return put_str(buf, pos, cap, "?");
    }
  }
  return put_str(buf, pos, cap, "?");
}

/* Describes where the code of `p` stores the closure of its child `child`: the local it
** initialises, the field, global or upvalue it is assigned to, `return`, or the argument of a
** named call it is passed to. The description does not depend on the child's index or line,
** so siblings pair by it whatever their order. Writes at most `cap` bytes to `buf` and returns
** the length; 0 when `p` never instantiates `child`.
** Invariant: `p` is a live Proto and 0 <= child < p->sizep. */
size_t hotlua_child_key(const Proto *p, int child, char *buf, size_t cap) {
  int pc, reg, q;
  size_t pos = 0;
  for (pc = 0; pc < p->sizecode; pc++) {
    Instruction i = p->code[pc];
    if (GET_OPCODE(i) == OP_CLOSURE && GETARG_Bx(i) == child) break;
  }
  if (pc == p->sizecode) return 0;
  reg = GETARG_A(p->code[pc]);
  {
    const char *local = luaF_getlocalname(p, reg + 1, pc + 1);
    if (local != NULL) {
      pos = put_str(buf, pos, cap, "local ");
      return put_str(buf, pos, cap, local);
    }
  }
  if (pc + 1 < p->sizecode) {
    Instruction n = p->code[pc + 1];
    switch (GET_OPCODE(n)) {
      case OP_SETFIELD:
        if (!GETARG_k(n) && GETARG_C(n) == reg) {
          pos = put_str(buf, pos, cap, "field ");
          pos = put_register_source(buf, pos, cap, p, GETARG_A(n), pc);
          pos = put_str(buf, pos, cap, ".");
          return put_const(buf, pos, cap, &p->k[GETARG_B(n)]);
        }
        break;
      case OP_SETTABUP:
        if (!GETARG_k(n) && GETARG_C(n) == reg) {
          pos = put_str(buf, pos, cap, "field ");
          pos = put_upvalue(buf, pos, cap, p, GETARG_A(n));
          pos = put_str(buf, pos, cap, ".");
          return put_const(buf, pos, cap, &p->k[GETARG_B(n)]);
        }
        break;
      case OP_SETUPVAL:
        if (GETARG_A(n) == reg) {
          pos = put_str(buf, pos, cap, "upvalue ");
          return put_upvalue(buf, pos, cap, p, GETARG_B(n));
        }
        break;
      case OP_MOVE:
        if (GETARG_B(n) == reg) {
          const char *local = luaF_getlocalname(p, GETARG_A(n) + 1, pc + 2);
          if (local != NULL) {
            pos = put_str(buf, pos, cap, "local ");
            return put_str(buf, pos, cap, local);
          }
        }
        break;
      case OP_RETURN1:
        if (GETARG_A(n) == reg) return put_str(buf, pos, cap, "return");
        break;
      case OP_RETURN:
        if (GETARG_A(n) == reg) return put_str(buf, pos, cap, "return");
        break;
      default:
        break;
    }
  }
  /* A temporary: the argument of the next call whose function sits below it. */
  for (q = pc + 1; q < p->sizecode; q++) {
    Instruction n = p->code[q];
    OpCode op = GET_OPCODE(n);
    if ((op == OP_CALL || op == OP_TAILCALL) && GETARG_A(n) < reg) {
      char digits[16];
      int arg = reg - GETARG_A(n);
      int d = 0;
      pos = put_str(buf, pos, cap, "argument ");
      do {
        digits[d++] = (char)('0' + arg % 10);
        arg /= 10;
      } while (arg > 0 && d < 15);
      while (d > 0 && pos < cap) buf[pos++] = digits[--d];
      pos = put_str(buf, pos, cap, " of ");
      return put_register_source(buf, pos, cap, p, GETARG_A(n), pc);
    }
  }
  return put_str(buf, pos, cap, "?");
}

/* True when two constants are equal values (strings by content). */
static int same_constant(const TValue *a, const TValue *b) {
  if (ttypetag(a) != ttypetag(b)) return 0;
  switch (ttypetag(a)) {
    case LUA_VNIL: case LUA_VFALSE: case LUA_VTRUE: return 1;
    case LUA_VNUMINT: return ivalue(a) == ivalue(b);
    case LUA_VNUMFLT: return memcmp(&fltvalue(a), &fltvalue(b), sizeof(lua_Number)) == 0;
    case LUA_VSHRSTR: case LUA_VLNGSTR:
      return tsslen(tsvalue(a)) == tsslen(tsvalue(b)) &&
             memcmp(getstr(tsvalue(a)), getstr(tsvalue(b)), tsslen(tsvalue(a))) == 0;
    default: return 0;
  }
}

/* True when `a` and `b` have the same body: parameters, code, constants, upvalue names and,
** recursively, nested prototypes. Running one in place of the other changes nothing, so two
** siblings whose places in the source are ambiguous may still pair this way.
** Invariant: both are live Protos. Recursion depth is bounded by the nesting of functions in
** the source, which the Lua parser limits (LUAI_MAXCCALLS). */
int hotlua_proto_same_body(const Proto *a, const Proto *b) {
  int i;
  if (a->numparams != b->numparams || a->is_vararg != b->is_vararg ||
      a->sizecode != b->sizecode || a->sizek != b->sizek || a->sizep != b->sizep ||
      a->sizeupvalues != b->sizeupvalues)
    return 0;
  if (memcmp(a->code, b->code, sizeof(Instruction) * (size_t)a->sizecode) != 0) return 0;
  for (i = 0; i < a->sizek; i++)
    if (!same_constant(&a->k[i], &b->k[i])) return 0;
  for (i = 0; i < a->sizeupvalues; i++) {
    TString *x = a->upvalues[i].name, *y = b->upvalues[i].name;
    if (x == NULL || y == NULL || tsslen(x) != tsslen(y) ||
        memcmp(getstr(x), getstr(y), tsslen(x)) != 0)
      return 0;
  }
  for (i = 0; i < a->sizep; i++)
    if (!hotlua_proto_same_body(a->p[i], b->p[i])) return 0;
  return 1;
}

/* ---------------------------------------------------------------------------------------- */
/* The scan: one pass over the collector's object list. */

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
  ** -1 when its value cannot be known, or -2 - c: the live cell cells[c] (a module-level
  ** local the planner joined) */
  const size_t *remap_offset;
  const int *remap;
  UpVal *const *cells;
  /* planner pairs: old closure -> new closure (both Lua closures) */
  const LClosure *const *pair_keys;
  const LClosure *const *pair_values;
  size_t pair_mask;
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
  size_t left_layout;      /* needs more upvalues than the closure was allocated with */
  size_t left_unpaired;    /* its prototype has no unambiguous new counterpart */
  size_t frames_running;   /* frames of running threads executing an old function */
  size_t frames_copied;    /* suspended frames given a private copy of their closure */
} HotluaPlan;

static size_t hash_ptr(const void *p, size_t mask) {
  size_t x = (size_t)p >> 4;
  x ^= x >> 17;
  x *= (size_t)0x9E3779B97F4A7C15ull;
  return (x >> 7) & mask;
}

/* 1 + index of the pair of old prototype `p`, 0 for an unpaired old prototype, or
** (size_t)-1 when `p` is not an old prototype of the batch. */
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

static int is_candidate(const HotluaPlan *plan, const LClosure *cl) {
  return pair_lookup(plan, cl) != NULL || proto_lookup(plan, cl->p) != (size_t)-1;
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
** thread (its savedpc would point into the old code while `k` came from the new). Each store
** of a collectable pointer into `cl` goes through the collector's forward barrier, which
** keeps the tri-colour invariant in incremental mode and the age invariant in generational
** mode. */
static void retarget(lua_State *L, LClosure *cl, Proto *np, UpVal **uv) {
  int j;
  cl->p = np;
  luaC_objbarrier(L, cl, np);
  for (j = 0; j < np->sizeupvalues; j++) {
    cl->upvals[j] = uv[j];
    if (uv[j] != NULL) luaC_objbarrier(L, cl, uv[j]);
  }
  for (; j < cl->nupvalues; j++) cl->upvals[j] = NULL;
}

/* Gives the frame `ci` of a suspended (or dead) thread its own copy of its closure `cl`:
** same prototype, same upvalue cells. When the thread resumes, luaV_execute reloads the
** frame's closure from `ci->func` and so runs the copy, in the old code with the old
** constants, while `cl` itself can take the new prototype. Allocates (may raise a memory
** error: the caller runs protected). The copy is stored into the stack slot at once, so it is
** anchored before anything else can allocate; stack slots need no barrier (threads are
** always traversed again in the atomic phase). */
static void copy_frame_closure(lua_State *L, CallInfo *ci, LClosure *cl) {
  int j;
  LClosure *copy = luaF_newLclosure(L, cl->nupvalues);
  copy->p = cl->p;
  for (j = 0; j < cl->nupvalues; j++) copy->upvals[j] = cl->upvals[j];
  setclLvalue2s(L, ci->func.p, copy);
}

/* What a scan found and did, between hotlua_scan_prepare and hotlua_scan_commit or
** hotlua_scan_abandon. Allocated with malloc, owned by the caller (src/switch/inplace.rs). */
typedef struct HotluaScan {
  PtrVec todo;      /* closures to retarget: the closure, its new prototype, its source */
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
    uv[j] = from <= -2 ? plan->cells[-from - 2] : cl->upvals[from];
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
    np = (Proto *)plan->new_protos[k - 1];
    remap = plan->remap + plan->remap_offset[k - 1];
    for (j = 0; j < np->sizeupvalues; j++) {
      if (remap[j] >= cl->nupvalues || remap[j] == -1) {
        plan->left_upvalue++;
        return NULL;
      }
    }
    if (np->sizeupvalues > cl->nupvalues) { /* names known, yet more of them: duplicates */
      plan->left_layout++;
      return NULL;
    }
    *source = remap;
    *paired_out = 0;
    return np;
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
    if (np == NULL) continue;
    if (paired) plan->pairs_retargeted++;
    else plan->runtime_retargeted++;
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
  free(scan);
}
