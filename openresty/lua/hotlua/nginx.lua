--- hotlua.nginx: reload Lua modules in every worker of nginx (OpenResty, or nginx with
-- lua-nginx-module).
--
-- Each nginx worker is a process with its own LuaJIT VM, so a reload has to happen in each of
-- them. An admin request bumps a version number in a lua_shared_dict; a timer in every worker
-- sees it move and reloads the requested modules with hotlua. A timer callback that does not
-- yield runs alone in its worker: no request's Lua code runs during the reload. Each worker
-- logs the outcome to the error log and publishes it in the dict, where the status answer
-- reads it.
--
--   lua_shared_dict hotlua 1m;
--   init_worker_by_lua_block { require("hotlua.nginx").start{ token = os.getenv("HOTLUA_TOKEN") } }
--   location /hotlua/ { content_by_lua_block { require("hotlua.nginx").admin() } }
--
-- docs/hosts.md ("OpenResty and nginx") has the whole configuration.

local hotlua = require "hotlua"
local bit = require "bit"

local M = {}

local DEFAULTS = {
  dict = "hotlua", -- the lua_shared_dict the workers share
  interval = 0.5, -- seconds between two looks at the version in each worker
  wait = 10, -- seconds a reload request waits for every worker to answer
  allow_remote = false, -- serve admin requests from other than loopback and unix sockets
}

-- The fields of a worker's record, in the order the status answer shows them.
local RECORD_FIELDS = {
  "id", "pid", "version", "ok", "result", "error", "module", "file", "line", "time",
  "reloads", "failures",
}

-- start()'s options with the defaults filled in; nil until start() ran in this worker.
local settings
-- The last requested version this worker has handled; the dict's "version" is the latest.
local applied = 0
-- What this worker did last, as the status answer shows it.
local record

-- JSON for the few shapes this module writes: strings, numbers, booleans, nil, and objects
-- whose field order it knows.
local function escape(char)
  return string.format("\\u%04x", char:byte())
end

local function json_value(value)
  if type(value) == "string" then
    return '"' .. value:gsub('[%c"\\]', escape) .. '"'
  elseif value == nil then
    return "null"
  end
  return tostring(value)
end

local function json_object(fields, values)
  local parts = {}
  for i, name in ipairs(fields) do
    parts[i] = '"' .. name .. '":' .. json_value(values[name])
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

local function json_strings(list)
  local parts = {}
  for i, value in ipairs(list) do
    parts[i] = json_value(value)
  end
  return "[" .. table.concat(parts, ",") .. "]"
end

local function shared()
  return ngx.shared[settings.dict]
end

-- Stores a key without evicting others: an evicted request would stall every worker.
local function store(key, value)
  local ok, err = shared():safe_set(key, value)
  if not ok then
    ngx.log(ngx.ERR, "hotlua: lua_shared_dict ", settings.dict, " cannot store ", key, ": ", err,
      " (make it larger)")
  end
  return ok, err
end

local function publish()
  record.version = applied
  store("worker:" .. record.id, json_object(RECORD_FIELDS, record))
  store("ok:" .. record.id, record.ok)
  store("applied:" .. record.id, applied)
end

