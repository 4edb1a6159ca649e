local skynet = require "skynet"
local logic = require "room_logic"
local room = { id = ..., turn = 0 }
skynet.start(function()
	skynet.dispatch("lua", function()
		room.turn = room.turn + 1
		skynet.ret(skynet.pack(logic.describe(room), logic.started() ~= nil))
	end)
end)
