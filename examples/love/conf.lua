function love.conf(t)
  t.identity = "hotlua-love"   -- the save folder, where screenshots go
  t.window.title = "hotlua in LÖVE: edit rules.lua while it runs"
  t.window.width = 640
  t.window.height = 400
  t.modules.joystick = false
  t.modules.physics = false
end
