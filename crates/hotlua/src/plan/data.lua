-- The planner's walks over data tables (see data.rs). A data table is a new table with no
-- metatable whose keys are strings, numbers or booleans and whose values are those or
-- tables. Each walk follows, rule for rule and in the same order, what the planner's Rust
-- code does with any table (collect.rs, pair.rs), so that which path reaches a value first,
-- which field is written and what is reported stay the same. The two walks over every table,
-- collecting and merging, are C functions (csrc/data/); this file holds their state.
local next, type = next, type

-- data: filled here: every data table collected -> true, or the live table it merges into
-- once paired; a table a data table reaches that is not one -> false (left to the planner).
-- foreign, live_modules: tables the planner never collects or merges into (sets).
-- pairs: every other new table -> the live table it merges into (shared with the planner).
-- general: the new tables the planner collected itself (shared, read only here).
-- unmerged: filled here and by the planner: (new table, key) for each field of a new table
-- merged into a live one that holds a table not merged into the live table's field (2 slots
-- a field, `n` slots): where the new version's tables go live, for its baseline.
-- G: `_G`. collect_data, merge_data: the walks of csrc/data/.
return function(data, foreign, live_modules, pairs, general, unmerged, G, collect_data,
                merge_data)
  -- the data tables in the order collected, and how many of them the merge paired
  local order, count, paired_here = {}, 0, 0
  local skip = {}
  for t in next, foreign do skip[t] = true end
  for t in next, live_modules do skip[t] = true end

  -- Collects `root`, a new table nobody collected yet, and every data table it reaches, depth
  -- first and in `next` order as the planner collects. Returns false if `root` is not a data
  -- table. Otherwise returns the tables it reached that are neither data tables nor tables
  -- the planner skips, for the planner to collect, in the order reached: each table followed
  -- by its path from `root` (the number of keys, then the keys). Those tables are marked
  -- `data[t] = false`: reached, and left to the planner.
  local function collect(root)
    local found
    found, count = collect_data(root, data, skip, pairs, general, order, count)
    return found
  end

  -- The planner's pending merges (`Task::MergeTables`) from one of a data table `new` into
  -- `live`, done as the planner does them, until none is left or the next one is of a table
  -- that is not a data table. `base`: the new table's load-time values, or false.
  -- `policy`: "keep", "overwrite" or "merge3".
  --
  -- Returns `writes` (table, key, value: 3 slots a raw write, in order; `writes.n` slots),
  -- `assigns` (the same for fields added to a table whose `__newindex` must see them),
  -- `events` (in order: a kind, then its path from `new` (the number of keys, then the keys),
  -- then its values: "elsewhere"; "conflict", live, new; "deleted", function), the number of
  -- fields added, the number of tables paired, and the merges left (live, new, base, then the
  -- path, for each, the next to do last).
  local function merge(root_live, root_new, root_base, policy)
    local writes, assigns, events, added, merged, left
    writes, assigns, events, added, merged, left, paired_here = merge_data(root_live, root_new,
      root_base, policy, data, foreign, pairs, general, unmerged, G, paired_here)
    return writes, assigns, events, added, merged, left
  end

  -- The fields of data tables that go live as they are (not merged into a live table) that
  -- hold a new table merged into a live one: (table, key, value) for each, 3 slots a field,
  -- `n` slots in all. `paired_elsewhere`: how many data tables the planner paired.
  local function remap(paired_elsewhere)
    local fields, n = {}, 0
    fields.n = 0
    -- each data table merged into a live one: none goes live as it is
    if count - paired_here - paired_elsewhere == 0 then return fields end
    for i = 1, count do
      local t = order[i]
      if data[t] == true then
        for k, v in next, t do
          local collected = type(v) == "table" and data[v]
          if type(collected) == "table" or (collected ~= true and pairs[v] ~= nil) then
            fields[n + 1], fields[n + 2], fields[n + 3] = t, k, v
            n = n + 3
          end
        end
      end
    end
    fields.n = n
    return fields
  end

  -- Points the values of planned writes (as `merge` and `remap` list them) that are new
  -- tables merged into live ones at those live tables, as the planner's `resolve` does for
  -- its own writes. Keys of data tables are never tables.
  local function resolve(list)
    for i = 3, list.n, 3 do
      local value = list[i]
      if type(value) == "table" then
        local live = data[value]
        if type(live) ~= "table" then live = pairs[value] end
        if type(live) == "table" then list[i] = live end
      end
    end
  end

  return { collect = collect, merge = merge, remap = remap, resolve = resolve }
end
