/* The merge walk over data tables, and the search for the old functions a new table lacks
** (see walk.h). */

#include "walk.h"

/* deleted(live, new) -> list: key, function for each old function `new` lacks (2 slots a
** function), for the planner's merge of any table (not only data tables). */
int hotlua_deleted_functions(lua_State *L) {
  enum { LIVE_TABLE = 1, NEW_TABLE, LIST };
  int n = 0;
  luaL_checkstack(L, WALK_SLOTS, "hotlua: data walk");
  lua_settop(L, NEW_TABLE);
  lua_newtable(L);
  lua_pushnil(L);
  while (next_deleted(L, LIVE_TABLE, NEW_TABLE)) {
    lua_pushvalue(L, -2);
    lua_rawseti(L, LIST, ++n);
    lua_rawseti(L, LIST, ++n);
  }
  return 1;
}

/* The lists and counters of one merge. */
typedef struct Merge {
  Slot writes, assigns, events, unmerged, pending, steps, added, merged, paired;
  int overwrite, merge3;
  /* for each merge pending: its step, and whether its new table is a data table */
  Ints steps_of, datas;
  /* for each step: the step it was reached from (the key it was reached by is in KEY_OF) */
  Ints parent_of;
} Merge;

enum { LIVE_ROOT = 1, NEW_ROOT, BASE_ROOT, POLICY, M_DATA, M_FOREIGN, M_PAIRS, M_GENERAL,
       M_UNMERGED, M_G, M_PAIRED,
       WRITES, ASSIGNS, EVENTS, LIVES, NEWS, BASES, STEPS_OF, DATAS, M_PARENT_OF, M_KEY_OF,
       LIVE, NEW, BASE, KEY, VALUE, CURRENT, COLLECTED };

/* Appends (table, key, value) at the given stack indices to `list`, 3 slots, after *n. */
static void append_triple(lua_State *L, int list, Slot *n, int table, int key, int value) {
  lua_pushvalue(L, table);
  set_at(L, list, ++*n);
  lua_pushvalue(L, key);
  set_at(L, list, ++*n);
  lua_pushvalue(L, value);
  set_at(L, list, ++*n);
}

/* Appends an event of `kind` at the field KEY of the table of `step` to the events list. */
static void event(lua_State *L, Merge *m, const char *kind, Slot step) {
  lua_pushstring(L, kind);
  set_at(L, EVENTS, ++m->events);
  m->events = append_path(L, EVENTS, m->events, &m->parent_of, M_KEY_OF, step, KEY);
}

/* Whether `live` (a table at that index) has a metatable with a `__newindex` and is not
** `_G`: a field added to it must go through its `__newindex`. */
static int assigns_through_newindex(lua_State *L, int live) {
  int has;
  if (lua_rawequal(L, live, M_G) || !lua_getmetatable(L, live)) return 0;
  lua_pushliteral(L, "__newindex");
  lua_rawget(L, -2);
  has = !lua_isnil(L, -1);
  lua_pop(L, 2);
  return has;
}

/* Queues the merge of CURRENT (live) with VALUE (new) at field KEY of step `step`. */
static void queue_merge(lua_State *L, Merge *m, Slot step, int is_data) {
  m->steps++;
  ints_set(L, &m->parent_of, m->steps, step);
  lua_pushvalue(L, KEY);
  set_at(L, M_KEY_OF, m->steps);
  m->pending++;
  lua_pushvalue(L, CURRENT);
  set_at(L, LIVES, m->pending);
  lua_pushvalue(L, VALUE);
  set_at(L, NEWS, m->pending);
  ints_set(L, &m->steps_of, m->pending, m->steps);
  ints_set(L, &m->datas, m->pending, is_data);
  lua_pushboolean(L, 0);
  if (lua_istable(L, BASE)) {
    lua_pushvalue(L, KEY);
    lua_rawget(L, BASE);
    if (lua_istable(L, -1)) lua_replace(L, -2); else lua_pop(L, 1);
  }
  set_at(L, BASES, m->pending);
}

