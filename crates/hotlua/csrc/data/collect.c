/* The collect walk over data tables (see walk.h). */

#include "walk.h"

/* collect(root, data, skip, pairs, general, order, count) -> found | false, count
**
** `collect` of data.lua: collects `root` and every data table it reaches, depth first in
** `next` order, appending each to `order` (`count` entries so far; the new count is
** returned). Tables are read once: whether a table is a data table and the tables it holds
** are found in one pass, the tables waiting on a stack in reverse so that the first is
** walked next. */
int hotlua_collect_data(lua_State *L) {
  enum { ROOT = 1, DATA, SKIP, PAIRS, GENERAL, ORDER, COUNT,
         FOUND, STACK, STACK_STEPS, PARENT_OF, KEY_OF, TABLE };
  Slot count, n = 1, steps = 1, nfound = 0;
  Ints stack_steps, parent_of;
  luaL_checkstack(L, WALK_SLOTS, "hotlua: data walk");
  lua_settop(L, COUNT);
  count = (Slot)lua_tointeger(L, COUNT);
  lua_pushvalue(L, ROOT);
  lua_rawget(L, DATA);
  if (!lua_isnil(L, -1)) {
    /* true or a table: collected already; false: not a data table */
    if (lua_toboolean(L, -1)) lua_newtable(L); else lua_pushboolean(L, 0);
    lua_pushinteger(L, (lua_Integer)count);
    return 2;
  }
  lua_settop(L, COUNT);
  lua_newtable(L);                                   /* FOUND */
  lua_newtable(L);                                   /* STACK */
  ints_push(L, &stack_steps);                        /* STACK_STEPS */
  ints_push(L, &parent_of);                          /* PARENT_OF */
  lua_newtable(L);                                   /* KEY_OF */
  lua_pushvalue(L, ROOT);
  set_at(L, STACK, 1);
  ints_set(L, &stack_steps, 1, 1);
  ints_set(L, &parent_of, 1, 0);
  lua_pushboolean(L, 0);
  set_at(L, KEY_OF, 1);
  while (n > 0) {
    Slot step = stack_steps.items[n], below = n - 1;
    int is_data;
    lua_settop(L, KEY_OF);
    lua_rawgeti(L, STACK, (int)n);                   /* TABLE */
    n--;
    if (look_up(L, DATA, TABLE) != ABSENT) continue;
    is_data = !lua_getmetatable(L, TABLE);
    if (!is_data) lua_pop(L, 1);
    if (is_data) {
      lua_pushnil(L);
      while (lua_next(L, TABLE)) {
        int kind = lua_type(L, -1);
        if (!is_data_kind(lua_type(L, -2))) {
          is_data = 0;
          break;
        }
        if (kind == LUA_TTABLE) {
          int value = lua_gettop(L);
          /* (whether it was collected already is looked up once, when it is walked) */
          if (look_up(L, SKIP, value) != TRUTHY && look_up(L, PAIRS, value) == ABSENT &&
              look_up(L, GENERAL, value) == ABSENT) {
            steps++;
            ints_set(L, &parent_of, steps, step);
            lua_pushvalue(L, value - 1);
            set_at(L, KEY_OF, steps);
            n++;
            lua_pushvalue(L, value);
            set_at(L, STACK, n);
            ints_set(L, &stack_steps, n, steps);
          }
        } else if (!is_data_kind(kind)) {
          is_data = 0;
          break;
        }
        lua_pop(L, 1);
      }
    }
    lua_settop(L, TABLE);
    if (is_data) {
      Slot i = below + 1, j = n;
      lua_pushvalue(L, TABLE);
      lua_pushboolean(L, 1);
      lua_rawset(L, DATA);
      count++;
      lua_pushvalue(L, TABLE);
      set_at(L, ORDER, count);
      for (; i < j; i++, j--) {
        Slot step_i = stack_steps.items[i];
        lua_rawgeti(L, STACK, (int)i);
        lua_rawgeti(L, STACK, (int)j);
        set_at(L, STACK, i);
        set_at(L, STACK, j);
        stack_steps.items[i] = stack_steps.items[j];
        stack_steps.items[j] = step_i;
      }
    } else if (step == 1) {
      lua_pushboolean(L, 0);
      lua_pushinteger(L, (lua_Integer)count);
      return 2;
    } else {
      n = below;
      lua_pushvalue(L, TABLE);
      lua_pushboolean(L, 0);
      lua_rawset(L, DATA);
      lua_pushvalue(L, TABLE);
      set_at(L, FOUND, ++nfound);
      lua_rawgeti(L, KEY_OF, (int)step);
      nfound = append_path(L, FOUND, nfound, &parent_of, KEY_OF, parent_of.items[step],
                           lua_gettop(L));
    }
  }
  lua_settop(L, FOUND);
  lua_pushinteger(L, (lua_Integer)count);
  return 2;
}
