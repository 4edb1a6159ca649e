-- hotlua for skynet: set `preload = "examples/skynet/preload.lua"` in skynet's config, and
-- every Lua service gets a reload entry, the "hotlua" protocol, that hotluad.lua calls.
-- Build the C module for the Lua of your skynet (master: scripts/build-module lua55; v1.8.0:
-- scripts/build-module lua54) and put its folder on `lua_cpath` in the config.
local skynet = require "skynet"
local ok, hotlua = pcall(require, "hotlua")
if not ok then
	skynet.error("hotlua: " .. tostring(hotlua))
	return
end

-- skynet.init(f) queues f in a list kept for the coroutine that requires the module, which
-- exists only while `require` or the service's start runs: a module that calls it in its top
-- level raised `table expected, got nil` at every reload. Its init functions ran once when it
-- was loaded, and the locals they set are kept by the reload: during a reload they are skipped.
local skynet_require = require "skynet.require"
local init = skynet_require.init
local function init_unless_reloading(f)
	if hotlua.reloading then
		return
	end
	return init(f)
end
skynet_require.init = init_unless_reloading
skynet.init = init_unless_reloading

local function loaded(names)
	for _, name in ipairs(names) do
		if package.loaded[name] ~= nil then
			return true
		end
	end
	return false
end

-- Each answer is a table of strings and booleans: skynet packs it between services.
local commands = {
	loaded = function(names) return { ok = loaded(names) } end,
	check = function(names)
		local report, message = hotlua.check(names)
		return { ok = report ~= nil, error = message }
	end,
	reload = function(names)
		local report, message = hotlua.reload(names)
		return { ok = report ~= nil, error = message }
	end,
	rollback = function(names)
		for _, name in ipairs(names) do
			local report, message = hotlua.rollback(name)
			if not report then
				return { ok = false, error = message }
			end
		end
		return { ok = true }
	end,
}

skynet.register_protocol {
	name = "hotlua",
	id = 30,
	pack = skynet.pack,
	unpack = skynet.unpack,
	dispatch = function(session, _, command, names)
		local handle = commands[command]
		local answer = handle and handle(names) or { ok = false, error = "unknown command " .. tostring(command) }
		if session ~= 0 then
			skynet.ret(skynet.pack(answer))
		end
	end,
}
