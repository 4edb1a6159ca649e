/* Staging's copies of the tables a new top level may write (src/staging.rs), slot for slot.
**
** A top level that sets a million globals is staged with a copy of `_G` taken before it runs
** and a comparison afterwards. Through the public API each costs a `next` loop, and `next`
** looks the previous key up again at every step: a million hash lookups that miss the cache.
** Here the copy has the original's array and hash sizes and its slots copied as they are, so
** the comparison walks both slot arrays side by side. When a slot's key moved (the table was
** resized, or an insertion displaced a key), the comparison touches nothing and says so, and
** the caller compares by key in Lua instead.
**
** Compiled like proto.c and scan.c (see backend.h); unlike them it also runs while the
** collector runs, so every write goes through the API or the collector's barrier.
*/

#include "backend.h"
#include "ltable.h"
#include "lauxlib.h"

/* The table at stack index `idx` (known to be a table). */
static Table *table_at(lua_State *L, int idx) {
  return (Table *)lua_topointer(L, idx);
}

static unsigned int hash_size(const Table *t) {
  return isdummy(t) ? 0 : (unsigned int)sizenode(t);
}

/* hotlua_table_clone(t): a table with t's entries in t's slots, and how many entries it has.
** Raises only "not enough memory". */
int hotlua_table_clone(lua_State *L) {
  Table *t = table_at(L, 1);
  unsigned int asize = hotlua_array_size(t), nsize = hash_size(t), i;
  lua_Integer entries = 0;
  Table *c;
  lua_createtable(L, (int)asize, (int)nsize);
  c = table_at(L, -1);
  /* lua_createtable may have run a collector step that already marked `c` black: the
  ** barrier makes the collector look at it again, now that it holds the copied values. */
  memcpy(c->array, t->array, asize * sizeof(TValue));
  if (nsize > 0) {
    memcpy(c->node, t->node, nsize * sizeof(Node));
    c->lastfree = c->node + (t->lastfree - t->node);
  }
  hotlua_table_barrier(L, c);
  for (i = 0; i < asize; i++)
    if (!isempty(&t->array[i])) entries++;
  for (i = 0; i < nsize; i++)
    if (!isempty(gval(gnode(t, i)))) entries++;
  lua_pushinteger(L, entries);
  return 2;
}

/* Whether two slots hold the same key: the same type tag and, for tags that carry a value,
** the same value bits. An empty slot's key (nil) and the booleans carry none: their value
** bytes are whatever the slot held before, never compared. */
static int same_key(const Node *a, const Node *b) {
  if (keytt(a) != keytt(b)) return 0;
  switch (keytt(a)) {
    case LUA_VNIL: case LUA_VFALSE: case LUA_VTRUE: return 1;
    default: return memcmp(&keyval(a), &keyval(b), sizeof(Value)) == 0;
  }
}

/* Raw equality (an integer never equal to a float: see hotlua_raw_equal), with every kind of
** empty slot equal to every other. */
static int same_value(const TValue *a, const TValue *b) {
  return (isempty(a) && isempty(b)) || hotlua_raw_equal(a, b);
}

static void push_value(lua_State *L, const TValue *v) {
  setobj2s(L, L->top.p, v);
  L->top.p++;
}

static void push_key(lua_State *L, const Node *n) {
  getnodekey(L, s2v(L->top.p), n);
  L->top.p++;
}

/* Whether `now`'s key is `before`'s, or was until the collector marked it dead (its value was
** deleted): the node still names the same object, which `before` keeps alive. */
static int key_kept(const Node *now, const Node *before) {
  return same_key(now, before)
      || (keyisdead(now) && keyiscollectable(before) && gckey(now) == gckey(before));
}

/* Puts `before`'s key and value back into `now`, a slot of `live` whose key is kept. */
static void put_back_slot(lua_State *L, Table *live, Node *now, const Node *before) {
  TValue key;
  getnodekey(L, &key, before);
  setnodekey(L, now, &key);
  setobj2t(L, gval(now), gval(before));
  invalidateTMcache(live);
  hotlua_table_barrier(L, live);
}

/* hotlua_table_diff(live, copy): if every key of `copy` with a value is still in its slot of
** `live` (a slot without a value in the copy may have got a key: added), a table of every field of `live` whose
** value is not nil and not raw-equal to the copy's, with `live` put back as the copy; else
** nil, and `live` untouched. Raises only "not enough memory", and only before `live` is
** touched (the caller then puts it back by key).
**
** Only recording what was written allocates, and it comes first. Putting back writes into the
** slots directly: a key the collector marked dead once its value was deleted is the same
** object as the copy's, and gets its slot back as it was; nothing is inserted, so no slot
** moves. */
int hotlua_table_diff(lua_State *L) {
  Table *live = table_at(L, 1), *copy = table_at(L, 2);
  unsigned int asize, nsize, i;
  lua_settop(L, 2);
  luaL_checkstack(L, 3, NULL);
  /* allocated before the slots are looked at: it may run a collector step */
  lua_createtable(L, 0, 0);
  asize = hotlua_array_size(live);
  nsize = hash_size(live);
  if (asize != hotlua_array_size(copy) || nsize != hash_size(copy)) {
    lua_pushnil(L);
    return 1;
  }
  for (i = 0; i < nsize; i++) {
    const Node *now = gnode(live, i), *before = gnode(copy, i);
    if (!key_kept(now, before) && !isempty(gval(before))) {
      lua_pushnil(L);
      return 1;
    }
  }
  /* what was written */
  for (i = 0; i < asize; i++) {
    if (!isempty(&live->array[i]) && !same_value(&live->array[i], &copy->array[i])) {
      push_value(L, &live->array[i]);
      lua_rawseti(L, 3, (lua_Integer)i + 1);
    }
  }
  for (i = 0; i < nsize; i++) {
    const Node *now = gnode(live, i);
    if (!isempty(gval(now)) && !same_value(gval(now), gval(gnode(copy, i)))) {
      push_key(L, now);
      push_value(L, gval(now));
      lua_rawset(L, 3);
    }
  }
  /* put back */
  for (i = 0; i < asize; i++) {
    if (!same_value(&live->array[i], &copy->array[i])) {
      setobj2t(L, &live->array[i], &copy->array[i]);
      hotlua_table_barrier(L, live);
    }
  }
  for (i = 0; i < nsize; i++) {
    Node *now = gnode(live, i);
    const Node *before = gnode(copy, i);
    if (isempty(gval(before))) {
      if (!isempty(gval(now))) setempty(gval(now));
    } else if (!same_key(now, before) || !same_value(gval(now), gval(before))) {
      put_back_slot(L, live, now, before);
    }
  }
  invalidateTMcache(live);
  return 1;
}
