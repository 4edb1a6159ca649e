/* What the planner's walks over data tables share (collect.c, merge.c); data.lua says what a
** data table is and what each walk returns.
**
** The walks are in C because a module of a million records is a million tables, and the Lua
** versions of these loops spent most of their time dispatching instructions and calls, not
** reading tables. Only Lua's public C API is used, so these files are the same for Lua 5.1 to
** 5.5 and LuaJIT. Every function runs as (or inside) a lua_CFunction called in protected
** mode: a memory error raised by the API unwinds through these frames, which own nothing
** outside the Lua stack (every list they build is a Lua table), so nothing leaks and nothing
** is left half-written that the caller keeps. Each walk declares the stack slots it uses up
** front (luaL_checkstack) and keeps its working values at fixed slots. */

#ifndef HOTLUA_DATA_WALK_H
#define HOTLUA_DATA_WALK_H

#include <string.h>

#include "lauxlib.h"
#include "lua.h"

/* The stack slots each walk needs beyond its arguments: its lists, its working values and
** the temporaries of the helpers below (fewer than 30 in all). */
#define WALK_SLOTS 40

typedef lua_Integer Slot;

static inline int is_data_kind(int kind) {
  return kind == LUA_TSTRING || kind == LUA_TNUMBER || kind == LUA_TBOOLEAN;
}

/* list[at] = the value at the top (popped). */
static inline void set_at(lua_State *L, int list, Slot at) { lua_rawseti(L, list, (int)at); }

/* A growable array of integers kept in a full userdata at a stack slot: Lua owns the memory,
** so a memory error while it grows (raised by lua_newuserdata) leaks nothing. Read
** `items[at]` only where ints_set wrote. */
typedef struct Ints {
  int slot;
  Slot capacity;
  Slot *items;
} Ints;

/* Pushes a new, empty array. */
static inline void ints_push(lua_State *L, Ints *ints) {
  ints->capacity = 64;
  ints->items = (Slot *)lua_newuserdata(L, sizeof(Slot) * 64);
  ints->slot = lua_gettop(L);
}

/* items[at] = value (at >= 0), growing the array as needed. */
static inline void ints_set(lua_State *L, Ints *ints, Slot at, Slot value) {
  if (at >= ints->capacity) {
    Slot capacity = ints->capacity;
    Slot *items;
    while (capacity <= at) capacity *= 2;
    items = (Slot *)lua_newuserdata(L, sizeof(Slot) * (size_t)capacity);
    memcpy(items, ints->items, sizeof(Slot) * (size_t)ints->capacity);
    lua_replace(L, ints->slot);
    ints->items = items;
    ints->capacity = capacity;
  }
  ints->items[at] = value;
}

static inline void set_integer(lua_State *L, int list, Slot at, Slot value) {
  lua_pushinteger(L, (lua_Integer)value);
  set_at(L, list, at);
}

/* What table[value at `index`] holds: nil, false, or any other value. */
enum Found { ABSENT, FALSE_VALUE, TRUTHY };

static inline enum Found look_up(lua_State *L, int table, int index) {
  enum Found found;
  lua_pushvalue(L, index);
  lua_rawget(L, table);
  found = lua_isnil(L, -1) ? ABSENT : lua_toboolean(L, -1) ? TRUTHY : FALSE_VALUE;
  lua_pop(L, 1);
  return found;
}

/* Like lua_next over table `live`, but stops only at the keys whose value is a function and
** that table `new` lacks (raw): the old functions a new version no longer has. The key and
** the function are pushed as lua_next pushes them; 0 and nothing pushed after the last. */
static inline int next_deleted(lua_State *L, int live, int new) {
  while (lua_next(L, live)) {
    if (lua_type(L, -1) == LUA_TFUNCTION && look_up(L, new, lua_gettop(L) - 1) == ABSENT)
      return 1;
    lua_pop(L, 1);
  }
  return 0;
}

/* Appends to list `out` after slot n: the number of keys from the walk's root to step `step`
** followed by the key at stack index `key`, then those keys, root first. Step s was reached
** from step parent_of[s] by key key_of[s]; step 1 is the root. As `append_path` in data.lua.
** Returns the last slot written. */
static inline Slot append_path(lua_State *L, int out, Slot n, const Ints *parent_of,
                               int key_of, Slot step, int key) {
  Slot depth = 1, s, at;
  for (s = step; s > 1; s = parent_of->items[s]) depth++;
  set_integer(L, out, n + 1, depth);
  lua_pushvalue(L, key);
  set_at(L, out, n + 1 + depth);
  at = n + depth;
  for (s = step; s > 1; s = parent_of->items[s]) {
    lua_rawgeti(L, key_of, (int)s);
    set_at(L, out, at--);
  }
  return n + 1 + depth;
}

#endif
