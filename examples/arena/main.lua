-- main.lua: a tiny simulated game server to hot-reload (see README.md).
--
-- The tick loop, the world, the timers and the monster spawner live here; the rules live in
-- combat.lua, the file to edit while this runs:
--
--   hotlua run -w examples/arena/main.lua
--
-- ARENA_TICKS=N stops it after N ticks with exit status 0; without it, it runs until Ctrl-C.

local hotlua = require "hotlua"

-- Find combat.lua next to this file, whatever the current folder.
local here = arg[0]:match("^(.*[/\\])") or ""
package.path = here .. "?.lua;" .. package.path

-- With "merge3", a data field of combat's tables (VERSION, tuning, kinds) that the game never
-- changed takes the value typed in the edited file; the default, "keep", keeps live values.
hotlua.policy("combat", "merge3")
local combat = require "combat"

io.stdout:setvbuf("line") -- one status line at a time, even into a pipe
math.randomseed(42)       -- the same fight at every run

local TICK = 0.1 -- seconds: 10 ticks per second
local max_ticks = tonumber(os.getenv("ARENA_TICKS") or "") -- nil: until Ctrl-C

local world = {
  tick = 0,
  players = { combat.Player.new("ana"), combat.Player.new("bo") },
  monsters = {},
  timers = {}, -- { at = tick, run = closure }
}

local function random_alive(list)
  local alive = {}
  for _, creature in ipairs(list) do
    if creature:alive() then alive[#alive + 1] = creature end
  end
  if #alive > 0 then return alive[math.random(#alive)] end
end

function world:random_player() return random_alive(self.players) end
function world:random_monster() return random_alive(self.monsters) end

-- Calls combat[fname](world, ...) `ticks` ticks from now. The closure looks the function up
-- by name when it fires, so a timer set before a reload runs the reloaded code. (A closure
-- made inside combat.lua at run time and stored here may keep its old code, depending on
-- hotlua's engine: keep long-lived callbacks by name.)
function world:after(ticks, fname, ...)
  local args = table.pack(...)
  self.timers[#self.timers + 1] = {
    at = self.tick + ticks,
    run = function() combat[fname](self, table.unpack(args, 1, args.n)) end,
  }
end

-- Calls combat[fname](world) every `ticks` ticks.
function world:every(ticks, fname)
  local timer = { at = self.tick + ticks }
  function timer.run()
    combat[fname](self)
    timer.at = self.tick + ticks
    self.timers[#self.timers + 1] = timer
  end
  self.timers[#self.timers + 1] = timer
end

local function run_timers()
  local due, pending = {}, {}
  for _, timer in ipairs(world.timers) do
    if timer.at <= world.tick then due[#due + 1] = timer else pending[#pending + 1] = timer end
  end
  world.timers = pending
  for _, timer in ipairs(due) do timer.run() end
end

-- Monster waves, written as a script: a coroutine resumed once per tick.
local spawner = coroutine.wrap(function()
  local kinds = { "rat", "rat", "spider", "troll" }
  local function wait(ticks)
    for _ = 1, ticks do coroutine.yield() end
  end
  while true do
    for _ = 1, 3 do -- a pack of three, half a second apart
      if #world.monsters < 6 then
        world.monsters[#world.monsters + 1] = combat.Monster.new(kinds[math.random(#kinds)])
      end
      wait(5)
    end
    wait(40) -- then four seconds of rest
  end
end)

local function status()
  local hp = {}
  for _, p in ipairs(world.players) do
    hp[#hp + 1] = string.format("%s %.0f/%.0f", p.name, p.hp, p.max_hp)
  end
  local damage, kills = combat.stats()
  print(string.format("tick %d | combat %s | %s | monsters %d | damage %.0f | kills %d",
    world.tick, combat.VERSION, table.concat(hp, ", "), #world.monsters, damage, kills))
end

world:every(20, "regen")
print(string.format("arena: combat %s, %s", combat.VERSION,
  max_ticks and max_ticks .. " ticks" or "Ctrl-C to stop"))

while not max_ticks or world.tick < max_ticks do
  world.tick = world.tick + 1
  spawner()
  for _, p in ipairs(world.players) do
    if p:alive() then p:act(world) end
  end
  for _, m in ipairs(world.monsters) do
    if m:alive() then m:act(world) end
  end
  for i = #world.monsters, 1, -1 do
    if not world.monsters[i]:alive() then table.remove(world.monsters, i) end
  end
  run_timers()
  if world.tick % 10 == 0 then status() end
  hotlua.sleep(TICK) -- reloads changed modules while it waits
end
