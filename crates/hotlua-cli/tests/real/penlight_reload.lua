-- Penlight under reload: `penlight_reload.lua MODE` with MODE one of
--
--   none       exercise Penlight, no reload (runs in lua5.4 and in hotlua alike);
--   unchanged  the same, and reload every pl.* module from its unchanged file, one by one,
--              from inside a List:foreach callback (in the middle of Penlight's own work);
--   edited     the same with every module loaded from a copy in a temp folder first on
--              package.path, edited before each reload: version 1 appends a probe function to
--              the module's table, version 2 changes the probe's body.
--
-- stdout carries only Penlight's behaviour, so it is the same in every mode when the reloads
-- are right. Reload failures and lost state are listed on stderr and make the exit status 1.
-- The last stderr line gives the reload timings.

local mode = arg[1] or "none"
-- Before any module it reloads, as a host of the C module must: a module loaded earlier is
-- reloaded only if its functions say it came from its file (pl.file's come from pl.utils,
-- pl.dir and lfs; pl.text is pl.stringx).
local hotlua = mode ~= "none" and require "hotlua" or nil
PENLIGHT_NO_GLOBAL_STRICT = true

-- Written at once, so that they are seen even if the process dies later.
local problems = 0
local function problem(text)
  problems = problems + 1
  io.stderr:write("PROBLEM: ", text, "\n")
end

-- Where Penlight lives, found as require finds it.
local pl_file = assert(package.searchpath("pl.utils", package.path), "Penlight is not installed")
local pl_dir = pl_file:match("^(.*)/utils%.lua$")

local lfs = require "lfs"
local function read(file)
  local f = assert(io.open(file, "rb"))
  local text = f:read("a")
  f:close()
  return text
end
local function write(file, text)
  local f = assert(io.open(file, "wb"))
  f:write(text)
  f:close()
end

-- Every pl.* module, by the files of Penlight's folder, and `pl` itself (pl/init.lua).
local names = {}
for entry in lfs.dir(pl_dir) do
  local base = entry:match("^(.-)%.lua$")
  if base and base ~= "init" then names[#names + 1] = "pl." .. base end
end
table.sort(names)
names[#names + 1] = "pl"

-- In `edited` mode every module is loaded from a copy first on package.path.
local copies
if mode == "edited" then
  copies = os.tmpname()
  os.remove(copies)
  assert(lfs.mkdir(copies))
  assert(lfs.mkdir(copies .. "/pl"))
  for entry in lfs.dir(pl_dir) do
    if entry:match("%.lua$") then write(copies .. "/pl/" .. entry, read(pl_dir .. "/" .. entry)) end
  end
  package.path = copies .. "/?.lua;" .. copies .. "/?/init.lua;" .. package.path
end

local function file_of(name)
  local relative = name == "pl" and "pl/init.lua" or name:gsub("%.", "/") .. ".lua"
  return copies .. "/" .. relative
end

local modules = {}
for _, name in ipairs(names) do
  modules[name] = require(name)
end

local class = require "pl.class"
local List = require "pl.List"
local Map = require "pl.Map"
local Set = require "pl.Set"
local OrderedMap = require "pl.OrderedMap"
local MultiMap = require "pl.MultiMap"
local Date = require "pl.Date"
local pretty = require "pl.pretty"
local stringx = require "pl.stringx"
local tablex = require "pl.tablex"
local seq = require "pl.seq"
local template = require "pl.template"
local comprehension = require "pl.comprehension"

-- A class hierarchy of the program's own, made with pl.class.
local Animal = class()
function Animal:_init(name)
  self.name = name
end
function Animal:speak()
  return self.name .. " makes a sound"
end
local Dog = class(Animal)
function Dog:speak()
  return self.name .. " barks"
end

-- Objects created before any reload.
local old = {
  list = List { 1, 2, 3 },
  map = Map { a = 1 },
  set = Set { 1, 2 },
  ordered = OrderedMap(),
  multi = MultiMap(),
  date = Date { year = 2020, month = 1, day = 2, hour = 3, min = 4, sec = 5 },
  dog = Dog("rex"),
}
old.ordered:set("z", 1)
old.ordered:set("a", 2)
old.multi:set("k", 1)

local format = Date.Format("yyyy-mm-dd HH:MM:SS")
local function same(a, b)
  return getmetatable(a) == getmetatable(b)
end

-- Penlight at work, printed, one section at a time (an error fails its section only).
-- Objects created before the reloads and objects created now must behave alike and share
-- their class.
local sections = {
  { "List", function()
    local list = List { 4, 5, 6 }
    old.list:append(#old.list + 1)
    print("List", tostring(old.list:slice(1, 4)), tostring(list:map(function(x) return x * 2 end)),
      tostring(list:filter(function(x) return x > 4 end)), list:reduce "+", same(list, old.list),
      List.is_a(list, List), tostring(List.range(1, 3)))
  end },
  { "Map", function()
    local map = Map { b = 2 }
    old.map:set("c", old.map:get("a") + 1)
    print("Map", old.map:get("c"), map:get("b"), tostring(List(old.map:keys()):sort()),
      same(map, old.map), #old.map:values())
  end },
  { "Set", function()
    local set = Set { 2, 3 }
    print("Set", tostring(Set.values(old.set + set):sort()), tostring(Set.values(old.set * set)),
      Set.len(old.set), set[3] == true, same(set, old.set), Set.issubset(Set { 2 }, set))
  end },
  { "OrderedMap", function()
    local ordered = OrderedMap()
    ordered:set("y", 1)
    ordered:set("b", 2)
    print("OrderedMap", tostring(old.ordered:keys()), tostring(ordered:values()),
      same(ordered, old.ordered), old.ordered:get("a"))
  end },
  { "MultiMap", function()
    local multi = MultiMap()
    multi:set("k", 2)
    print("MultiMap", tostring(List(old.multi.k)), tostring(List(multi.k)), same(multi, old.multi))
  end },
  { "Date", function()
    local date = Date { year = 2020, month = 1, day = 2, hour = 3, min = 4, sec = 5 }
    local later = Date { year = 2020, month = 1, day = 3, hour = 3, min = 4, sec = 5 }
    print("Date", format:tostring(old.date), format:tostring(date), old.date:year(), date:month(),
      date == old.date, later > old.date, tostring(later:diff(old.date)), tostring(later + Date.Interval(60) > later), same(date, old.date),
      Date.is_a(date, Date), format:tostring(Date(old.date):add { day = 1 }))
  end },
  { "pretty", function()
    print("pretty", pretty.write({ 1, "two", { 3, { x = 4 } } }, ""), pretty.write { nested = { 5 } })
  end },
  { "stringx", function()
    print("stringx", table.concat(stringx.split("a,b,,c", ","), "|"), stringx.strip("  s  "),
      stringx.startswith("hotlua", "hot"), stringx.replace("aaa", "a", "b", 2),
      stringx.title("hot reload"), stringx.shorten("a long sentence", 8))
  end },
  { "tablex", function()
    print("tablex", tablex.deepcompare({ 1, { 2 } }, { 1, { 2 } }), table.concat(tablex.range(1, 4), " "),
      tablex.reduce("+", { 1, 2, 3 }), table.concat(tablex.map(function(x) return x + 1 end, { 1, 2 }), " "),
      tablex.size { a = 1, b = 2 })
  end },
  { "seq", function()
    print("seq", table.concat(seq.copy(seq.map(function(x) return x * x end, seq.range(1, 4))), " "),
      table.concat(comprehension.new() "x^2 for x=1,3" (), " "))
  end },
  { "template", function()
    print("template", (template.substitute("$(who) reloads $(n)", { who = "hotlua", n = 1 })))
  end },
  { "class", function()
    local dog = Dog("fido")
    print("class", old.dog:speak(), dog:speak(), dog:is_a(Animal), Dog:class_of(old.dog),
      same(dog, old.dog), Animal:class_of(dog), tostring(Dog._base == Animal))
  end },
}

local function behaviour(step)
  print("-- " .. step)
  for _, section in ipairs(sections) do
    local ok, message = pcall(section[2])
    if not ok then
      print(section[1], "error")
      problem(("%s, %s: %s"):format(step, section[1], tostring(message)))
    end
  end
end

-- Reloads, with their timings.
local timings = {}
local function reload(name)
  local report, message = hotlua.reload(name)
  if not report then
    problem(("reload %s failed: %s"):format(name, tostring(message)))
    return false
  end
  timings[#timings + 1] = report.timings.total_ms
  return true
end

-- The edits of `edited` mode: the probe appended before the module's final `return NAME`.
local function edit(name, version)
  local file = file_of(name)
  local text = read(file)
  local returned = text:match("\nreturn%s+([%a_][%w_]*)%s*$")
  if not returned then return nil end
  if version == 1 then
    text = text:gsub("\nreturn%s+[%a_][%w_]*%s*$", ("\n%s.hotlua_probe = function() return %q end\nreturn %s\n")
      :format(returned, name .. " v1", returned))
  else
    text = text:gsub(name:gsub("%p", "%%%0") .. " v1", name .. " v2")
  end
  write(file, text)
  return returned
end

-- Objects made from each class module before the reloads: they must run the new methods.
-- (Set is not here: a Set's fields are its members, its methods are reached through Set.)
local instances = {
  ["pl.List"] = old.list,
  ["pl.Map"] = old.map,
  ["pl.OrderedMap"] = old.ordered,
  ["pl.MultiMap"] = old.multi,
  ["pl.Date"] = old.date,
}

local function step(name)
  if mode == "unchanged" then
    reload(name)
  elseif mode == "edited" then
    if edit(name, 1) and reload(name) then
      local module = package.loaded[name]
      local probe = type(module) == "table" and rawget(module, "hotlua_probe")
      if type(probe) ~= "function" or probe() ~= name .. " v1" then
        problem(name .. ": the probe added by the edit is not in the module table")
      else
        edit(name, 2)
        if reload(name) then
          if probe() ~= name .. " v2" then
            problem(name .. ": a reference taken before the second edit still runs version 1")
          end
          local object = instances[name]
          if object and (object.hotlua_probe == nil or object.hotlua_probe() ~= name .. " v2") then
            problem(name .. ": an object created before the reloads does not see the new method")
          end
        end
      end
    else
      reload(name)
    end
  end
  behaviour("after " .. name)
end

behaviour("start")
-- Penlight iterating over the module names calls back into the step that reloads them,
-- pl.List included.
List(names):foreach(step)

-- The state every object had before the reloads is still there.
if #old.list ~= 3 + #names + 1 then problem("List lost elements: " .. tostring(old.list)) end
if old.map:get("a") ~= 1 then problem("Map lost its data") end
if old.dog.name ~= "rex" then problem("the Dog lost its name") end

if copies then
  for entry in lfs.dir(copies .. "/pl") do os.remove(copies .. "/pl/" .. entry) end
  lfs.rmdir(copies .. "/pl")
  lfs.rmdir(copies)
end

if #timings > 0 then
  table.sort(timings)
  local half = math.floor(#timings / 2)  -- no `//`: the script runs in LuaJIT too
  local median = #timings % 2 == 1 and timings[half + 1]
    or (timings[half] + timings[half + 1]) / 2
  io.stderr:write(("penlight %s: %d reloads of %d modules, median %.2f ms, max %.2f ms\n")
    :format(mode, #timings, #names, median, timings[#timings]))
end
os.exit(problems == 0 and 0 or 1)
