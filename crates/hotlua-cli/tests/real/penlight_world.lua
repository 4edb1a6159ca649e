-- Penlight modules whose top levels read the live world (issue 15), reloaded unchanged:
-- the same output under lua5.4 (no reloads) and under `hotlua run` (with them).
--
--   pl.stringx after stringx.import(): the `string` table holds stringx's functions;
--   pl.func reads `_DEBUG` at load; pl.compat keeps a built-in `warn` (`rawget(_G, "warn")`);
--   `require 'pl'` serves lazy globals through _G's metatable.

PENLIGHT_NO_GLOBAL_STRICT = true
local ok, hotlua = pcall(require, "hotlua")
local function reload(name)
  if ok then assert(hotlua.reload(name)) end
end

require "pl"
local stringx = require "pl.stringx"
stringx.import()
local builtin_warn = warn
_DEBUG = true

for _, name in ipairs { "pl.stringx", "pl.func", "pl.compat", "pl.utils", "pl.List" } do
  reload(name)
end

print(("  a b  "):strip(), ("x,y"):split(",")[2], string.strip == stringx.strip)
print(_DEBUG, warn == builtin_warn, type(getmetatable(_G)))
print(List { 3, 1, 2 }:sort():concat(","), tablex.size { a = 1, b = 2 })
