-- A busted spec with no reload: busted runs it the same in lua5.4 and in hotlua, a failing
-- test and its exit status included.

describe("a plain spec", function()
  local log = {}
  before_each(function() log[#log + 1] = "before" end)

  it("passes", function()
    assert.are.same({ "before" }, log)
  end)

  it("fails", function()
    assert.are.equal("expected", "actual")
  end)

  pending("is pending")

  it("errors", function()
    error("an error raised by the test")
  end)
end)
