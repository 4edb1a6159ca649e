-- The gameplay rules: edit this file and save while the game runs. hotlua reloads it at the
-- next frame; the balls keep their places, and `bounces` (a local of this file) keeps counting.
--
-- Try: change the colour in rules.color, the speed factor in rules.speed, or the label.
local rules = {}

local bounces = 0 -- wall hits since the game started, across reloads

function rules.label()
  return "rules v1: blue balls, normal speed"
end

function rules.color()
  return 0.3, 0.6, 1.0
end

function rules.speed()
  return 1.0
end

-- Moves every ball and bounces it off the walls of a w x h field.
function rules.step(world, dt, w, h)
  local factor = rules.speed()
  for _, ball in ipairs(world.balls) do
    ball.x = ball.x + ball.vx * dt * factor
    ball.y = ball.y + ball.vy * dt * factor
    if ball.x < ball.r or ball.x > w - ball.r then
      ball.vx = -ball.vx
      ball.x = math.min(math.max(ball.x, ball.r), w - ball.r)
      bounces = bounces + 1
    end
    if ball.y < ball.r or ball.y > h - ball.r then
      ball.vy = -ball.vy
      ball.y = math.min(math.max(ball.y, ball.r), h - ball.r)
      bounces = bounces + 1
    end
  end
end

function rules.bounces()
  return bounces
end

-- A closure the game makes once (main.lua's love.load) and keeps in its world: edit the body
-- and the running game's closure takes the new code too (with engine inplace, the default).
function rules.make_trail()
  return function(ball)
    return "dots"
  end
end

return rules
