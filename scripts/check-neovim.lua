-- Run by scripts/check-neovim inside `nvim --headless --clean`, with nvim/ on the runtimepath
-- (plugin/hotlua.lua sourced at startup, as for a user). HOTLUA_CHECK_SCENARIO says what to
-- check: "reload" (a test plugin edited and reloaded while its callbacks keep running),
-- "missing" (no hotlua.so to load) or "late" (nvim/ added to the runtimepath after startup).
-- Quits with status 1 on the first failed expectation.
local work = assert(os.getenv("HOTLUA_CHECK_WORK"), "HOTLUA_CHECK_WORK not set")
local scenario = os.getenv("HOTLUA_CHECK_SCENARIO")
local uv = vim.loop

-- Every notification, in order: what the plugin tells the user is part of what is checked.
local notes = {}
vim.notify = function(message, level)
  notes[#notes + 1] = { message = message, level = level }
  io.stdout:write("notify: ", message, "\n")
end

local function expect(condition, what, ...)
  if not condition then
    error(string.format(what, ...), 0)
  end
end

local function expect_equal(actual, wanted, what)
  expect(actual == wanted, "%s: %q, expected %q", what, tostring(actual), tostring(wanted))
end

local function last_note()
  return notes[#notes] or { message = "(no notification)" }
end

-- Runs `action`, which must notify exactly once, at `level`, with a message matching `pattern`
-- (a Lua pattern; nil: any).
local function expect_note(level, pattern, action)
  local before = #notes
  action()
  expect(#notes == before + 1, "expected one notification, got %d: %s", #notes - before,
    vim.inspect(vim.list_slice(notes, before + 1)))
  local note = last_note()
  expect(not pattern or note.message:find(pattern), "expected a notification matching %q, got %q",
    pattern, note.message)
  expect(note.level == level, "notification %q has level %s, not %s", note.message,
    tostring(note.level), level)
  return note.message
end

local function write_file(path, text)
  vim.fn.mkdir(vim.fn.fnamemodify(path, ":h"), "p")
  local file = assert(io.open(path, "w"))
  file:write(text)
  file:close()
end

-- Saves `text` into `path` the way a user does: in a buffer, with :write (BufWritePost runs).
local function save_in_buffer(path, text)
  vim.cmd("silent edit " .. vim.fn.fnameescape(path))
  vim.api.nvim_buf_set_lines(0, 0, -1, false, vim.split(text, "\n", { plain = true }))
  vim.cmd("silent write")
end

-- The test plugin's main module. Most callbacks it registers are named functions of the module
-- table (any engine switches the stored references to the new versions); an inline keymap
-- callback and an inline autocmd callback are closures made once, by M.start, which only engine
-- `inplace` gives the new code. `@V@` is the version; each version differs in length from the
-- one before, so that a change is seen even when two saves fall within one tick of the file
-- system's clock.
local plugin_template = [[
local text = require("hotplug.text")
local M = {}
-- What a reload must keep: how often each callback ran.
local state = { keys = 0, events = 0, commands = 0, ticks = 0, last_tick = "", inline = 0 }
local timer
-- Whether this top level runs inside a reload: a top level that registers callbacks skips it.
vim.g.hotplug_reloading = require("hotlua.nvim").reloading()

function M.on_key()
  state.keys = state.keys + 1
  vim.g.hotplug_key = text.line("@V@", "key", state.keys)
end

function M.on_event()
  state.events = state.events + 1
  vim.g.hotplug_event = text.line("@V@", "event", state.events)
end

function M.on_command(command)
  state.commands = state.commands + 1
  vim.g.hotplug_command = text.line("@V@", "command " .. command.args, state.commands)
end

-- Runs in the timer's libuv callback, where the vim API is off limits: the line stays in state.
function M.on_tick()
  state.ticks = state.ticks + 1
  state.last_tick = "@V@ tick " .. state.ticks
end

function M.state()
  return state
end

function M.start()
  vim.keymap.set("n", "<F8>", function()
    state.inline = state.inline + 1
    vim.g.hotplug_inline_key = text.line("@V@", "inline key", state.inline)
  end)
  vim.api.nvim_create_autocmd("User", {
    pattern = "HotplugInline",
    callback = function()
      vim.g.hotplug_inline_event = text.line("@V@", "inline event", state.inline)
    end,
  })
  vim.keymap.set("n", "<F7>", M.on_key)
  vim.api.nvim_create_autocmd("User", { pattern = "HotplugPing", callback = M.on_event })
  vim.api.nvim_create_user_command("HotplugCmd", M.on_command, { nargs = 1 })
  timer = vim.loop.new_timer()
  timer:start(0, 5, M.on_tick)
end

function M.stop()
  timer:stop()
  timer:close()
end

return M
]]

local function plugin_source(version)
  return (plugin_template:gsub("@V@", version .. ("+"):rep(#version)))
end

local function text_source(suffix)
  return string.format(
    [[
local M = {}
function M.line(version, what, count)
  return version .. " " .. what .. " " .. count .. %q
end
return M
]],
    suffix
  )
end

local plug_root = work .. "/plug"
local init_file = plug_root .. "/lua/hotplug/init.lua"
local text_file = plug_root .. "/lua/hotplug/text.lua"

-- Runs the keymap, the autocmd, the user command and the timer, which must all run `version`'s
-- code, each for the `count`th time (the state survived every reload), with hotplug.text's
-- `suffix`.
local function exercise(plug, version, count, suffix)
  local tag = version .. ("+"):rep(#version)
  local function line(what)
    return tag .. " " .. what .. " " .. count .. suffix
  end
  vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes("<F7>", true, false, true), "mx", false)
  expect_equal(vim.g.hotplug_key, line("key"), "keymap")
  vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes("<F8>", true, false, true), "mx", false)
  expect_equal(vim.g.hotplug_inline_key, line("inline key"), "inline keymap callback")
  vim.api.nvim_exec_autocmds("User", { pattern = "HotplugInline" })
  expect_equal(vim.g.hotplug_inline_event, line("inline event"), "inline autocmd callback")
  vim.api.nvim_exec_autocmds("User", { pattern = "HotplugPing" })
  expect_equal(vim.g.hotplug_event, line("event"), "autocmd")
  vim.cmd("HotplugCmd hi")
  expect_equal(vim.g.hotplug_command, line("command hi"), "user command")
  local state = plug.state()
  local ticks = state.ticks
  local ticked = vim.wait(5000, function()
    return state.ticks > ticks and state.last_tick:find(tag .. " tick ", 1, true) == 1
  end, 1)
  expect(ticked, "timer: last tick %q, expected %q's code", state.last_tick, tag)
  -- The tick count went on from where it was: the timer's state was kept.
  expect(tonumber(state.last_tick:match("(%d+)$")) > ticks, "timer count reset: %q after %d",
    state.last_tick, ticks)
end

local function check_reload()
  expect(vim.fn.exists(":HotluaReload") == 2, "plugin/hotlua.lua did not define :HotluaReload")
  -- Files installed before the session started, as a plugin's are.
  write_file(init_file, plugin_source("v1"))
  write_file(text_file, text_source(""))
  local an_hour_ago = os.time() - 3600
  for _, file in ipairs({ init_file, text_file }) do
    assert(uv.fs_utime(file, an_hour_ago, an_hour_ago))
  end

  local hotlua_nvim = require("hotlua.nvim")
  hotlua_nvim.setup({ reload_on_save = true })
  expect(#notes == 0, "setup notified: %s", last_note().message)
  local plug = require("hotplug")
  plug.start()
  expect_equal(vim.g.hotplug_reloading, false, "reloading() in a top level loaded by require")
  exercise(plug, "v1", 1, "")

  local completion = vim.fn.getcompletion("HotluaReload hotp", "cmdline")
  expect(vim.tbl_contains(completion, "hotplug") and vim.tbl_contains(completion, "hotplug.text"),
    "completion of 'hotp': %s", vim.inspect(completion))
  local sources = hotlua_nvim.modules_of_file(init_file)
  expect(vim.deep_equal(sources, { "hotplug" }), "init.lua is the source of %s",
    vim.inspect(sources))

  local info, err = vim.log.levels.INFO, vim.log.levels.ERROR
  local reloaded = "^hotlua: reloaded hotplug in [%d.]+ ms: "
  -- :HotluaReload without a name: the module whose file changed since the session started,
  -- and only it (not hotplug.text, none of Neovim's own modules).
  write_file(init_file, plugin_source("v2"))
  expect_note(info, reloaded, function()
    vim.cmd("HotluaReload")
  end)
  exercise(plug, "v2", 2, "")
  expect_equal(vim.g.hotplug_reloading, true, "reloading() in a reloaded top level")
  -- Nothing edited since: nothing reloaded.
  expect_note(info, "^hotlua: no loaded module changed", function()
    vim.cmd("HotluaReload")
  end)

  -- :HotluaReload with the module's name.
  write_file(init_file, plugin_source("v3"))
  expect_note(info, reloaded, function()
    vim.cmd("HotluaReload hotplug")
  end)
  exercise(plug, "v3", 3, "")

  -- Saving in Neovim: BufWritePost reloads the module whose source the file is (init.lua) ...
  expect_note(info, reloaded, function()
    save_in_buffer(init_file, plugin_source("v4"))
  end)
  exercise(plug, "v4", 4, "")
  -- ... and a `lua/<mod>.lua` file, without touching the module that uses it.
  expect_note(info, "^hotlua: reloaded hotplug%.text in ", function()
    save_in_buffer(text_file, text_source("!"))
  end)
  exercise(plug, "v4", 5, "!")
  -- A saved file that is no loaded module's source: nothing to say.
  local before = #notes
  save_in_buffer(plug_root .. "/lua/hotplug/unused.lua", "return {}\n")
  expect(#notes == before, "saving an unloaded module notified %q", last_note().message)

  -- A syntax error on line 11, in M.on_key: the old code keeps running and the user is told
  -- which module, which file and which line, whichever way the reload was asked for.
  local broken = plugin_source("v5"):gsub("(state.keys = state.keys %+ 1\n)", "%1  local = 1\n", 1)
  local where = uv.fs_realpath(init_file) .. ":11:"
  local function expect_syntax_error(action)
    local message = expect_note(err, nil, action)
    for _, part in ipairs({ "hotplug", where, "old code keeps running" }) do
      expect(message:find(part, 1, true), "the syntax error's notification %q does not say %q",
        message, part)
    end
    expect(not message:find("_init_packages", 1, true), "Neovim's loader in %q", message)
  end
  expect_syntax_error(function()
    save_in_buffer(init_file, broken)
  end)
  exercise(plug, "v4", 6, "!")
  expect_syntax_error(function()
    vim.cmd("HotluaReload hotplug")
  end)
  expect_syntax_error(function()
    vim.cmd("HotluaReload")
  end)
  exercise(plug, "v4", 7, "!")

  -- Fixed: the next :HotluaReload takes it.
  write_file(init_file, plugin_source("v5"))
  expect_note(info, reloaded, function()
    vim.cmd("HotluaReload")
  end)
  exercise(plug, "v5", 8, "!")
  plug.stop()
end

-- No hotlua.so anywhere the plugin looks: one line that says so and how to build it, at setup
-- and at each :HotluaReload, and no error raised; then one that cannot be loaded.
local function check_missing()
  local function expect_one_line(action)
    local message = expect_note(vim.log.levels.ERROR, nil, action)
    expect(not message:find("\n"), "missing hotlua.so: more than one line: %q", message)
    for _, part in ipairs({ "hotlua.so not found", "scripts/build-module luajit" }) do
      expect(message:find(part, 1, true), "missing hotlua.so: %q does not say %q", message, part)
    end
  end
  expect_one_line(function()
    require("hotlua.nvim").setup({ reload_on_save = true })
  end)
  expect_one_line(function()
    vim.cmd("HotluaReload")
  end)
  -- A file that is no loadable library where the plugin finds one (lua/hotlua.so on the
  -- runtimepath): the loader's reason, in one line.
  local not_a_library = work .. "/bare/lua/hotlua.so"
  write_file(not_a_library, "not a shared object\n")
  local message = expect_note(vim.log.levels.ERROR, "^hotlua: cannot load hotlua.so: ", function()
    vim.cmd("HotluaReload")
  end)
  expect(message:find("hotlua.so: " .. not_a_library, 1, true) and not message:find("\n"),
    "a broken hotlua.so: %q", message)
  -- The help the plugin's messages point to is there (a plugin manager runs :helptags).
  vim.cmd("helptags " .. vim.fn.fnameescape(work .. "/bare/doc"))
  local tags = { "hotlua-install", ":HotluaReload", "hotlua.setup()", "hotlua-callbacks" }
  for _, tag in ipairs(tags) do
    vim.cmd("help " .. tag)
    vim.cmd("close")
  end
end

-- nvim/ put on the runtimepath after startup, as lazy.nvim's `config` hook does: plugin/ is not
-- sourced then, and setup() defines the command.
local function check_late()
  expect(vim.fn.exists(":HotluaReload") == 0, ":HotluaReload exists before nvim/ is added")
  local plugin = assert(os.getenv("HOTLUA_CHECK_PLUGIN"), "HOTLUA_CHECK_PLUGIN not set")
  vim.opt.runtimepath:append(plugin)
  require("hotlua.nvim").setup()
  expect(#notes == 0, "setup notified: %s", last_note().message)
  expect(vim.fn.exists(":HotluaReload") == 2, "setup() did not define :HotluaReload")
  expect_note(vim.log.levels.INFO, "^hotlua: no loaded module changed", function()
    vim.cmd("HotluaReload")
  end)
end

local checks = { reload = check_reload, missing = check_missing, late = check_late }
local ok, failure = xpcall(function()
  local check = checks[scenario]
  expect(check, "unknown HOTLUA_CHECK_SCENARIO %q", tostring(scenario))
  check()
end, debug.traceback)
if ok then
  io.stdout:write("check-neovim ", scenario, ": ok\n")
  vim.cmd("qall!")
else
  io.stderr:write("check-neovim ", tostring(scenario), ": ", failure, "\n")
  vim.cmd("cquit 1")
end
