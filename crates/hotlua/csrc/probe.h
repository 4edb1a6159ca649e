/* What every backend's layout.c does around its own checks: build the probe's objects from
** its chunk, count the collector's bytes, and answer. Included by layout.c only. */

#ifndef HOTLUA_PROBE_H
#define HOTLUA_PROBE_H

#include "backend.h"

/* The probe chunk's functions, the same for every backend; each layout.c ends the chunk with
** its own `return` line (Lua 5.4's also returns a table). A long constant too: strings longer
** than forty bytes are kept apart from short ones. */
#define PROBE_LONG_CONSTANT \
  "hotlua-layout-probe: a constant longer than the forty bytes of a short string"
#define PROBE_FUNCTIONS                                                               \
  "local yield = ...\n"                                                              \
  "local shared = 12345\n"                                                           \
  "local function probe(a, b, ...)\n"                                                \
  "  local c = a + 1\n"                                                              \
  "  return function() return shared, c, 'hotlua-probe', '" PROBE_LONG_CONSTANT "' end\n" \
  "end\n"                                                                            \
  "local function suspended(x)\n"                                                    \
  "  local y = x\n"                                                                  \
  "  yield(y)\n"                                                                     \
  "end\n"

/* A C function the probe's Lua function calls to suspend its coroutine inside it. */
static int probe_yield(lua_State *L) { return lua_yield(L, lua_gettop(L)); }

/* Runs the probe chunk `source` (its first argument: probe_yield), leaving its `results`
** values at stack indices 1 to `results`, then a coroutine suspended in the function at index
** `suspended` (which calls probe_yield with its argument, 7). Raises on errors. */
static void probe_objects(lua_State *L, const char *source, size_t len, int results,
                          int suspended) {
  lua_State *co;
  lua_settop(L, 0);
  if (luaL_loadbuffer(L, source, len, "=hotlua-layout") != 0) lua_error(L);
  lua_pushcfunction(L, probe_yield);
  lua_call(L, 1, results);
  co = lua_newthread(L);
  lua_pushvalue(L, suspended);
  lua_xmove(L, co, 1);
  lua_pushinteger(co, 7);
  if (resume_with_one(co, L) != LUA_YIELD) luaL_error(L, "hotlua: the layout probe ran through");
}

/* The bytes the collector counts (`collectgarbage("count")` in bytes). */
static size_t counted_bytes(lua_State *L) {
  return (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB, 0);
}

/* hotlua_layout_check's results: true, or false and "its layout differs from BUILT_FOR in
** WRONG". */
static int probe_verdict(lua_State *L, const char *wrong, const char *built_for) {
  if (wrong == NULL) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushboolean(L, 0);
  lua_pushfstring(L, "its layout differs from %s in %s", built_for, wrong);
  return 2;
}

#endif
