--- hotlua in Neovim: reload Lua modules in the running editor, state kept, through the hotlua
--- C module (`require "hotlua"`, built by `scripts/build-module luajit`).
---
--- Which modules a file is the source of comes from the modules themselves: the file their
--- functions were compiled from (`debug.getinfo(fn).source`) when it is a file `require` can
--- find under the module's name, else where Neovim's runtimepath loader (`lua/<mod>.lua`,
--- `lua/<mod>/init.lua`) or `package.path` finds the name now.
local M = {}

local uv = vim.loop
local levels = vim.log.levels

local options = { reload_on_save = false }

-- When this file was loaded (plugin/hotlua.lua loads it at startup). A module first looked at
-- later whose file was modified after this was edited in this session: it counts as changed.
local started_sec, started_usec = uv.gettimeofday()

-- Per module name, the file it runs and that file's stamp as of its last reload, or as of the
-- first time it was found unchanged.
local known = {}

-- The hotlua build of the repository this folder ships in (nvim/ next to target/), so that
-- running `scripts/build-module luajit` in a plugin manager's checkout is the whole install.
local function repository_build_folder()
  local this_file = debug.getinfo(1, "S").source:sub(2)
  return vim.fn.fnamemodify(this_file, ":p:h:h:h:h") .. "/target/module/luajit"
end

-- `message` without the position of Neovim's runtimepath loader: its `error(err)` puts
-- "vim/_init_packages.lua:24: " before the file's own "/path/file.lua:line: message".
local function without_loader_position(message)
  return (tostring(message):gsub("vim/[%w_./]+%.lua:%d+: /", "/"))
end

--- The hotlua C module's table, or nil and one line saying why it cannot be loaded. Found by
--- `require` (`package.cpath`, or `lua/hotlua.so` in any 'runtimepath' folder), else in the
--- repository's own build.
function M.engine()
  local built = repository_build_folder()
  if uv.fs_stat(built .. "/hotlua.so") and not package.cpath:find(built, 1, true) then
    -- Last: a hotlua.so the user put on package.cpath or the runtimepath comes first.
    package.cpath = package.cpath .. ";" .. built .. "/?.so"
  end
  local ok, result = pcall(require, "hotlua")
  if ok and type(result) == "table" and result.reload then
    return result
  end
  if not ok and tostring(result):find("^module 'hotlua' not found") then
    return nil,
      "hotlua: hotlua.so not found on package.cpath, as lua/hotlua.so in 'runtimepath' or in "
        .. built
        .. ": build it with scripts/build-module luajit"
  end
  local why = ok and ("require 'hotlua' gave a " .. type(result) .. ", not hotlua's table")
    or without_loader_position(result)
  return nil, "hotlua: cannot load hotlua.so: " .. why:gsub("%s+", " ")
end

local function resolved(path)
  return path and uv.fs_realpath(path)
end

-- The file's identity for "did it change": editors that save by renaming change the inode,
-- others the modification time; the size catches two saves within one clock tick.
local function stamp(file)
  local stat = uv.fs_stat(file)
  return stat
    and string.format("%d:%d.%09d:%d", stat.ino, stat.mtime.sec, stat.mtime.nsec, stat.size)
end

