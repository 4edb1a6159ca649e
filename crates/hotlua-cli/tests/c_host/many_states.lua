-- One service of many_states.c: loads hotlua and a module, watches the module's folder (given
-- in WATCH_DIR), saves a file there (an event for every watching state) and polls.
local dir = assert(os.getenv("WATCH_DIR"), "WATCH_DIR is not set")
package.path = dir .. "/?.lua"
local hotlua = require "hotlua"
local m = require "m"
hotlua.watch(dir)
local file = assert(io.open(dir .. "/touched.lua", "w"))
file:write("return {}\n")
file:close()
hotlua.poll()
assert(m.version == 1)
