/*
** The `inplace` engine's Lua 5.4 backend: backend.h names the collector's types and gives the
** operations ../scan.c (the collector scan that retargets closures) runs on them; proto.c
** reads prototypes for the pairing (src/switch/inplace/pairing.rs); collector.c keeps the
** collector's debt across hotlua's pause (src/collector.rs); tables.c makes staging's
** slot-for-slot copies (src/slots.rs); internals.c writes the few internal operations of Lua
** these need; layout.c proves the layout they rely on.
**
** Compiled by crates/hotlua/build.rs against the internal headers of a Lua 5.4 release (the
** one mlua vendors, or, for the C module, the newest 5.4 of the `lua-src` crate). The shim
** calls only Lua's public C API; it reads and writes the collector's own structures (Proto,
** LClosure, CallInfo, Table, the `allgc` list), whose layout the Lua that runs it may not
** share: a stock `lua5.4` of another release or build. layout.c proves that layout before
** the first `inplace` reload of a state (src/layout.rs) and nothing else runs until it has.
**
** Callers (src/switch/inplace/) hold the invariants every function relies on:
**   - the layout is proven for this state (hotlua_layout_check returned true);
**   - the collector is stopped (`lua_gc(L, LUA_GCSTOP)`) for the whole reload, so no object
**     is freed or moved while a pointer read here is used; objects already dead but not yet
**     swept (a cycle stopped in its sweep phase) are skipped with `isdead`;
**   - Proto pointers handed back and forth stay alive: they belong to closures the caller
**     holds references to (the planner's old and new functions) or are children of those;
**   - `hotlua_scan_prepare` runs inside a protected call (it can raise "not enough memory");
**     nothing runs Lua code between it and `hotlua_scan_commit` or `hotlua_scan_abandon`.
*/

#ifndef HOTLUA_BACKEND_H
#define HOTLUA_BACKEND_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lua.h"

#include "ldebug.h"
#include "ldo.h"
#include "lfunc.h"
#include "lgc.h"
#include "lobject.h"
#include "lopcodes.h"
#include "lstate.h"
#include "lstring.h"
/* after the internal headers: it defines `lua_assert` when they have not, which turns their
** `check_exp` accessors into expressions that are not lvalues */
#include "lauxlib.h"

#if LUA_VERSION_NUM != 504
#error "this backend is written for Lua 5.4"
#endif
#if !defined(HOTLUA_EXPECTED_RELEASE) || LUA_VERSION_RELEASE_NUM != HOTLUA_EXPECTED_RELEASE
#error "hotlua's inplace engine must be compiled against the Lua release build.rs chose"
#endif

/* The length of string `s` in every 5.4 release: 5.4.4 tells a long string by its tag, 5.4.9
** by `shrlen == 0xFF` (the `tsslen` of the headers the shim was compiled with); the tag works
** in both. */
#define hotlua_strlen(s) ((s)->tt == LUA_VSHRSTR ? (size_t)(s)->shrlen : (s)->u.lnglen)

/* internals.c */
void hotlua_barrier(lua_State *L, GCObject *o, GCObject *v);
void hotlua_table_barrier(lua_State *L, Table *t);
LClosure *hotlua_new_closure(lua_State *L, int n);  /* ../template.c */
const char *hotlua_local_name(const Proto *p, int n, int pc);
unsigned int hotlua_array_size(const Table *t);
int hotlua_raw_equal(const TValue *a, const TValue *b);

/* -- What ../scan.c needs --------------------------------------------------------------- */

typedef Proto HProto;
typedef LClosure HClosure;
typedef UpVal HCell;
typedef CallInfo HFrame;
typedef GCObject HObject;

#define closure_proto(cl) ((cl)->p)
#define closure_nupvalues(cl) ((int)(cl)->nupvalues)
#define closure_cell(cl, j) ((cl)->upvals[j])
#define proto_upvalue_descriptions(p) ((const void *)(p)->upvalues)
#define proto_nupvalues(p) ((p)->sizeupvalues)
/* Whether `cl` can take prototype `p` in place: it was allocated with enough upvalues (the
** slots past `p`'s are cleared). */
#define closure_fits(cl, p) ((p)->sizeupvalues <= (cl)->nupvalues)

/* The objects of `allgc`: every collectable object but the main thread, the fixed strings and
** objects with finalizers, which are tables and full userdata only (closures and threads
** cannot have a `__gc`). */
#define objects_first(L) (G(L)->allgc)
#define object_next(o) ((o)->next)
static inline lua_State *main_thread_unlisted(lua_State *L) { return G(L)->mainthread; }
static inline lua_State *object_as_thread(lua_State *L, GCObject *o) {
  return o->tt == LUA_VTHREAD && !isdead(G(L), o) ? gco2th(o) : NULL;
}
static inline LClosure *object_as_closure(lua_State *L, GCObject *o) {
  return o->tt == LUA_VLCL && !isdead(G(L), o) ? gco2lcl(o) : NULL;
}