-- True when `source` (a chunk name without its "@") is a file `require` finds under the name
-- whose slashed form is `base`: a runtimepath `lua/` file, or a `package.path` template.
local function is_source_of(source, name, base)
  for _, tail in ipairs({ "/lua/" .. base .. ".lua", "/lua/" .. base .. "/init.lua" }) do
    if source:sub(-#tail) == tail then
      return true
    end
  end
  for template in package.path:gmatch("[^;]+") do
    if template:gsub("%?", base) == source or template:gsub("%?", name) == source then
      return true
    end
  end
  return false
end

local function compiled_from(fn, name, base)
  local source = debug.getinfo(fn, "S").source
  if source:sub(1, 1) == "@" and is_source_of(source:sub(2), name, base) then
    return source:sub(2)
  end
end

--- The file module `name` (live value `value`) was loaded from, resolved, or nil when it has
--- none (the standard library, C modules, modules Neovim embeds).
function M.module_file(name, value)
  local base = name:gsub("%.", "/")
  local file
  if type(value) == "function" then
    file = compiled_from(value, name, base)
  elseif type(value) == "table" then
    for _, field in pairs(value) do
      file = type(field) == "function" and compiled_from(field, name, base)
      if file then
        break
      end
    end
  end
  if not file then
    -- A data-only module, or one whose functions all come from elsewhere: where `require`
    -- would find it now.
    local api = vim.api
    file = api.nvim_get_runtime_file("lua/" .. base .. ".lua", false)[1]
      or api.nvim_get_runtime_file("lua/" .. base .. "/init.lua", false)[1]
      or package.searchpath(name, package.path)
  end
  return resolved(file)
end

--- The names of the loaded modules whose source is `file`, sorted.
function M.modules_of_file(file)
  file = resolved(file)
  local names = {}
  if not file then
    return names
  end
  for name, value in pairs(package.loaded) do
    local base = type(name) == "string" and name:gsub("%.", "/")
    -- Only names the file's path can spell are worth resolving.
    local spelled = base
      and (file:sub(-#base - 4) == base .. ".lua" or file:sub(-#base - 9) == base .. "/init.lua")
    if spelled and M.module_file(name, value) == file then
      names[#names + 1] = name
    end
  end
  table.sort(names)
  return names
end

local function loaded_modules_with_files()
  local files = {}
  for name, value in pairs(package.loaded) do
    if type(name) == "string" and name ~= "hotlua" then
      files[name] = M.module_file(name, value)
    end
  end
  return files
end

local function modified_this_session(file)
  local mtime = uv.fs_stat(file).mtime
  return mtime.sec > started_sec
    or (mtime.sec == started_sec and math.floor(mtime.nsec / 1000) >= started_usec)
end

--- The names of the loaded modules whose file changed since they were last loaded or reloaded
--- (as far as this session can tell), sorted.
function M.changed_modules()
  local names = {}
  for name, file in pairs(loaded_modules_with_files()) do
    local now = stamp(file)
    local last = known[name]
    if now and last and (last.file ~= file or last.stamp ~= now) then
      names[#names + 1] = name
    elseif now and not last then
      if modified_this_session(file) then
        names[#names + 1] = name
      else
        known[name] = { file = file, stamp = now }
      end
    end
  end
  table.sort(names)
  return names
end

--- Completion for `:HotluaReload`: the loaded modules that have a file, starting with `lead`.
function M.complete(lead)
  local names = {}
  for name in pairs(loaded_modules_with_files()) do
    if name:sub(1, #lead) == lead then
      names[#names + 1] = name
    end
  end
  table.sort(names)
  return names
end

local function summary(names, report)
  local line = "hotlua: reloaded " .. table.concat(names, ", ")
  if type(report) ~= "table" then
    return line
  end
  local switched = 0
  for _, count in pairs(report.references) do
    switched = switched + count
  end
  line = string.format(
    "%s in %.1f ms: %d functions replaced, %d added, %d references switched",
    line,
    report.timings.total_ms,
    #report.functions_replaced,
    #report.functions_added,
    switched
  )
  if report.closures_left_old > 0 then
    line = line
      .. string.format(
        "; %d closures keep their old code (:help hotlua-callbacks)",
        report.closures_left_old
      )
  end
  return line
end

-- hotlua's message, with the files named where it does not.
local function failure(names, files, message)
  message = without_loader_position(message)
  local unnamed = {}
  for _, file in ipairs(files) do
    if not message:find(file, 1, true) then
      unnamed[#unnamed + 1] = file
    end
  end
  local where = #unnamed > 0 and " [" .. table.concat(unnamed, ", ") .. "]" or ""
  return "hotlua: "
    .. table.concat(names, ", ")
    .. " not reloaded, the old code keeps running: "
    .. message
    .. where
end

--- Reloads the modules `names` (a name or a list) as one all-or-nothing step, or, when nil,
--- every loaded module whose file changed. Says what happened in one vim.notify line; returns
--- hotlua's report, or nil and the message.
function M.reload(names)
  local hotlua, why = M.engine()
  if not hotlua then
    vim.notify(why, levels.ERROR)
    return nil, why
  end
  if type(names) == "string" then
    names = { names }
  end
  names = names or M.changed_modules()
  if #names == 0 then
    vim.notify("hotlua: no loaded module changed since it was loaded", levels.INFO)
    return nil, "nothing changed"
  end
  local files = {}
  for _, name in ipairs(names) do
    files[#files + 1] = M.module_file(name, package.loaded[name])
  end
  local report, message = hotlua.reload(names)
  if not report then
    message = failure(names, files, message)
    vim.notify(message, levels.ERROR)
    return nil, message
  end
  for _, name in ipairs(names) do
    local file = M.module_file(name, package.loaded[name])
    known[name] = file and { file = file, stamp = stamp(file) } or nil
  end
  vim.notify(summary(names, report), levels.INFO)
  return report
end

--- True while a module's new top level runs inside a reload: a top level that registers
--- callbacks skips that then. False as well when hotlua.so is not loaded (nothing reloads).
function M.reloading()
  local hotlua = package.loaded.hotlua
  return type(hotlua) == "table" and hotlua.reloading == true
end

--- Reloads the loaded modules whose source is `file`; does nothing when there are none.
function M.reload_file(file)
  local names = M.modules_of_file(file)
  if #names > 0 then
    return M.reload(names)
  end
end

--- Defines `:HotluaReload [module ...]`: the modules named, as one step, or every loaded
--- module whose file changed; completes loaded module names.
function M.create_command()
  vim.api.nvim_create_user_command("HotluaReload", function(command)
    M.reload(#command.fargs > 0 and command.fargs or nil)
  end, {
    nargs = "*",
    complete = M.complete,
    force = true,
    desc = "hotlua: reload Lua modules (by name, or every loaded module whose file changed)",
  })
end

--- Options: `reload_on_save` (default false) reloads, after each `:write` of a `*.lua` file,
--- the loaded modules whose source it is. Defines `:HotluaReload` too, for plugin managers
--- that put nvim/ on the runtimepath after plugin/ files were sourced. Loads hotlua.so now, so
--- that a missing build is reported at startup and modules required later have their
--- load-time values recorded (the `merge3` data policy compares with them).
function M.setup(opts)
  options = vim.tbl_extend("force", options, opts or {})
  M.create_command()
  local group = vim.api.nvim_create_augroup("hotlua", { clear = true })
  if options.reload_on_save then
    vim.api.nvim_create_autocmd("BufWritePost", {
      group = group,
      pattern = "*.lua",
      callback = function(event)
        M.reload_file(event.match)
      end,
      desc = "hotlua: reload the loaded modules whose source this file is",
    })
  end
  local hotlua, why = M.engine()
  if not hotlua then
    vim.notify(why, levels.ERROR)
  end
end

return M
