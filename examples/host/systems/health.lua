-- Health system: the new hit points of one entity after a tick.
local health = {}

function health.step(hp, tick)
  if tick % 3 == 0 then return math.max(hp - 1, 0) end
  return math.min(hp + 1, 10)
end

return health
