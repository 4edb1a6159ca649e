/* New Lua closures from the public C API alone (see backend.h): the same for every backend.
**
** Lua makes a closure of any size only when it loads a chunk: the main function of a binary
** chunk comes with as many fresh closed upvalues as its prototype declares. So a closure with
** `n` upvalues is the loaded bytecode of a function with `n` upvalues, made once per state
** and kept in the registry; the caller then gives it the prototype and cells it wants. */

#include "backend.h"

/* lua_dump's writer, as string.dump's: the buffer starts at the first write, once lua_dump
** has taken the function from the top of the stack (luaL_buffinit may push a box there). */
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

/* Loads the chunk at the top of the stack (a string) in `mode`, over it; raises its error. */
static void load_over(lua_State *L, const char *mode) {
  size_t len;
  const char *chunk = lua_tolstring(L, -1, &len);
  if (luaL_loadbufferx(L, chunk, len, "=hotlua", mode) != 0) lua_error(L);
  lua_remove(L, -2);
}

/* Pushes the bytecode of a function with `n` upvalues (0 <= n <= 255), made once per state:
** the source declares `n` variables the innermost function names, a chunk compiles it (nothing
** runs), and the innermost prototype is dumped through a second loaded closure that the
** backend points at it. Raises on memory errors. */
static void push_template(lua_State *L, int n) {
  luaL_Buffer source;
  Chunk chunk;
  int outer = n < 200 ? n : 200, i;
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
  /* Lua allows 200 locals a function: the last (n - 200) are the middle function's. */
  luaL_buffinit(L, &source);
  for (i = 0; i < n; i++) {
    if (i == outer) luaL_addstring(&source, "return function() ");
    lua_pushfstring(L, "local a%d ", i);
    luaL_addvalue(&source);
  }
  if (n <= outer) luaL_addstring(&source, "return function() ");
  luaL_addstring(&source, "return function() local _");
  for (i = 0; i < n; i++) {
    lua_pushfstring(L, i == 0 ? " = a%d" : ", a%d", i);
    luaL_addvalue(&source);
  }
  luaL_addstring(&source, " end end");
  luaL_pushresult(&source);
  load_over(L, "t");
  if (luaL_loadbufferx(L, "", 0, "=hotlua", "t") != 0) lua_error(L);
  /* The main function (still on the stack) keeps the prototype alive; lua_dump only reads
  ** it. No barrier: the carrier is garbage once dumped, and freeing it never reads its
  ** prototype. */
  point_at_grandchild((HClosure *)lua_topointer(L, -1), (const HClosure *)lua_topointer(L, -2));
  chunk.started = 0;
  dump_function(L, add_to_chunk, &chunk);
  luaL_pushresult(&chunk.buffer);
  lua_replace(L, -3);  /* over the main function */
  lua_pop(L, 1);       /* the carrier */
  lua_pushvalue(L, -1);
  lua_rawseti(L, -3, n);
  lua_remove(L, -2);
}

/* luaF_newLclosure + luaF_initupvals, or LuaJIT's lj_func_newL_empty: pushes a new Lua closure
** with `n` upvalues, each a fresh closed cell (the first holds the globals, as lua_load sets
** it), and a prototype of its own that no one else uses, and returns it. The caller gives it
** the prototype and cells it wants (closure_init): the closure is new (white), so storing into
** it needs no barrier until something else allocates. Raises on memory errors (run
** protected). */
HClosure *hotlua_new_closure(lua_State *L, int n) {
  luaL_checkstack(L, 4, "hotlua: making a closure");
  if (n > MAX_CLOSURE_UPVALUES) luaL_error(L, "hotlua: a closure with %d upvalues", n);
  push_template(L, n);
  load_over(L, "b");
  return (HClosure *)lua_topointer(L, -1);
}
