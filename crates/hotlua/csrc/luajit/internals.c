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

/* lua_dump's writer, as string.dump's: the buffer starts at the first write, once lua_dump
** has taken the function from the top of the stack (luaL_buffinit may use the stack). */
typedef struct Chunk { int started; luaL_Buffer buffer; } Chunk;

static int add_to_chunk(lua_State *L, const void *bytes, size_t size, void *out) {
  Chunk *chunk = (Chunk *)out;
  if (!chunk->started) {
    chunk->started = 1;
    luaL_buffinit(L, &chunk->buffer);
  }
  luaL_addlstring(&chunk->buffer, (const char *)bytes, size);
  return 0;
}

/* The registry key of the table of closure templates: {[n] = bytecode of a function with n
** upvalues}. The address of this variable is unique in the process. */
static const char template_key = 0;

/* The innermost prototype of `main`, the function `return function() ... end` compiles to:
** its only child's only child. */
static GCproto *grandchild(GCproto *main) {
  GCproto *found = main;
  int depth;
  for (depth = 0; depth < 2; depth++) {
    ptrdiff_t i;
    GCproto *child = NULL;
    for (i = -1; i >= -(ptrdiff_t)found->sizekgc && child == NULL; i--) {
      GCobj *k = proto_kgc(found, i);
      if (k->gch.gct == ~LJ_TPROTO) child = gco2pt(k);
    }
    found = child;
  }
  return found;
}

/* Pushes the bytecode of a function with `n` upvalues (0 <= n <= LJ_MAX_UPVAL), made once per
** state: the source declares `n` variables the innermost function names, a chunk compiles it
** (nothing runs), and the innermost prototype is dumped through a second loaded closure that
** is pointed at it. Raises on memory errors. */
static void push_template(lua_State *L, int n) {
  luaL_Buffer source;
  Chunk chunk;
  int i;
  GCfunc *main, *carrier;
  lua_pushlightuserdata(L, (void *)&template_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushlightuserdata(L, (void *)&template_key);
    lua_pushvalue(L, -2);
    lua_rawset(L, LUA_REGISTRYINDEX);
  }
  lua_rawgeti(L, -1, n);
  if (lua_isstring(L, -1)) {
    lua_remove(L, -2);
    return;
  }
  lua_pop(L, 1);
  luaL_buffinit(L, &source);
  for (i = 0; i < n; i++) {
    lua_pushfstring(L, "local a%d ", i);
    luaL_addvalue(&source);
  }
  luaL_addstring(&source, "return function() return function() local _");
  for (i = 0; i < n; i++) {
    lua_pushfstring(L, i == 0 ? " = a%d" : ", a%d", i);
    luaL_addvalue(&source);
  }
  luaL_addstring(&source, " end end");
  luaL_pushresult(&source);
  if (luaL_loadbuffer(L, lua_tostring(L, -1), lua_objlen(L, -1), "=hotlua") != 0) lua_error(L);
  main = (GCfunc *)lua_topointer(L, -1);
  if (luaL_loadbuffer(L, "", 0, "=hotlua") != 0) lua_error(L);
  carrier = (GCfunc *)lua_topointer(L, -1);
  /* `main` (still on the stack) keeps the prototype alive; lua_dump only reads it. No
  ** barrier: `carrier` is garbage once dumped, and freeing it never reads its prototype. */
  setmref(carrier->l.pc, proto_bc(grandchild(funcproto(main))));
  chunk.started = 0;
  lua_dump(L, add_to_chunk, &chunk);
  luaL_pushresult(&chunk.buffer);
  lua_replace(L, -4);  /* over the source */
  lua_pop(L, 2);       /* main, carrier */
  lua_pushvalue(L, -1);
  lua_rawseti(L, -3, n);
  lua_remove(L, -2);
}

/* lj_func_newL_empty: pushes a new Lua function with `n` upvalues, each a fresh closed cell,
** and a prototype of its own that no one else uses, and returns it. The caller gives it the
** prototype and cells it wants: the function is new (white), so storing into it needs no
** barrier until something else allocates. Raises on memory errors (run protected). */
GCfunc *hotlua_new_closure(lua_State *L, int n) {
  luaL_checkstack(L, 4, "hotlua: making a closure");
  if (n > LJ_MAX_UPVAL) luaL_error(L, "hotlua: a closure with %d upvalues", n);
  push_template(L, n);
  if (luaL_loadbuffer(L, lua_tostring(L, -1), lua_objlen(L, -1), "=hotlua") != 0) lua_error(L);
  lua_remove(L, -2);
  return (GCfunc *)lua_topointer(L, -1);
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
