-- `luarocks make` at the repository root builds the C module (crates/hotlua-module) with
-- cargo for the Lua that luarocks installs for (`--lua-version 5.4`, 5.3, 5.2, 5.1; a LuaJIT
-- interpreter gets a LuaJIT build) and installs `hotlua.so` into the tree's library folder.
-- Needs a Rust toolchain (cargo) on PATH; the module links no Lua library and needs no Lua
-- headers, but luarocks itself checks that the target Lua's headers are installed.
rockspec_format = "3.0"
package = "hotlua"
version = "scm-1"

source = {
   -- `luarocks make` builds this checkout and never fetches the source. The repository's
   -- public address is not settled yet.
   url = "git+https://example.invalid/hotlua.git",
}

description = {
   summary = "Hot-reload Lua modules inside a running VM, keeping every object and local",
   detailed = [[
hotlua.reload(name) swaps the code of a loaded module while its tables, objects and local
variables stay where they are, and switches every reference to the old functions (other
modules, callbacks, the registry, suspended coroutines) to the new code. hotlua.watch(dir)
and hotlua.poll() reload modules whose files changed.]],
   license = "MIT",
}

dependencies = {
   "lua >= 5.1, < 5.5",
}

build = {
   type = "command",
   build_command = [[scripts/luarocks-build "$(LUA)"]],
   install_command = [[scripts/luarocks-build "$(LUA)" "$(LIBDIR)"]],
}
