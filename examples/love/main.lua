-- A small LÖVE 11 game that hot-reloads its gameplay file, rules.lua, and this file, main.lua,
-- with hotlua's C module.
--
--   scripts/build-module luajit            # once: builds target/module/luajit/hotlua.so
--   love examples/love                     # then edit rules.lua or main.lua and save
--
-- The game owns the world (the balls, the frame count) in this file; rules.lua moves the balls
-- and keeps its own local `bounces`. A reload swaps rules.lua's code and keeps both. Saving
-- this file reloads it too (LÖVE loads it with `require "main"`): love.update and love.draw
-- run their new code, and every local here (`world`, `reloads`) keeps its live value.
--
-- HOTLUA_CPATH overrides where hotlua.so is found. HOTLUA_LOVE_CHECK=N (scripts/check-love)
-- makes the game save a screenshot 1.5 s after its N-th reload, then quit; it quits with an
-- error after 60 seconds without them.

local source = love.filesystem.getSource()
package.cpath = (os.getenv("HOTLUA_CPATH") or source .. "/../../target/module/luajit/?.so")
  .. ";" .. package.cpath
-- LÖVE's own loader finds rules.lua too; package.path is how hotlua's watcher matches a
-- changed file to the module.
package.path = source .. "/?.lua;" .. package.path

local hotlua = require "hotlua"
local rules = require "rules"

local W, H = 640, 400
local checking = tonumber(os.getenv("HOTLUA_LOVE_CHECK") or "")
local world                 -- the game's state: survives every reload
local reloads, last_reload = 0, "none yet: edit rules.lua and save"
local started = love.timer.getTime()
local next_log = 0
local shot_at, shot_name    -- check mode: when to take the screenshot, and its file

local function log(...)
  print(string.format(...))
  io.stdout:flush()
end

local function state()
  return string.format("frame=%d balls=%d bounces=%d world=%s label=%q main=%s trail=%s",
    world.frame, #world.balls, rules.bounces(), world.id, rules.label(), "v1",
    world.trail(world.balls[1]))
end

function love.load()
  love.math.setRandomSeed(7)
  world = { frame = 0, balls = {}, trail = rules.make_trail() }
  world.id = tostring(world):match("0x%x+") or tostring(world)
  for i = 1, 12 do
    local r = love.math.random(8, 18)
    world.balls[i] = {
      r = r,
      x = love.math.random(r, W - r), y = love.math.random(r, H - r),
      vx = love.math.random(-160, 160), vy = love.math.random(-160, 160),
    }
  end
  if checking then love.filesystem.remove("screenshot.png") end
  hotlua.watch(source)
  hotlua.on_reload(function(phase, report)
    if phase == "after" then
      reloads = reloads + 1
      last_reload = string.format("%d functions replaced at frame %d",
        #report.functions_replaced, world.frame)
      log("hotlua: reloaded %s (%s); %s", report.modules[1].name, last_reload, state())
    end
  end)
  log("ready: %s", state())
end

function love.update(dt)
  hotlua.poll()               -- reloads rules.lua here, between frames, if it changed
  world.frame = world.frame + 1
  rules.step(world, math.min(dt, 1 / 30), W, H)
  local now = love.timer.getTime()
  if now >= next_log then
    log("state: %s", state())
    next_log = now + 1
  end

  if checking then
    if reloads >= checking and not shot_at then
      shot_at = now + 1.5
    elseif shot_at and not shot_name and now >= shot_at then
      shot_name = "screenshot.png"
      love.graphics.captureScreenshot(shot_name)
    elseif shot_name and love.filesystem.getInfo(shot_name) then
      log("screenshot: %s/%s", love.filesystem.getSaveDirectory(), shot_name)
      log("done: %s", state())
      love.event.quit(0)
    elseif now - started > 60 then
      log("timeout: no reload after 60 s; %s", state())
      love.event.quit(1)
    end
  end
end

function love.draw()
  love.graphics.clear(0.08, 0.08, 0.12)
  love.graphics.setColor(rules.color())
  for _, ball in ipairs(world.balls) do
    love.graphics.circle("fill", ball.x, ball.y, ball.r)
  end
  love.graphics.setColor(1, 1, 1)
  love.graphics.print(table.concat({
    rules.label(),
    string.format("frame %d   wall bounces %d   balls %d", world.frame, rules.bounces(), #world.balls),
    string.format("reloads %d: %s", reloads, last_reload),
  }, "\n"), 10, 10)
end
