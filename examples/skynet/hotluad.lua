-- Reloads modules in every Lua service that loaded them: checks everywhere, then reloads
-- everywhere, rolls back where it applied if any reload failed, then clears skynet's code
-- cache so services started afterwards get the new code.
--
--   debug console:   call .hotluad "reload", "room_logic"      (or "check")
--   from outside:    examples/skynet/hotlua-skynet reload room_logic   (config: hotlua_control)
--
-- Every attempt is one JSON line in the file `hotlua_audit` names (config), if set.
local skynet = require "skynet"
local socket = require "skynet.socket"

-- The "hotlua" protocol comes from preload.lua, which runs in this service too.

local function json(value)
	local kind = type(value)
	if kind == "string" then
		return '"' .. value:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
	elseif kind == "table" then
		if #value > 0 or next(value) == nil then
			local items = {}
			for i, item in ipairs(value) do items[i] = json(item) end
			return "[" .. table.concat(items, ",") .. "]"
		end
		local keys, items = {}, {}
		for key in pairs(value) do keys[#keys + 1] = key end
		table.sort(keys)
		for _, key in ipairs(keys) do items[#items + 1] = json(key) .. ":" .. json(value[key]) end
		return "{" .. table.concat(items, ",") .. "}"
	end
	return tostring(value)
end

local function audit(result)
	local file = skynet.getenv "hotlua_audit"
	if file then
		local out = io.open(file, "a")
		if out then
			out:write(json(result), "\n")
			out:close()
		end
	end
end

-- Every Lua service but this one.
local function lua_services()
	local services = {}
	for address, command in pairs(skynet.call(".launcher", "lua", "LIST")) do
		local handle = tonumber(address:sub(2), 16)
		if command:match("^snlua ") and handle ~= skynet.self() then
			services[#services + 1] = handle
		end
	end
	return services
end

-- Sends `command` to every service at once; the answers by service.
local function ask_all(services, command, names)
	local answers, waiting, me = {}, #services, coroutine.running()
	if waiting == 0 then return answers end
	for _, service in ipairs(services) do
		skynet.fork(function()
			local ok, answer = pcall(skynet.call, service, "hotlua", command, names)
			answers[service] = ok and answer or { ok = false, error = tostring(answer) }
			waiting = waiting - 1
			if waiting == 0 then skynet.wakeup(me) end
		end)
	end
	skynet.wait(me)
	return answers
end

local function first_failure(answers)
	for service, answer in pairs(answers) do
		if not answer.ok then
			return string.format(":%08x: %s", service, tostring(answer.error))
		end
	end
end

local function run(command, names)
	local started = skynet.hpc()
	local result = { command = command, modules = names }
	local loaded = {}
	for service, answer in pairs(ask_all(lua_services(), "loaded", names)) do
		if answer.ok then loaded[#loaded + 1] = service end
	end
	result.services = #loaded
	local failure = first_failure(ask_all(loaded, "check", names))
	if not failure and command == "reload" then
		local answers = ask_all(loaded, "reload", names)
		failure = first_failure(answers)
		if failure then
			local applied = {}
			for service, answer in pairs(answers) do
				if answer.ok then applied[#applied + 1] = service end
			end
			ask_all(applied, "rollback", names)
			result.rolled_back = #applied
		else
			skynet.cache.clear()
		end
	end
	result.ok = failure == nil
	result.error = failure
	result.ms = (skynet.hpc() - started) / 1e6
	audit(result)
	return result
end

local function serve(fd)
	socket.start(fd)
	local line = socket.readline(fd)
	local command, rest = (line or ""):match("^(%a+)%s+(.+)$")
	local result
	if command == "reload" or command == "check" then
		local names = {}
		for name in rest:gmatch("%S+") do names[#names + 1] = name end
		result = run(command, names)
	else
		result = { ok = false, error = "expected `reload NAME...` or `check NAME...`" }
	end
	socket.write(fd, json(result) .. "\n")
	socket.close(fd)
end

skynet.start(function()
	skynet.dispatch("lua", function(_, _, command, ...)
		skynet.ret(skynet.pack(run(command, { ... })))
	end)
	require("skynet.manager").register ".hotluad"
	local control = skynet.getenv "hotlua_control"
	if control then
		local host, port = control:match("^(.*):(%d+)$")
		local listener = socket.listen(host, tonumber(port))
		socket.start(listener, function(fd) skynet.fork(serve, fd) end)
	end
end)
