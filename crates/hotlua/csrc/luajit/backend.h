/*
** The `inplace` engine's LuaJIT 2.1 backend: backend.h names the collector's types and gives
** the operations ../scan.c (the collector scan that retargets closures) runs on them; proto.c
** reads prototypes and their bytecode for the pairing (src/switch/inplace/pairing.rs);
** internals.c writes the few internal operations of LuaJIT these need; layout.c proves the
** layout they rely on.
**
** Compiled by crates/hotlua/build.rs against the headers of the LuaJIT the `luajit-src` crate
** vendors (OpenResty's luajit2), for the program that vendors it and for the C module alike:
** the module may be loaded by Debian's `luajit`, OpenResty's fork or a LÖVE or Neovim build.
** The shim calls only LuaJIT's public C API; it reads and writes the collector's structures
** (GCproto, GCfuncL, GCupval, the frames of a thread's stack, the `root` list), whose layout
** the LuaJIT that runs it may not share (a build without GC64, an older or patched release):
** layout.c proves it before the first `inplace` reload of a state (src/layout.rs).
**
** Callers (src/switch/inplace/) hold the invariants every function relies on:
**   - the layout is proven for this state (hotlua_layout_check returned true);
**   - the collector is stopped for the whole reload, so no object is freed or moved while a
**     pointer read here is used; objects already dead but not yet swept are skipped with
**     `isdead`;
**   - prototypes handed back and forth stay alive: they belong to closures the caller holds
**     references to (the planner's old and new functions) or are children of those;
**   - `hotlua_scan_prepare` runs inside a protected call (it can raise "not enough memory");
**     nothing runs Lua code between it and `hotlua_scan_commit` or `hotlua_scan_abandon`;
**   - every compiled trace is flushed after the reload (src/raw.rs), so no machine code keeps
**     a retargeted closure's old code or constants.
*/

#ifndef HOTLUA_BACKEND_H
#define HOTLUA_BACKEND_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lua.h"
#include "lauxlib.h"

#include "lj_obj.h"
#include "lj_bc.h"
#include "lj_frame.h"
#include "lj_gc.h"

#if !LJ_GC64
#error "this backend is written for LuaJIT with GC64 (the default on 64-bit targets)"
#endif

/* internals.c */
void hotlua_barrier(lua_State *L, GCobj *o);
GCfunc *hotlua_new_closure(lua_State *L, int n);  /* ../template.c */
const char *hotlua_local_name(const GCproto *p, int slot, BCPos pc);
const char *hotlua_upvalue_name_at(const GCproto *p, int i);

/* -- What ../scan.c needs --------------------------------------------------------------- */

typedef GCproto HProto;
typedef GCfunc HClosure;
typedef GCupval HCell;
typedef TValue HFrame;
typedef GCobj HObject;

#define closure_proto(cl) funcproto(cl)
#define closure_nupvalues(cl) ((int)(cl)->l.nupvalues)
#define closure_cell(cl, j) (&gcref((cl)->l.uvptr[j])->uv)
#define proto_nupvalues(p) ((int)(p)->sizeuv)
/* the upvalues' origins and names, both in the prototype's own block */
#define proto_upvalue_descriptions(p) ((const void *)proto_uvinfo(p))
/* Whether `cl` can take prototype `p` in place: exactly as many upvalues (the collector asserts
** that a function has no more than its prototype, and its size cannot change). */
#define closure_fits(cl, p) ((p)->sizeuv == (cl)->l.nupvalues)

/* The objects of `root`: every collectable object but strings (interned apart), the main
** thread among them. */
#define objects_first(L) gcref(G(L)->gc.root)
#define object_next(o) gcref((o)->gch.nextgc)
static inline lua_State *main_thread_unlisted(lua_State *L) {
  (void)L;
  return NULL;
}
static inline lua_State *object_as_thread(lua_State *L, GCobj *o) {
  return o->gch.gct == ~LJ_TTHREAD && !isdead(G(L), o) ? &o->th : NULL;
}
static inline GCfunc *object_as_closure(lua_State *L, GCobj *o) {
  return o->gch.gct == ~LJ_TFUNC && isluafunc(&o->fn) && !isdead(G(L), o) ? &o->fn : NULL;
}

/* Frames, innermost first, as lj_debug_frame walks them: each frame slot names its function
** (a vararg call's pseudo-frame names it too). A thread with status LUA_OK and frames is
** running (the one that called the reload, or one resuming another). */
static inline TValue *frame_checked(lua_State *th, TValue *f) {
  return f > tvref(th->stack) + LJ_FR2 ? f : NULL;
}
static inline TValue *frame_top(lua_State *th) { return frame_checked(th, th->base - 1); }
static inline TValue *frame_below(lua_State *th, TValue *f) {
  return frame_checked(th, frame_islua(f) ? frame_prevl(f) : frame_prevd(f));
}
static inline GCfunc *frame_lua_closure(TValue *f) {
  GCobj *o = frame_gc(f);
  return o->gch.gct == ~LJ_TFUNC && isluafunc(&o->fn) ? &o->fn : NULL;
}
static inline int thread_running(lua_State *th) { return th->status == LUA_OK; }
/* Whether a frame only repeats the call of the frame above it: a vararg call's pseudo-frame,
** which names the function too (its copy is made all the same, but not counted). */
#define frame_is_pseudo(f) frame_isvarg(f)
/* The interpreter reloads a frame's constants from the function in its frame slot when it
** returns to it or resumes it. */
static inline void frame_set_closure(TValue *f, GCfunc *cl) {
  setgcVraw(f - 1, obj2gco(cl), LJ_TFUNC);
}