/* Frames, innermost first. A thread with status LUA_OK and frames is running (the one that
** called the reload, or one resuming another). */
static inline CallInfo *frame_top(lua_State *th) { return th->ci != &th->base_ci ? th->ci : NULL; }
static inline CallInfo *frame_below(lua_State *th, CallInfo *ci) {
  return ci->previous != &th->base_ci ? ci->previous : NULL;
}
static inline LClosure *frame_lua_closure(CallInfo *ci) { return isLua(ci) ? ci_func(ci) : NULL; }
static inline int thread_running(lua_State *th) { return th->status == LUA_OK; }
/* Whether a frame only repeats the call of the frame below it (never, in Lua 5.4). */
#define frame_is_pseudo(ci) 0
/* luaV_execute reloads a frame's closure from `ci->func` when it resumes or returns to it. */
static inline void frame_set_closure(CallInfo *ci, LClosure *cl) {
  setclLvalue(NULL, s2v(ci->func.p), cl);
}

static inline void push_closure(lua_State *L, LClosure *cl) {
  setclLvalue2s(L, L->top.p, cl);
  L->top.p++;
}

/* For ../template.c: the most upvalues a closure has, pointing `carrier` at the prototype of
** `main`'s only child's only child (a fresh compiled chunk), and dumping the function on the
** top of the stack. */
#define MAX_CLOSURE_UPVALUES MAXUPVAL
static inline void point_at_grandchild(LClosure *carrier, const LClosure *main) {
  carrier->p = main->p->p[0]->p[0];
}
#define dump_function(L, writer, data) lua_dump((L), (writer), (data), 1)
/* For probe.h: resumes `co` with the one value on its stack. */
#define resume_with_one(co, from) lua_resume((co), (from), 1, &(int){0})

/* Gives `cl`, a closure hotlua_new_closure just made (white, so no barrier), prototype `p` and
** its first `n` cells from `uv` (n = 0: the fresh cells it was made with). */
static inline void closure_init(LClosure *cl, Proto *p, UpVal **uv, int n) {
  int j;
  cl->p = p;
  for (j = 0; j < n; j++) cl->upvals[j] = uv[j];
}

/* What retarget changes in `cl`, kept by closure_save in closure_saved_words(cl) words: its
** prototype, then its cells (so that closure_restore puts it back, or makes a closure of the
** same size a copy of it as it was). */
#define closure_saved_words(cl) (1 + (int)(cl)->nupvalues)
static inline void closure_save(const LClosure *cl, void **w) {
  int j;
  w[0] = cl->p;
  for (j = 0; j < cl->nupvalues; j++) w[1 + j] = cl->upvals[j];
}
/* Gives `cl` what closure_save kept of a closure with as many upvalues, each pointer through
** the collector's forward barrier (see retarget). Invariant: the objects kept are alive (the
** collector is stopped for the whole reload). */
static inline void closure_restore(lua_State *L, LClosure *cl, void *const *w) {
  int j;
  cl->p = (Proto *)w[0];
  hotlua_barrier(L, obj2gco(cl), obj2gco(cl->p));
  for (j = 0; j < cl->nupvalues; j++) {
    cl->upvals[j] = (UpVal *)w[1 + j];
    if (cl->upvals[j] != NULL) hotlua_barrier(L, obj2gco(cl), obj2gco(cl->upvals[j]));
  }
}

/* Stops the emergency collection Lua 5.4 runs when an allocation fails, even with the
** collector stopped, while retargeted closures may still be put back: it could free an object
** only the scan's log still names. An allocation then fails at once (the reload with it).
** Returns the setting to give back to emergency_collection_restore. */
static inline int emergency_collection_stop(lua_State *L) {
  int was = G(L)->gcstopem;
  G(L)->gcstopem = 1;
  return was;
}
static inline void emergency_collection_restore(lua_State *L, int was) {
  G(L)->gcstopem = (lu_byte)was;
}

/* Points `cl` at prototype `p` alone, through the collector's barrier (see retarget): how a
** closure whose cells retarget left in place is put back. */
static inline void closure_set_proto(lua_State *L, LClosure *cl, Proto *p) {
  cl->p = p;
  hotlua_barrier(L, obj2gco(cl), obj2gco(p));
}

/* Points `cl` at prototype `np`, which takes its cells as they are (as many, in the same
** order): retarget with the closure's own cells, which need no barrier again. */
static inline void retarget_in_place(lua_State *L, LClosure *cl, Proto *np) {
  closure_set_proto(L, cl, np);
}

/* Points `cl` at prototype `np` with upvalues `uv[0 .. np->sizeupvalues)`, clearing the slots
** past them (`pair`, the planner's new closure `cl` is paired with, or NULL, has nothing else
** `cl` takes in Lua 5.4). Invariant: np->sizeupvalues <= cl->nupvalues (the closure's allocated size is
** unchanged, so freeing it later uses the right size); `cl` is on no frame of a running
** thread (its savedpc would point into the old code while `k` came from the new). Each
** pointer stored goes through the collector's forward barrier (internals.c), which keeps
** the tri-colour invariant in incremental mode and the age invariant in generational mode. */
static inline void retarget(lua_State *L, LClosure *cl, Proto *np, UpVal **uv,
                            const LClosure *pair) {
  int j;
  (void)pair;
  cl->p = np;
  hotlua_barrier(L, obj2gco(cl), obj2gco(np));
  for (j = 0; j < np->sizeupvalues; j++) {
    cl->upvals[j] = uv[j];
    if (uv[j] != NULL) hotlua_barrier(L, obj2gco(cl), obj2gco(uv[j]));
  }
  for (; j < cl->nupvalues; j++) cl->upvals[j] = NULL;
}

#endif
