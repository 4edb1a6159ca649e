-- hotlua for Neovim: defines `:HotluaReload [module ...]` (lua/hotlua/nvim.lua does the work).
-- The reload on save is opt-in: require("hotlua.nvim").setup({ reload_on_save = true }).
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
require("hotlua.nvim").create_command()
