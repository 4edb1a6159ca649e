/* What the planner reads of one Lua function (src/plan/facts/read.rs), in one call: the same
** for every backend (backend.h). A module's ten thousand functions were read a few calls
** each (the source, then each upvalue's name and cell), each call finding the function on
** the stack again. */

#include "backend.h"

/* Defined by the backend's proto.c. */
int hotlua_function_source(lua_State *L, int idx, const HProto **proto, const char **source,
                           size_t *len, int *first, int *last);
const char *hotlua_proto_upvalue_name(const HProto *p, int i, size_t *len);

/* Mirrored by `FunctionRead` in src/plan/facts/read.rs. */
typedef struct HotluaFunctionFacts {
  const HProto *proto;
  const char *source;
  size_t len;
  int first, last;
  /* -1 when the prototype has no upvalue names (stripped code) */
  int nupvalues;
  const char *names[256];
  size_t name_lens[256];
  const HCell *cells[256];
} HotluaFunctionFacts;

/* Fills `f` with what hotlua_function_source says of the Lua function at `idx`, and with
** the name and cell (what lua_upvalueid gives) of each of its upvalues. Returns as
** hotlua_function_source: 0 for a C function or a main chunk, -1 for a prototype with no
** chunk name (nothing else is filled then), 1 otherwise. Invariant: `idx` is a valid stack
** index of L holding a function; a prototype has at most 255 upvalues (`names`, `cells`
** hold 256). The strings are the prototype's, alive while the function is. */
int hotlua_function_facts(lua_State *L, int idx, HotluaFunctionFacts *f) {
  const HClosure *cl;
  int found = hotlua_function_source(L, idx, &f->proto, &f->source, &f->len, &f->first, &f->last);
  int i;
  if (found != 1) return found;
  /* lua_topointer gives a collectable object's own address: here the Lua closure */
  cl = (const HClosure *)lua_topointer(L, idx);
  f->nupvalues = proto_nupvalues(f->proto);
  for (i = 0; i < f->nupvalues; i++) {
    f->names[i] = hotlua_proto_upvalue_name(f->proto, i, &f->name_lens[i]);
    if (f->names[i] == NULL) {
      f->nupvalues = -1;
      break;
    }
    f->cells[i] = closure_cell(cl, i);
  }
  return 1;
}