static inline void push_closure(lua_State *L, GCfunc *cl) {
  setgcVraw(L->top, obj2gco(cl), LJ_TFUNC);
  L->top++;
}

/* For ../template.c: the most upvalues a function has, pointing `carrier` at the prototype of
** `main`'s only child's only child (a fresh compiled chunk: children are the prototypes among
** its collectable constants), and dumping the function on the top of the stack. */
#define MAX_CLOSURE_UPVALUES LJ_MAX_UPVAL
static inline GCproto *only_child(GCproto *p) {
  ptrdiff_t k;
  for (k = -1; k >= -(ptrdiff_t)p->sizekgc; k--)
    if (proto_kgc(p, k)->gch.gct == ~LJ_TPROTO) return gco2pt(proto_kgc(p, k));
  return NULL;
}
static inline void point_at_grandchild(GCfunc *carrier, const GCfunc *main) {
  setmref(carrier->l.pc, proto_bc(only_child(only_child(funcproto(main)))));
}
#define dump_function(L, writer, data) lua_dump((L), (writer), (data))
/* For probe.h: resumes `co` with the one value on its stack. */
#define resume_with_one(co, from) ((void)(from), lua_resume((co), 1))

/* Gives `cl`, a closure hotlua_new_closure just made (white, so no barrier), prototype `p` and
** its first `n` cells from `uv` (n = 0: the fresh cells it was made with). */
static inline void closure_init(GCfunc *cl, GCproto *p, GCupval **uv, int n) {
  int j;
  setmref(cl->l.pc, proto_bc(p));
  for (j = 0; j < n; j++) setgcref(cl->l.uvptr[j], obj2gco(uv[j]));
}

/* What retarget changes in `cl`, kept by closure_save in closure_saved_words(cl) words: its
** prototype, its cells, then its environment (so that closure_restore puts it back, or makes
** a closure of the same size a copy of it as it was). The cells' `immutable` marks retarget
** clears stay cleared: that only keeps the JIT from folding them. */
#define closure_saved_words(cl) (2 + (int)(cl)->l.nupvalues)
static inline void closure_save(const GCfunc *cl, void **w) {
  int j;
  w[0] = funcproto(cl);
  for (j = 0; j < cl->l.nupvalues; j++) w[1 + j] = gcref(cl->l.uvptr[j]);
  w[1 + cl->l.nupvalues] = gcref(cl->l.env);
}
/* Gives `cl` what closure_save kept of a closure with as many upvalues, then the collector's
** barrier (see retarget). Invariant: the objects kept are alive (the collector is stopped for
** the whole reload). */
static inline void closure_restore(lua_State *L, GCfunc *cl, void *const *w) {
  int j;
  setmref(cl->l.pc, proto_bc((GCproto *)w[0]));
  for (j = 0; j < cl->l.nupvalues; j++) setgcref(cl->l.uvptr[j], (GCobj *)w[1 + j]);
  setgcref(cl->l.env, (GCobj *)w[1 + cl->l.nupvalues]);
  hotlua_barrier(L, obj2gco(cl));
}

/* LuaJIT never collects in an emergency: an allocation that fails raises at once. */
static inline int emergency_collection_stop(lua_State *L) {
  (void)L;
  return 0;
}
static inline void emergency_collection_restore(lua_State *L, int was) {
  (void)L;
  (void)was;
}

/* Points `cl` at prototype `p` alone, then the collector's barrier (see retarget): how a
** closure whose cells retarget left in place is put back. */
static inline void closure_set_proto(lua_State *L, GCfunc *cl, GCproto *p) {
  setmref(cl->l.pc, proto_bc(p));
  hotlua_barrier(L, obj2gco(cl));
}

/* Points `cl` at prototype `np` with upvalues `uv[0 .. np->sizeuv)` and, paired by the
** planner with the new function `pair`, that function's environment (a module that gives its
** functions one with setfenv gives the new ones the new table); a closure made at run time
** keeps the environment it was made with. Invariant:
** closure_fits(cl, np);
** `cl` is on no frame of a running thread (the interpreter would go on with the old program
** counter and the new constants). A black `cl` is given back to the collector to visit again
** (LuaJIT has no generational mode, so the function's next traversal marks what it points
** at). A cell the new code may assign loses its `immutable` mark, which the JIT would
** otherwise fold as a constant. */
static inline void retarget(lua_State *L, GCfunc *cl, GCproto *np, GCupval **uv,
                            const GCfunc *pair) {
  int j;
  setmref(cl->l.pc, proto_bc(np));
  if (pair != NULL) setgcrefr(cl->l.env, pair->l.env);
  for (j = 0; j < np->sizeuv; j++) {
    setgcref(cl->l.uvptr[j], obj2gco(uv[j]));
    if (!(proto_uv(np)[j] & PROTO_UV_IMMUTABLE)) uv[j]->immutable = 0;
  }
  hotlua_barrier(L, obj2gco(cl));
}

/* Points `cl` at prototype `np`, which takes its cells as they are (as many, in the same
** order): retarget with the closure's own cells (and, like a closure made at run time, its own
** environment). */
static inline void retarget_in_place(lua_State *L, GCfunc *cl, GCproto *np) {
  int j;
  setmref(cl->l.pc, proto_bc(np));
  for (j = 0; j < np->sizeuv; j++)
    if (!(proto_uv(np)[j] & PROTO_UV_IMMUTABLE)) closure_cell(cl, j)->immutable = 0;
  hotlua_barrier(L, obj2gco(cl));
}

#endif
