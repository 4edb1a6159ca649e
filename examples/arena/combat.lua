-- combat.lua: the rules of the arena. This is the file to edit while the game runs.
--
-- Start the arena with watching on (see README.md), then edit this file and save. Try:
--   * set VERSION below to "v2": the status line shows "combat v2" within a second;
--   * double the result of combat.damage, or raise `player_power` in combat.tuning: the
--     "damage" counter climbs faster and monsters drop sooner;
--   * give Player:act a heal, or spiders a stronger poison in combat.kinds;
--   * save a syntax error: hotlua prints "reload of combat failed, old code kept" and the game goes
--     on with the previous rules until you save a fixed file.
-- Every player, monster, hp value, timer and the spawner carry on as they were.
--
-- How a reload treats this file (hotlua swaps the code and keeps the state):
--   * every function and method runs its new version, in existing objects too: every
--     monster's metatable is still the one `Monster` table, which now holds the new methods;
--   * locals such as `total_damage` keep their live value: they are the game's running state;
--   * fields the game never changes (VERSION, tuning, kinds) take the values typed in the
--     edited file, because main.lua gives this module the "merge3" data policy;
--   * callbacks that outlive a call name a function of this module instead of holding a
--     closure made here: `world:after(ticks, "poison_tick", ...)` makes main.lua's timer
--     call `combat.poison_tick` when it fires, so it runs whatever code is current then.
--     That is good practice for reloadable code: depending on hotlua's engine, a closure
--     made here at run time and stored outside this module can keep running old code.

local combat = {}

combat.VERSION = "v1"

combat.tuning = {
  player_power = 6,    -- damage of a player's swing, before armor
  player_speed = 0.4,  -- chance that a player swings in a given tick
  crit_chance = 0.1,   -- chance that a hit does double damage
  poison_ticks = 3,    -- how many times a spider's poison bites
  regen = 5,           -- hp every living player gets back every two seconds
  respawn_ticks = 30,  -- how long a fallen player stays down
}

-- What each kind of monster is like; `speed` is its chance to attack in a given tick.
combat.kinds = {
  rat    = { hp = 20, power = 3, armor = 0, speed = 0.5 },
  spider = { hp = 30, power = 2, armor = 1, speed = 0.3, poison = 2 },
  troll  = { hp = 60, power = 6, armor = 3, speed = 0.15 },
}

-- Running totals, shared by the functions below and kept across reloads.
local total_damage = 0
local kills = 0

-- The damage one hit of `attacker` does to `target`.
function combat.damage(attacker, target)
  local dmg = attacker:power() + math.random(0, 2) - target:armor()
  if math.random() < combat.tuning.crit_chance then
    dmg = dmg * 2
  end
  return math.max(dmg, 1)
end

-- Takes `amount` hp from `target`, counts it, and lets the target die.
function combat.hit(world, target, amount)
  if not target:alive() then return end
  amount = math.min(amount, target.hp)
  target.hp = target.hp - amount
  total_damage = total_damage + amount
  if not target:alive() then
    target:die(world)
  end
end

-- Damage dealt and monsters killed since the game started.
function combat.stats()
  return total_damage, kills
end

-- Timer callbacks: main.lua calls them by name, `combat[name](world, ...)`.

function combat.poison_tick(world, target, amount, left)
  combat.hit(world, target, amount)
  if left > 1 then
    world:after(5, "poison_tick", target, amount, left - 1)
  end
end

function combat.regen(world)
  for _, p in ipairs(world.players) do
    if p:alive() then
      p.hp = math.min(p.max_hp, p.hp + combat.tuning.regen)
    end
  end
end

function combat.respawn(world, player)
  player.hp = player.max_hp
end

-- Players: the class table is kept by identity, so existing players get new methods.

local Player = {}
Player.__index = Player
combat.Player = Player

function Player.new(name)
  return setmetatable({ name = name, hp = 100, max_hp = 100 }, Player)
end

function Player:alive() return self.hp > 0 end
function Player:power() return combat.tuning.player_power end
function Player:armor() return 1 end

function Player:act(world)
  if math.random() >= combat.tuning.player_speed then return end
  local target = world:random_monster()
  if target then
    combat.hit(world, target, combat.damage(self, target))
  end
end

function Player:die(world)
  world:after(combat.tuning.respawn_ticks, "respawn", self)
end

-- Monsters.

local Monster = {}
Monster.__index = Monster
combat.Monster = Monster

function Monster.new(kind)
  local hp = combat.kinds[kind].hp
  return setmetatable({ kind = kind, hp = hp, max_hp = hp }, Monster)
end

function Monster:alive() return self.hp > 0 end
function Monster:power() return combat.kinds[self.kind].power end
function Monster:armor() return combat.kinds[self.kind].armor end

function Monster:act(world)
  local kind = combat.kinds[self.kind]
  if math.random() >= kind.speed then return end
  local target = world:random_player()
  if not target then return end
  combat.hit(world, target, combat.damage(self, target))
  if kind.poison and target:alive() then
    world:after(5, "poison_tick", target, kind.poison, combat.tuning.poison_ticks)
  end
end

function Monster:die(world)
  kills = kills + 1
end

return combat
