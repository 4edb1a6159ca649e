-- One reload of one workload shape by one tool, timed in CPU seconds in this process; prints
-- one line: tool shape size reload_ms base_ms switched upgraded, where `switched` is the share
-- of the heap's references to the module's functions that lead to the new code afterwards, and
-- `upgraded` the share of the closures made at run time that run the new code.
--
--   lua workload.lua TOOL SHAPE SIZE      (run in an empty folder; writes m.lua there)
--
-- TOOL: hotlua (the program runs under `hotlua run`), luareload (cloudwu/luareload's
-- reload.lua on package.path), hotfix (jinq0123/hotfix's lua/ on package.path).
-- SHAPE module: one module of SIZE functions sharing locals and a state table, every body
--   changed; base = compiling and running the new file once (`loadfile`), in this process.
-- SHAPE heap: a module of 50 functions and SIZE live objects, in a global, that hold its
--   functions (a quarter also hold a closure made at run time); base = one full collection of
--   that heap.
local tool, shape, size = arg[1], arg[2], tonumber(arg[3])
package.path = "./?.lua;" .. package.path

local function write(source)
  local file = assert(io.open("m.lua", "w"))
  file:write(source)
  file:close()
end

local function module_source(version)
  local lines = { "local M = { state = { calls = 0 } }", "local shared = 0" }
  local count = shape == "module" and size or 50
  for i = 1, count do
    lines[#lines + 1] = ("function M.f%d(x) shared = shared + 1; M.state.calls = M.state.calls + 1; return x + %d end")
      :format(i, version * 1000000 + i)
  end
  lines[#lines + 1] = ("function M.make(i) return function() return i + %d end end"):format(version)
  lines[#lines + 1] = "function M.version() return " .. version .. " end"
  lines[#lines + 1] = "return M"
  return table.concat(lines, "\n")
end

local reload
if tool == "hotlua" then
  local hotlua = require "hotlua"
  reload = function() assert(hotlua.reload("m")) end
elseif tool == "luareload" then
  local luareload = require "reload"
  reload = function() assert(luareload.reload { "m" }) end
elseif tool == "hotfix" then
  local hotfix = require "hotfix.hotfix"
  reload = function() hotfix.hotfix_module("m") end
else
  error("unknown tool " .. tostring(tool))
end

write(module_source(1))
local m = require "m"
OBJECTS = {}
local objects = OBJECTS
if shape == "heap" then
  for i = 1, size do
    local object = { id = i, handler = m["f" .. (i % 50 + 1)] }
    if i % 4 == 0 then object.callback = m.make(i) end
    objects[i] = object
  end
end
write(module_source(2))

-- Each timed step starts from a collected heap: otherwise the garbage one leaves (the base's
-- chunk) makes the other pay for a whole collection cycle, whichever runs second.
local base
if shape == "module" then
  collectgarbage()
  local started = os.clock()
  assert(loadfile("m.lua"))()
  base = os.clock() - started
  collectgarbage()
else
  collectgarbage()
  local started = os.clock()
  collectgarbage()
  base = os.clock() - started
end

local started = os.clock()
reload()
local took = os.clock() - started
assert(m.version() == 2, tool .. " did not reload")
local switched, upgraded = 1, 1
if shape == "heap" then
  local new, closures, new_closures = 0, 0, 0
  for i = 1, size do
    local object = objects[i]
    if object.handler(0) == 2000000 + i % 50 + 1 then new = new + 1 end
    if object.callback then
      closures = closures + 1
      if object.callback() == i + 2 then new_closures = new_closures + 1 end
    end
  end
  switched, upgraded = new / size, new_closures / closures
end
print(("%s %s %d %.2f %.2f %.2f %.2f"):format(tool, shape, size, took * 1e3, base * 1e3, switched,
  upgraded))
