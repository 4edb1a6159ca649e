-- A busted spec that reloads busted's own modules while busted runs it, then goes on using
-- busted (nested blocks, hooks, pending, spies, finally). Run by busted's runner:
--   lua5.4 /usr/bin/busted -o TAP busted_reload_spec.lua        (no hotlua: nothing reloaded)
--   hotlua run /usr/bin/busted -o TAP busted_reload_spec.lua    (busted reloaded mid-run)
-- Both must report the same tests with the same results.

local has_hotlua, hotlua = pcall(require, "hotlua")

-- busted's core object: the `busted` upvalue of the `busted` module's __index.
local function core()
  local index = getmetatable(require "busted").__index
  for i = 1, math.huge do
    local name, value = debug.getupvalue(index, i)
    if name == nil then return nil end
    if name == "busted" then return value end
  end
end

local counter = 0

describe("busted before the reload", function()
  before_each(function() counter = counter + 1 end)

  it("runs a test", function()
    assert.are.equal(1, counter)
  end)

  it("runs before_each again", function()
    assert.are.equal(2, counter)
  end)
end)

describe("reloading busted", function()
  it("reloads busted's modules in one batch", function()
    if not has_hotlua then return end
    local live = core()
    local metatable = getmetatable(live)
    local report, message = hotlua.reload {
      "busted", "busted.core", "busted.init", "busted.outputHandlers.base",
    }
    assert.is_truthy(report, message)
    assert.are.equal(live, core())
    -- An object that is not one of the batch's modules keeps its metatable.
    assert.are.equal(metatable, getmetatable(live))
  end)

  it("reloads busted's modules one by one", function()
    if not has_hotlua then return end
    for _, name in ipairs { "busted.outputHandlers.base", "busted.init", "busted.core", "busted" } do
      local report, message = hotlua.reload(name)
      assert.is_truthy(report, message)
    end
  end)
end)

describe("busted after the reload", function()
  local hooks = {}
  before_each(function() hooks[#hooks + 1] = "before" end)
  after_each(function() hooks[#hooks + 1] = "after" end)

  it("runs hooks", function()
    assert.are.same({ "before" }, hooks)
  end)

  it("runs finally", function()
    finally(function() hooks[#hooks + 1] = "finally" end)
    assert.are.same({ "before", "after", "before" }, hooks)
  end)

  it("spies", function()
    local s = spy.new(function(x) return x * 2 end)
    assert.are.equal(4, s(2))
    assert.spy(s).was.called_with(2)
  end)

  pending("reports a pending test")

  describe("nested", function()
    it("runs a nested test", function()
      assert.is_true(#hooks >= 5)
    end)

    it("reports a failing assertion as a failure", function()
      local ok = pcall(assert.are.equal, 1, 2)
      assert.is_false(ok)
    end)
  end)
end)
