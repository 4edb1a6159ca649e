-- hotlua for Neovim: `:HotluaReload [module ...]`. The work is in lua/hotlua/nvim.lua; the
-- reload on save is opt-in: require("hotlua.nvim").setup({ reload_on_save = true }).
if vim.g.loaded_hotlua then
  return
end
vim.g.loaded_hotlua = true

if vim.fn.has("nvim-0.7") == 0 then
  vim.notify("hotlua: needs Neovim 0.7 or newer", vim.log.levels.ERROR)
  return
end

-- Loaded now, not at the first reload: it notes when the session started, so that a module
-- file edited before the first `:HotluaReload` still counts as changed.
local hotlua_nvim = require("hotlua.nvim")

vim.api.nvim_create_user_command("HotluaReload", function(command)
  hotlua_nvim.reload(#command.fargs > 0 and command.fargs or nil)
end, {
  nargs = "*",
  complete = function(lead)
    return hotlua_nvim.complete(lead)
  end,
  desc = "hotlua: reload Lua modules (by name, or every loaded module whose file changed)",
})
