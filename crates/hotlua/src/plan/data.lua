-- The planner's walks over data tables, in Lua (see data.rs). A data table is a new table
-- with no metatable whose keys are strings, numbers or booleans and whose values are those
-- or tables. Each walk follows, rule for rule and in the same order, what the planner's Rust
-- code does with any table (collect.rs, pair.rs), so that which path reaches a value first,
-- which field is written and what is reported stay the same.
local next, type, rawget, rawequal, getmetatable = next, type, rawget, rawequal, getmetatable

-- data: filled here: every data table collected -> true, or the live table it merges into
-- once paired; a table a data table reaches that is not one -> false (left to the planner).
-- foreign, live_modules: tables the planner never collects or merges into (sets).
-- pairs: every other new table -> the live table it merges into (shared with the planner).
-- general: the new tables the planner collected itself (shared, read only here).
-- unmerged: filled here and by the planner: (new table, key) for each field of a new table
-- merged into a live one that holds a table not merged into the live table's field (2 slots
-- a field, `n` slots): where the new version's tables go live, for its baseline.
-- G: `_G`. has_newindex(t): whether t's raw metatable has a `__newindex`.
return function(data, foreign, live_modules, pairs, general, unmerged, G, has_newindex)
  -- the data tables in the order collected, and how many of them the merge paired
  local order, count, paired_here = {}, 0, 0
  local skip = {}
  for t in next, foreign do skip[t] = true end
  for t in next, live_modules do skip[t] = true end

  -- The keys from the walk's root to step `step`, then `key`, appended to `out` after their
  -- number. `parent_of[s]`, `key_of[s]`: how step s was reached (step 1 is the root).
  local function append_path(out, n, parent_of, key_of, step, key)
    local reversed, m = { key }, 1
    while step > 1 do
      m = m + 1
      reversed[m] = key_of[step]
      step = parent_of[step]
    end
    n = n + 1
    out[n] = m
    for i = m, 1, -1 do
      n = n + 1
      out[n] = reversed[i]
    end
    return n
  end

  -- Collects `root`, a new table nobody collected yet, and every data table it reaches, depth
  -- first and in `next` order as the planner collects. Returns false if `root` is not a data
  -- table. Otherwise returns the tables it reached that are neither data tables nor tables
  -- the planner skips, for the planner to collect, in the order reached: each table followed
  -- by its path from `root` (the number of keys, then the keys). Those tables are marked
  -- `data[t] = false`: reached, and left to the planner.
  --
  -- Each table is read once: whether it is a data table and the tables it holds are found in
  -- one pass, its tables waiting on a stack in reverse so that the first is walked next.
  local function collect(root)
    local known = data[root]
    if known then return {} end
    if known == false then return false end
    local found, nfound = {}, 0
    -- the tables waiting and the step each was reached by: step s was reached from step
    -- parent_of[s] by key key_of[s] (step 1 is the root)
    local stack, stack_steps, n = { root }, { 1 }, 1
    local parent_of, key_of, steps = { 0 }, { false }, 1
    while n > 0 do
      local t, step = stack[n], stack_steps[n]
      n = n - 1
      if data[t] == nil then
        local top, is_data = n, getmetatable(t) == nil
        if is_data then
          for k, v in next, t do
            local kind = type(k)
            if kind ~= "string" and kind ~= "number" and kind ~= "boolean" then
              is_data = false
              break
            end
            kind = type(v)
            if kind == "table" then
              if data[v] == nil and not skip[v] and pairs[v] == nil and general[v] == nil then
                steps = steps + 1
                parent_of[steps], key_of[steps] = step, k
                n = n + 1
                stack[n], stack_steps[n] = v, steps
              end
            elseif kind ~= "string" and kind ~= "number" and kind ~= "boolean" then
              is_data = false
              break
            end
          end
        end
        if is_data then
          data[t] = true
          count = count + 1
          order[count] = t
          local i, j = top + 1, n
          while i < j do
            stack[i], stack[j] = stack[j], stack[i]
            stack_steps[i], stack_steps[j] = stack_steps[j], stack_steps[i]
            i, j = i + 1, j - 1
          end
        elseif step == 1 then
          return false
        else
          n = top
          data[t] = false
          found[nfound + 1] = t
          nfound = append_path(found, nfound + 1, parent_of, key_of, parent_of[step],
            key_of[step])
        end
      end
    end
    return found
  end

  -- The keys of `live` that hold a function and that `new` lacks: the old functions a new
  -- version no longer has (for any table, not only data tables).
  local function deleted(live, new)
    local keys, n = {}, 0
    for key, value in next, live do
      if type(value) == "function" and rawget(new, key) == nil then
        n = n + 1
        keys[n] = key
      end
    end
    return keys
  end

  -- The planner's pending merges (`Task::MergeTables`) from one of a data table `new` into
  -- `live`, done as the planner does them, until none is left or the next one is of a table
  -- that is not a data table. `base`: the new table's load-time values, or false.
  -- `policy`: "keep", "overwrite" or "merge3".
  --
  -- Returns `writes` (table, key, value: 3 slots a raw write, in order; `writes.n` slots),
  -- `assigns` (the same for fields added to a table whose `__newindex` must see them),
  -- `events` (in order: a kind, then its path from `new` as `append_path` writes it, then its
  -- values: "elsewhere"; "conflict", live, new; "deleted", function), the number of fields
  -- added, the number of tables paired, and the merges left (live, new, base, then the path,
  -- for each, the next to do last).
  local function merge(root_live, root_new, root_base, policy)
    local writes, nwrites, events, nevents, added, merged = {}, 0, {}, 0, 0, 0
    local assigns, nassigns = {}, 0
    -- the pending merges: live, new, base, step, and whether `new` is a data table
    local lives, news, bases, steps_of, datas, n = { root_live }, { root_new }, { root_base },
      { 1 }, { true }, 1
    local parent_of, key_of, steps = { 0 }, { false }, 1
    local function event(kind, step, key)
      nevents = nevents + 1
      events[nevents] = kind
      nevents = append_path(events, nevents, parent_of, key_of, step, key)
    end
    while n > 0 and datas[n] do
      local live, new, base, step = lives[n], news[n], bases[n], steps_of[n]
      lives[n], news[n], bases[n], steps_of[n], datas[n] = nil, nil, nil, nil, nil
      n = n - 1
      -- merge_fields; a live table with no metatable is read without a call
      local plain = getmetatable(live) == nil
      for k, value in next, new do
        local current
        if plain then current = live[k] else current = rawget(live, k) end
        local kind = type(value)
        -- a data table (new) is never a live value; `==` is raw but for two tables (`__eq`)
        local collected = kind == "table" and data[value]
        local merging = false
        if current == nil then
          added = added + 1
          if not plain and not rawequal(live, G) and has_newindex(live) then
            assigns[nassigns + 1], assigns[nassigns + 2], assigns[nassigns + 3] = live, k, value
            nassigns = nassigns + 3
          else
            writes[nwrites + 1], writes[nwrites + 2], writes[nwrites + 3] = live, k, value
            nwrites = nwrites + 3
          end
        elseif collected or (kind == "table" and not rawequal(current, value))
            or (kind ~= "table" and current ~= value) then
          local write = false
          local live_kind = type(current)
          local is_new = collected ~= false and collected ~= nil
            or (kind == "table" and general[value] ~= nil)
          if live_kind == "table" and is_new and not foreign[current] then
            local paired
            if collected == true then
              paired = nil
            elseif collected then
              paired = collected
            else
              paired = pairs[value]
            end
            if paired ~= nil and not rawequal(paired, current) then
              event("elsewhere", step, k)
              write = true
            elseif paired == nil then
              if collected == true then
                data[value] = current
                paired_here = paired_here + 1
              else
                pairs[value] = current
              end
              merging = true
              merged = merged + 1
              steps = steps + 1
              parent_of[steps], key_of[steps] = step, k
              n = n + 1
              lives[n], news[n], steps_of[n], datas[n] = current, value, steps, collected == true
              bases[n] = false
              if base then
                local child_base = rawget(base, k)
                bases[n] = type(child_base) == "table" and child_base
              end
            end
          elseif live_kind == "table" and is_new then
            -- a foreign table: replaced only if the file put it there
            if base then write = rawequal(rawget(base, k), current) else write = true end
          elseif live_kind ~= kind then
            write = true
          elseif policy == "overwrite" then
            write = true
          elseif policy == "merge3" and base then
            local before = rawget(base, k)
            if rawequal(before, current) then
              write = true
            elseif not rawequal(before, value) then
              event("conflict", step, k)
              events[nevents + 1], events[nevents + 2] = current, value
              nevents = nevents + 2
            end
          end
          if write then
            writes[nwrites + 1], writes[nwrites + 2], writes[nwrites + 3] = live, k, value
            nwrites = nwrites + 3
          end
        end
        if kind == "table" and not merging then
          local at = unmerged.n
          unmerged[at + 1], unmerged[at + 2], unmerged.n = new, k, at + 2
        end
      end
      -- old functions the new version no longer has (the planner keeps those of the batch);
      -- `new`, a data table, is read without a call
      for key, old in next, live do
        if new[key] == nil and type(old) == "function" then
          event("deleted", step, key)
          nevents = nevents + 1
          events[nevents] = old
        end
      end
    end
    local left, nleft = {}, 0
    for i = 1, n do
      left[nleft + 1], left[nleft + 2], left[nleft + 3] = lives[i], news[i], bases[i]
      nleft = append_path(left, nleft + 3, parent_of, key_of, parent_of[steps_of[i]],
        key_of[steps_of[i]])
    end
    writes.n = nwrites
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

  return { collect = collect, merge = merge, remap = remap, resolve = resolve, deleted = deleted }
end