/* Merges field KEY: CURRENT (the live value, not nil) and VALUE (the new one), at step
** `step`, as data.lua's merge does; returns whether VALUE was queued to merge into CURRENT. */
static int merge_field(lua_State *L, Merge *m, Slot step) {
  int kind = lua_type(L, VALUE), live_kind = lua_type(L, CURRENT), write = 0, is_new;
  /* COLLECTED: data[VALUE] for a table (nil, false, true or the live table it merged into);
  ** false for any other value. `collected`: a data table. */
  int collected = lua_toboolean(L, COLLECTED);
  int collected_true = lua_isboolean(L, COLLECTED) && collected;
  /* Unchanged. For a string, number or boolean VALUE, Lua's `==` is raw. */
  if (!collected && lua_rawequal(L, CURRENT, VALUE)) return 0;
  is_new = collected || (kind == LUA_TTABLE && look_up(L, M_GENERAL, VALUE) != ABSENT);
  if (live_kind == LUA_TTABLE && is_new && look_up(L, M_FOREIGN, CURRENT) != TRUTHY) {
    /* the live table VALUE merges into already, if any */
    if (collected_true) lua_pushnil(L);
    else if (collected) lua_pushvalue(L, COLLECTED);
    else {
      lua_pushvalue(L, VALUE);
      lua_rawget(L, M_PAIRS);
    }
    if (!lua_isnil(L, -1) && !lua_rawequal(L, -1, CURRENT)) {
      lua_pop(L, 1);
      event(L, m, "elsewhere", step);
      write = 1;
    } else if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      lua_pushvalue(L, VALUE);
      lua_pushvalue(L, CURRENT);
      if (collected_true) {
        lua_rawset(L, M_DATA);
        m->paired++;
      } else {
        lua_rawset(L, M_PAIRS);
      }
      m->merged++;
      queue_merge(L, m, step, collected_true);
      return 1;
    } else {
      lua_pop(L, 1);
    }
  } else if (live_kind == LUA_TTABLE && is_new) {
    /* a foreign table: replaced only if the file put it there */
    if (lua_istable(L, BASE)) {
      lua_pushvalue(L, KEY);
      lua_rawget(L, BASE);
      write = lua_rawequal(L, -1, CURRENT);
      lua_pop(L, 1);
    } else {
      write = 1;
    }
  } else if (live_kind != kind) {
    write = 1;
  } else if (m->overwrite) {
    write = 1;
  } else if (m->merge3 && lua_istable(L, BASE)) {
    int before;
    lua_pushvalue(L, KEY);
    lua_rawget(L, BASE);
    before = lua_gettop(L);
    if (lua_rawequal(L, before, CURRENT)) {
      write = 1;
    } else if (!lua_rawequal(L, before, VALUE)) {
      event(L, m, "conflict", step);
      lua_pushvalue(L, CURRENT);
      set_at(L, EVENTS, ++m->events);
      lua_pushvalue(L, VALUE);
      set_at(L, EVENTS, ++m->events);
    }
    lua_pop(L, 1);
  }
  if (write) append_triple(L, WRITES, &m->writes, LIVE, KEY, VALUE);
  return 0;
}