-- The modules requested by the versions after `applied` up to `latest`, each once, in the
-- order they were asked for; nil while a request's version is bumped but its modules are not
-- stored yet (the next tick takes it).
local function requested(latest)
  local names, seen = {}, {}
  for version = applied + 1, latest do
    local list = shared():get("modules:" .. version)
    if list == nil then
      return nil
    end
    for name in list:gmatch("%S+") do
      if not seen[name] then
        seen[name] = true
        names[#names + 1] = name
      end
    end
  end
  return names
end

local function reload(names)
  record.time = ngx.now()
  record.result, record.error, record.module, record.file, record.line = nil, nil, nil, nil, nil
  local loaded = {}
  for _, name in ipairs(names) do
    if package.loaded[name] ~= nil then
      loaded[#loaded + 1] = name
    end
  end
  if #loaded == 0 then
    -- The first require in this worker will load the file as it is now.
    record.ok = true
    record.result = "not loaded in this worker: " .. table.concat(names, ", ")
    return
  end
  local called, report, message, where = pcall(hotlua.reload, loaded)
  if called and report then
    record.ok = true
    record.reloads = record.reloads + 1
    -- `true` instead of a report: reloaded, but no memory was left to describe it.
    record.result = report == true and "reloaded " .. table.concat(loaded, ", ") or report.summary
    ngx.log(ngx.NOTICE, "hotlua: version ", applied, ": ", record.result)
    return
  end
  where = called and where or {}
  record.ok = false
  record.failures = record.failures + 1
  record.error = called and message or tostring(report)
  record.module, record.file, record.line = where.module, where.file, where.line
  ngx.log(ngx.ERR, "hotlua: version ", applied, ": reload failed, old code kept: ", record.error)
end

-- Runs every `interval` seconds in each worker. It never yields, so no other Lua code of
-- this worker runs while it reloads.
local function tick(premature)
  if premature then
    return -- the worker is exiting (nginx stops or rereads its configuration)
  end
  local latest = shared():get("version") or 0
  if latest <= applied then
    return
  end
  local names = requested(latest)
  if names then
    applied = latest
    reload(names)
    publish()
  end
end

--- Starts this worker's timer; call it from init_worker_by_lua. Options (all but `token`
-- optional): `token`, the secret admin requests must send as `Authorization: Bearer TOKEN`;
-- `dict`, `interval`, `wait`, `allow_remote` (see DEFAULTS).
function M.start(options)
  options = options or {}
  if type(options.token) ~= "string" or options.token == "" then
    error("hotlua.nginx: start{ token = ... } needs a non-empty token string: the admin "
      .. "handler refuses every request without one", 2)
  end
  for name in pairs(options) do
    if DEFAULTS[name] == nil and name ~= "token" then
      error("hotlua.nginx: unknown option " .. tostring(name), 2)
    end
  end
  local chosen = {}
  for name, default in pairs(DEFAULTS) do
    local value = options[name]
    if value == nil then
      value = default
    end
    if type(value) ~= type(default) then
      error("hotlua.nginx: option " .. name .. " must be a " .. type(default), 2)
    end
    chosen[name] = value
  end
  if ngx.shared[chosen.dict] == nil then
    error("hotlua.nginx: no lua_shared_dict named " .. chosen.dict
      .. " (add `lua_shared_dict " .. chosen.dict .. " 1m;` to the http block)", 2)
  end
  chosen.token = options.token
  settings = chosen
  record = { id = ngx.worker.id(), pid = ngx.worker.pid(), ok = true, result = "started",
    time = ngx.now(), reloads = 0, failures = 0 }
  publish()
  local ok, err = ngx.timer.every(settings.interval, tick)
  if not ok then
    error("hotlua.nginx: cannot start the timer: " .. err, 2)
  end
end

local function respond(status, body)
  ngx.status = status
  ngx.header.content_type = "application/json"
  ngx.say(body)
  return ngx.exit(status)
end

local function refuse(status, reason)
  ngx.log(ngx.WARN, "hotlua: refused ", ngx.req.get_method(), " ", ngx.var.uri, " from ",
    ngx.var.remote_addr, ": ", reason)
  return respond(status, json_object({ "ok", "error" }, { ok = false, error = reason }))
end

local function loopback(address)
  return address == "::1" or address:match("^127%.") ~= nil or address:sub(1, 5) == "unix:"
end

-- Compares every byte whatever the first difference, so the time taken tells nothing.
local function token_matches(header)
  local given = header and header:match("^Bearer%s+(%S+)%s*$")
  local token = settings.token
  if given == nil or #given ~= #token then
    return false
  end
  local difference = 0
  for i = 1, #token do
    difference = bit.bor(difference, bit.bxor(given:byte(i), token:byte(i)))
  end
  return difference == 0
end

-- Every worker's record, in worker id order.
local function workers()
  local list = {}
  for id = 0, ngx.worker.count() - 1 do
    list[#list + 1] = shared():get("worker:" .. id) or json_object({ "id", "ok", "error" },
      { id = id, ok = false, error = "hotlua.nginx has not started in this worker" })
  end
  return "[" .. table.concat(list, ",") .. "]"
end

-- How the workers stand against `version`: the number still behind it and the number that
-- failed it.
local function progress(version)
  local behind, failed = 0, 0
  for id = 0, ngx.worker.count() - 1 do
    if (shared():get("applied:" .. id) or 0) < version then
      behind = behind + 1
    elseif shared():get("ok:" .. id) == false then
      failed = failed + 1
    end
  end
  return behind, failed
end

local function status()
  return respond(ngx.HTTP_OK, '{"version":' .. (shared():get("version") or 0)
    .. ',"workers":' .. workers() .. "}")
end

local function reload_request()
  local args = ngx.req.get_uri_args()
  local names = args.module
  if type(names) == "string" then
    names = { names }
  end
  if type(names) ~= "table" then
    return refuse(ngx.HTTP_BAD_REQUEST, "name the modules to reload: ?module=NAME (repeatable)")
  end
  for _, name in ipairs(names) do
    if type(name) ~= "string" or not name:match("^[%w_][%w_.%-]*$") then
      return refuse(ngx.HTTP_BAD_REQUEST, "not a module name: " .. tostring(name))
    end
  end
  local wait = tonumber(args.wait) or settings.wait
  -- The version is bumped first and its modules stored right after; a worker that sees the
  -- version before its modules waits for its next tick.
  local version = shared():incr("version", 1, 0)
  local stored, err = store("modules:" .. version, table.concat(names, " "))
  if not stored then
    shared():set("modules:" .. version, "") -- never leave the workers waiting for it
    return refuse(ngx.HTTP_INSUFFICIENT_STORAGE or 507, "lua_shared_dict " .. settings.dict
      .. " is full: " .. err)
  end
  ngx.log(ngx.NOTICE, "hotlua: version ", version, " requested by ", ngx.var.remote_addr, ": ",
    table.concat(names, ", "))
  local deadline = ngx.now() + wait
  local behind, failed = progress(version)
  while behind > 0 and ngx.now() < deadline do
    ngx.sleep(0.02)
    behind, failed = progress(version)
  end
  local code, error_text = ngx.HTTP_OK, nil
  if behind > 0 then
    code = wait > 0 and ngx.HTTP_GATEWAY_TIMEOUT or ngx.HTTP_ACCEPTED
    error_text = behind .. " worker(s) did not reach version " .. version .. " within "
      .. wait .. " s"
  elseif failed > 0 then
    code = 422
    error_text = failed .. " worker(s) failed the reload and run the old code: see their error"
  end
  return respond(code, '{"ok":' .. tostring(code == ngx.HTTP_OK) .. ',"version":' .. version
    .. ',"modules":' .. json_strings(names) .. ',"error":' .. json_value(error_text)
    .. ',"workers":' .. workers() .. "}")
end

--- The admin handler: content_by_lua_block { require("hotlua.nginx").admin() } in a location
-- ending in /. `POST .../reload?module=NAME` (repeatable; `&wait=SECONDS`, 0 to not wait) and
-- `GET .../status`, both with `Authorization: Bearer TOKEN`.
function M.admin()
  if settings == nil then
    return respond(ngx.HTTP_SERVICE_UNAVAILABLE, json_object({ "ok", "error" }, {
      ok = false,
      error = "hotlua.nginx.start() did not run in this worker (init_worker_by_lua_block): "
        .. "see the error log",
    }))
  end
  if not settings.allow_remote and not loopback(ngx.var.remote_addr) then
    return refuse(ngx.HTTP_FORBIDDEN,
      "not a loopback address (start{ allow_remote = true } allows it)")
  end
  if not token_matches(ngx.var.http_authorization) then
    return refuse(ngx.HTTP_UNAUTHORIZED, "wrong or missing token")
  end
  local action = ngx.var.uri:match("([^/]+)/*$")
  local method = ngx.req.get_method()
  if action == "status" then
    return method == "GET" and status() or refuse(ngx.HTTP_NOT_ALLOWED, "status takes GET")
  elseif action == "reload" then
    return method == "POST" and reload_request()
      or refuse(ngx.HTTP_NOT_ALLOWED, "reload takes POST")
  end
  return refuse(ngx.HTTP_NOT_FOUND, "unknown action: the admin answers .../status and .../reload")
end

return M
