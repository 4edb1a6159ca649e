-- Starts the debug console, hotluad and `rooms` room services (config).
local skynet = require "skynet"
skynet.start(function()
	skynet.newservice("debug_console", tonumber(skynet.getenv "debug_port" or 18000))
	skynet.uniqueservice "hotluad"
	local rooms = {}
	for i = 1, tonumber(skynet.getenv "rooms" or 50) do
		rooms[i] = skynet.newservice("room", i)
	end
	skynet.error(string.format("hotlua example: %d rooms ready", #rooms))
end)
