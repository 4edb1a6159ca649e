-- Penlight reloaded while memory runs out (run under `ulimit -v`): Penlight objects are made,
-- memory is filled to the brim, and then, from inside a List:foreach callback (in the middle
-- of Penlight's own work), each module is reloaded after freeing one block at a time until
-- the reload succeeds. Every failed reload must leave Penlight behaving as before.
--
-- stdout: how many reloads succeeded and whether Penlight still behaves as it did before;
-- stderr: how many failed first. A failed reload that changed anything ends the script with
-- an error.

PENLIGHT_NO_GLOBAL_STRICT = true
local hotlua = require "hotlua"
local List = require "pl.List"
local class = require "pl.class"
local tablex = require "pl.tablex"
local stringx = require "pl.stringx"
local OrderedMap = require "pl.OrderedMap"

local Animal = class()
function Animal:_init(name) self.name = name end
function Animal:speak() return self.name .. " speaks" end
local list = List{3, 1, 2}
local cat = Animal("cat")
local map = OrderedMap{{b = 2}, {a = 1}}
local function behaviour()
  return table.concat({list:sorted():join(","), cat:speak(), tostring(Animal:class_of(cat)),
    stringx.split("a b")[2], tostring(tablex.size({1, 2})), table.concat(map:keys(), ",")}, " ")
end
local expected = behaviour()

local modules = {"pl.List", "pl.class", "pl.tablex", "pl.stringx", "pl.OrderedMap", "pl.utils"}
-- Filled with 64 KiB blocks: large allocations are refused first, small ones are still
-- served from what is left between the blocks. (Filled to the last byte, small fixed-size
-- allocations of hotlua and mlua abort: docs/semantics.md, Limitations.)
local ballast = {}
pcall(function()
  while true do ballast[#ballast + 1] = string.rep("x", 65536) .. #ballast end
end)
local failures, reloaded = 0, 0
List{1}:foreach(function()
  for _, name in ipairs(modules) do
    while true do
      local report, message = hotlua.reload(name)
      if report then
        reloaded = reloaded + 1
        break
      end
      failures = failures + 1
      assert(message:find("'" .. name .. "'", 1, true), message)
      -- Penlight's own code may run out of memory too; when it runs, it behaves as before.
      local ok, got = pcall(behaviour)
      if ok and got ~= expected then
        error("changed by a failed reload of " .. name .. ": " .. message)
      end
      ballast[#ballast] = nil
      collectgarbage()
    end
  end
end)
ballast = nil
collectgarbage()
io.stderr:write("penlight squeeze: ", failures, " reloads failed for lack of memory\n")
print(reloaded, behaviour() == expected)
