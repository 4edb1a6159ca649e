-- Scoring system: what each entity earns per tick. Edit and save while the host runs (change
-- the 1 below): the next tick scores with the new rule, and `runs` keeps counting.
local scoring = {}

local runs = 0 -- how many ticks this system has scored: a local that survives reloads

function scoring.points(entity)
  return 1
end

-- Called by the host once per tick with a view of its world; returns the tick's points.
function scoring.run(world)
  runs = runs + 1
  local total = 0
  for _, entity in ipairs(world.entities) do
    if entity.hp > 0 then total = total + scoring.points(entity) end
  end
  return total
end

function scoring.runs()
  return runs
end

return scoring
