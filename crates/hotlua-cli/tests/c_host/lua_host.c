/* A minimal C host for the C module tests: runs one Lua script in a fresh state with the
 * standard libraries, like `lua SCRIPT` does, for a Lua version no distribution packages
 * (Lua 5.5, or a 5.4 with another layout, built from the sources the `lua-src` crate vendors
 * by scripts/build-lua-host).
 * Exit status 1 and the error on stderr when the script fails. */
#include <stdio.h>

#include "lauxlib.h"
#include "lua.h"
#include "lualib.h"

static int traceback(lua_State *L) {
  luaL_traceback(L, L, lua_tostring(L, 1), 1);
  return 1;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s SCRIPT\n", argv[0]);
    return 2;
  }
  lua_State *L = luaL_newstate();
  if (L == NULL) {
    fprintf(stderr, "cannot create a Lua state\n");
    return 1;
  }
  luaL_openlibs(L);
  lua_pushcfunction(L, traceback);
  int status = luaL_loadfile(L, argv[1]);
  if (status == LUA_OK) status = lua_pcall(L, 0, 0, 1);
  if (status != LUA_OK) fprintf(stderr, "lua: %s\n", lua_tostring(L, -1));
  lua_close(L);
  return status == LUA_OK ? 0 : 1;
}
