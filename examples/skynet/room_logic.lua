-- A module every room loads; it calls skynet.init in its top level, as skynet's cluster,
-- sharedata and multicast do.
local skynet = require "skynet"
local M = {}
local started
skynet.init(function() started = skynet.now() end)
function M.describe(room) return "v1 room " .. room.id .. " turn " .. room.turn end
function M.started() return started end
return M
