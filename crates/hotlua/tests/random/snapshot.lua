-- snapshot({ {name, value}, ... }) -> string: one line per value reachable from the roots,
-- by path. Tables are listed once (then `ref <first path>`), keys in a fixed order, the
-- metatable last (`<path>.#mt`); functions by what they return when called with no
-- arguments, then their upvalues sorted by name (`<path>.^<name>`). Recursion is fine here:
-- generated modules are a few levels deep.
return function(roots)
  local lines, seen = {}, {}
  local function key_order(a, b)
    local ta, tb = type(a), type(b)
    if ta ~= tb then return ta < tb end
    if ta == "number" or ta == "string" then return a < b end
    return tostring(a) < tostring(b)
  end
  local visit
  local function visit_table(path, t)
    lines[#lines + 1] = path .. " = table"
    local keys = {}
    for k in next, t do keys[#keys + 1] = k end
    table.sort(keys, key_order)
    for _, k in ipairs(keys) do visit(path .. "." .. tostring(k), rawget(t, k)) end
    local mt = debug.getmetatable(t)
    if mt ~= nil then visit(path .. ".#mt", mt) end
  end
  local function visit_function(path, f)
    local ok, tag = pcall(f)
    lines[#lines + 1] = path .. " = fn " .. tostring(tag) .. (ok and "" or " (error)")
    local upvalues = {}
    for i = 1, math.huge do
      local name, value = debug.getupvalue(f, i)
      if name == nil then break end
      upvalues[#upvalues + 1] = { name = name, value = value }
    end
    table.sort(upvalues, function(a, b) return a.name < b.name end)
    for _, up in ipairs(upvalues) do visit(path .. ".^" .. up.name, up.value) end
  end
  function visit(path, v)
    local t = type(v)
    if v == _G then
      lines[#lines + 1] = path .. " = _G"
    elseif (t == "table" or t == "function") and seen[v] then
      lines[#lines + 1] = path .. " = ref " .. seen[v]
    elseif t == "table" then
      seen[v] = path
      visit_table(path, v)
    elseif t == "function" then
      seen[v] = path
      visit_function(path, v)
    elseif t == "thread" then
      lines[#lines + 1] = path .. " = thread " .. coroutine.status(v)
    elseif t == "number" and v % 1 == 0 then -- the generator makes integers only (5.1 has no math.type)
      lines[#lines + 1] = path .. " = int " .. v
    elseif t == "string" then
      lines[#lines + 1] = path .. " = str " .. v
    else
      lines[#lines + 1] = path .. " = " .. t .. " " .. tostring(v)
    end
  end
  for _, root in ipairs(roots) do visit(root[1], root[2]) end
  return table.concat(lines, "\n")
end
