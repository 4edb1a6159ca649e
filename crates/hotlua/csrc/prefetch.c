/* Cache hints for the planner, which reads every function of a module table in one pass
** (plan/facts.rs), and for the pairing of prototypes (switch/inplace/pairing.rs): the same
** for every backend (backend.h). */

#include "backend.h"
#include "prefetch.h"

/* Asks the cache for what reading the function at `idx` will touch: with `depth` 0 its
** closure (reads nothing), with `depth` 1 the first lines of its prototype (reads the
** closure), with `depth` 2 its prototype's upvalue descriptions (reads the closure and the
** prototype), each asked for by an earlier call. A prefetch never faults, whatever the
** address. Invariant: `idx` is a valid stack index. */
void hotlua_prefetch_function(lua_State *L, int idx, int depth) {
  HClosure *cl;
  const char *p;
  if (lua_type(L, idx) != LUA_TFUNCTION || lua_iscfunction(L, idx)) return;
  /* lua_topointer gives a collectable object's own address: here the Lua closure */
  cl = (HClosure *)lua_topointer(L, idx);
  if (depth == 0) {
    PREFETCH(cl);
    return;
  }
  if (depth == 2) {
    PREFETCH(proto_upvalue_descriptions(closure_proto(cl)));
    return;
  }
  p = (const char *)closure_proto(cl);
  PREFETCH(p);
  PREFETCH(p + 64);
}

/* Asks the cache for what pairing the prototype `p` will touch: with `depth` 0 its first
** lines, with `depth` 1 its upvalue descriptions (reads the prototype, which an earlier call
** asked for). A prefetch never faults, whatever the address.
** Invariant: `p` is a live prototype. */
void hotlua_prefetch_proto(const HProto *p, int depth) {
  if (!depth) {
    PREFETCH(p);
    PREFETCH((const char *)p + 64);
    return;
  }
  PREFETCH(proto_upvalue_descriptions(p));
}
