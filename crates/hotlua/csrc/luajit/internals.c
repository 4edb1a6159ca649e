/* The few internal operations of LuaJIT the shim needs, written over the structures alone:
** a shared libluajit exports only the public C API, so a C module loaded into Debian's
** `luajit`, OpenResty or LÖVE cannot call lj_gc_barrierf or lj_func_newL_empty. Each function
** does what the LuaJIT function named in its comment does. */

#include "backend.h"
#include "lj_debug.h"

/* lj_gc_barrierback, for a function: black `o` now points at white objects; the collector
** visits it again in the atomic phase (or, past it, the sweep makes it white) instead of
** marking each of them now. LuaJIT's collector is incremental only, so a function visited
** again needs nothing else. Invariant: `o` is a live function. */
void hotlua_barrier(lua_State *L, GCobj *o) {
  global_State *g = G(L);
  if (!isblack(o)) return;
  black2gray(o);
  setgcrefr(o->gch.gclist, g->gc.grayagain);
  setgcref(g->gc.grayagain, o);
}

/* An unsigned LEB128 number at `*p`, which moves past it (lj_buf_ruleb128). */
static uint32_t read_uleb128(const uint8_t **p) {
  const uint8_t *w = *p;
  uint32_t v = *w++;
  if (v >= 0x80) {
    int shift = 0;
    v &= 0x7f;
    do {
      v |= (uint32_t)(*w & 0x7f) << (shift += 7);
    } while (*w++ >= 0x80);
  }
  *p = w;
  return v;
}

/* debug_varname: the name of the local in `slot` (0-based) at instruction `pc` of `p`, or
** NULL; LuaJIT's own names of loop variables ("(for index)") are NULL too. */
const char *hotlua_local_name(const GCproto *p, int slot, BCPos pc) {
  const uint8_t *info = proto_varinfo(p);
  BCPos last = 0;
  if (info == NULL) return NULL;
  for (;;) {
    const uint8_t *name = info;
    uint32_t kind = *info;
    BCPos start, end;
    if (kind < VARNAME__MAX) {
      if (kind == VARNAME_END) return NULL;
    } else {
      while (*++info != 0) {
      }
    }
    info++;
    last = start = last + read_uleb128(&info);
    if (start > pc) return NULL;
    end = start + read_uleb128(&info);
    if (pc < end && slot-- == 0) return kind < VARNAME__MAX ? NULL : (const char *)name;
  }
}

/* lj_debug_uvname: the name of upvalue `i` of `p` ("" when the code is stripped). */
const char *hotlua_upvalue_name_at(const GCproto *p, int i) {
  const uint8_t *info = proto_uvinfo(p);
  if (info == NULL) return "";
  while (i-- > 0)
    while (*info++ != 0) {
    }
  return (const char *)info;
}

/* The collector's debt across hotlua's pause (src/collector.rs), as Lua 5.4's `GCdebt` reads:
** how far the allocations are past the threshold of the next step (negative: before it).
** `lua_gc(L, LUA_GCRESTART)` puts the threshold at the allocations themselves, so the first
** allocation after a reload would start a step, and the report's allocations pay a run of
** them; putting the distance back lets the collector go on as if the reload had not happened. */
ptrdiff_t hotlua_gc_debt(lua_State *L) {
  global_State *g = G(L);
  return (ptrdiff_t)g->gc.total - (ptrdiff_t)g->gc.threshold;
}

/* Sets the threshold back `debt` (a value hotlua_gc_debt returned in this state) away from
** the allocations; a debt past them starts a step at the next allocation, as LuaJIT does. */
void hotlua_gc_set_debt(lua_State *L, ptrdiff_t debt) {
  global_State *g = G(L);
  g->gc.threshold = debt > (ptrdiff_t)g->gc.total ? 0 : (GCSize)((ptrdiff_t)g->gc.total - debt);
}