/* merge(live, new, base, policy, data, foreign, pairs, general, unmerged, G, paired)
**   -> writes, assigns, events, added, merged, left, paired
**
** `merge` of data.lua: the pending merges from one of data table `new` into `live`, until
** none is left or the next is of a table that is not a data table. `paired` counts the data
** tables merged so far (the new count is returned). */
int hotlua_merge_data(lua_State *L) {
  Merge m;
  Slot i;
  const char *policy;
  luaL_checkstack(L, WALK_SLOTS, "hotlua: data walk");
  lua_settop(L, M_PAIRED);
  policy = lua_tostring(L, POLICY);
  memset(&m, 0, sizeof m);
  m.overwrite = policy != NULL && strcmp(policy, "overwrite") == 0;
  m.merge3 = policy != NULL && strcmp(policy, "merge3") == 0;
  m.paired = (Slot)lua_tointeger(L, M_PAIRED);
  lua_pushliteral(L, "n");
  lua_rawget(L, M_UNMERGED);
  m.unmerged = (Slot)lua_tointeger(L, -1);
  lua_settop(L, M_PAIRED);
  lua_newtable(L);                                   /* WRITES */
  lua_newtable(L);                                   /* ASSIGNS */
  lua_newtable(L);                                   /* EVENTS */
  lua_newtable(L);                                   /* LIVES */
  lua_newtable(L);                                   /* NEWS */
  lua_newtable(L);                                   /* BASES */
  ints_push(L, &m.steps_of);                         /* STEPS_OF */
  ints_push(L, &m.datas);                            /* DATAS */
  ints_push(L, &m.parent_of);                        /* M_PARENT_OF */
  lua_newtable(L);                                   /* M_KEY_OF */
  lua_pushvalue(L, LIVE_ROOT);
  set_at(L, LIVES, 1);
  lua_pushvalue(L, NEW_ROOT);
  set_at(L, NEWS, 1);
  lua_pushvalue(L, BASE_ROOT);
  set_at(L, BASES, 1);
  ints_set(L, &m.steps_of, 1, 1);
  ints_set(L, &m.datas, 1, 1);
  ints_set(L, &m.parent_of, 1, 0);
  lua_pushboolean(L, 0);
  set_at(L, M_KEY_OF, 1);
  m.pending = 1;
  m.steps = 1;
  for (;;) {
    Slot step;
    lua_settop(L, M_KEY_OF);
    if (m.pending == 0 || !m.datas.items[m.pending]) break;
    lua_rawgeti(L, LIVES, (int)m.pending);           /* LIVE */
    lua_rawgeti(L, NEWS, (int)m.pending);            /* NEW */
    lua_rawgeti(L, BASES, (int)m.pending);           /* BASE */
    step = m.steps_of.items[m.pending];
    /* (the slots are not cleared: the next merge queued overwrites them) */
    m.pending--;
    lua_pushnil(L);
    while (lua_next(L, NEW)) {                       /* KEY, VALUE */
      int merging = 0;
      lua_pushvalue(L, KEY);
      lua_rawget(L, LIVE);                           /* CURRENT */
      if (lua_istable(L, VALUE)) {
        lua_pushvalue(L, VALUE);
        lua_rawget(L, M_DATA);                       /* COLLECTED */
      } else {
        lua_pushboolean(L, 0);
      }
      if (lua_isnil(L, CURRENT)) {
        m.added++;
        if (assigns_through_newindex(L, LIVE))
          append_triple(L, ASSIGNS, &m.assigns, LIVE, KEY, VALUE);
        else
          append_triple(L, WRITES, &m.writes, LIVE, KEY, VALUE);
      } else {
        merging = merge_field(L, &m, step);
      }
      if (lua_istable(L, VALUE) && !merging) {
        lua_pushvalue(L, NEW);
        set_at(L, M_UNMERGED, ++m.unmerged);
        lua_pushvalue(L, KEY);
        set_at(L, M_UNMERGED, ++m.unmerged);
      }
      lua_settop(L, KEY);
    }
    /* old functions the new version no longer has (the planner keeps those of the batch) */
    lua_pushnil(L);
    while (next_deleted(L, LIVE, NEW)) {             /* KEY, VALUE (the old function) */
      event(L, &m, "deleted", step);
      lua_pushvalue(L, VALUE);
      set_at(L, EVENTS, ++m.events);
      lua_settop(L, KEY);
    }
  }
  lua_settop(L, M_KEY_OF);
  lua_pushliteral(L, "n");
  lua_pushinteger(L, (lua_Integer)m.unmerged);
  lua_rawset(L, M_UNMERGED);
  lua_pushliteral(L, "n");
  lua_pushinteger(L, (lua_Integer)m.writes);
  lua_rawset(L, WRITES);
  /* the merges left, the next to do last: live, new, base, then the path */
  lua_newtable(L);
  {
    int left = lua_gettop(L);
    Slot nleft = 0;
    for (i = 1; i <= m.pending; i++) {
      Slot step = m.steps_of.items[i];
      lua_rawgeti(L, LIVES, (int)i);
      set_at(L, left, ++nleft);
      lua_rawgeti(L, NEWS, (int)i);
      set_at(L, left, ++nleft);
      lua_rawgeti(L, BASES, (int)i);
      set_at(L, left, ++nleft);
      lua_rawgeti(L, M_KEY_OF, (int)step);
      nleft = append_path(L, left, nleft, &m.parent_of, M_KEY_OF, m.parent_of.items[step],
                          lua_gettop(L));
      lua_pop(L, 1);
    }
    lua_pushvalue(L, WRITES);
    lua_pushvalue(L, ASSIGNS);
    lua_pushvalue(L, EVENTS);
    lua_pushinteger(L, (lua_Integer)m.added);
    lua_pushinteger(L, (lua_Integer)m.merged);
    lua_pushvalue(L, left);
    lua_pushinteger(L, (lua_Integer)m.paired);
  }
  return 7;
}
