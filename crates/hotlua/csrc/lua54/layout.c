/* The proof that the Lua running this code lays its objects out as the headers the shim was
** compiled with say (see backend.h).
**
** A C module built against Lua 5.4.9's headers may be loaded by a `lua5.4` of another release
** or build. Before the shim touches a structure, hotlua_layout_check builds objects whose every
** field it will read or write has a value the public API also gives (a closure, its prototype
** and nested prototype, its cells, a coroutine suspended in a Lua function, a table, the global
** state) and compares the two. Fields are compared in an order that dereferences a pointer read
** from a structure only after the plain fields around it agreed: a different layout fails on a
** number or an address before the shim follows a pointer that is not one.
*/

#include "backend.h"
#include "probe.h"
#include "ltable.h"
#include "ltm.h"

static const char probe_source[] =
    PROBE_FUNCTIONS "return probe, probe(1, 2), suspended, {10, 20, 30, key = true}\n";

static int same_string(const TString *s, const char *text) {
  size_t len = strlen(text);
  return s != NULL && (s->tt == LUA_VSHRSTR || s->tt == LUA_VLNGSTR) && hotlua_strlen(s) == len &&
         memcmp(getstr(s), text, len) == 0;
}

static int has_string_constant(const Proto *p, const char *text) {
  int i;
  for (i = 0; i < p->sizek; i++)
    if (ttisstring(&p->k[i]) && same_string(tsvalue(&p->k[i]), text)) return 1;
  return 0;
}

/* Each check returns NULL or what disagreed. Stack indices: 1 probe, 2 inner, 3 suspended,
** 4 table, 5 the coroutine. */

static const char *check_closure(lua_State *L, int idx, lua_Debug *ar) {
  const LClosure *cl = (const LClosure *)lua_topointer(L, idx);
  int i;
  lua_pushvalue(L, idx);
  if (!lua_getinfo(L, ">Su", ar)) return "lua_getinfo";
  if (cl->tt != LUA_VLCL) return "the type tag of a Lua closure";
  if (cl->nupvalues != ar->nups) return "the number of upvalues of a closure";
  for (i = 0; i < cl->nupvalues; i++)
    if ((const void *)cl->upvals[i] != lua_upvalueid(L, idx, i + 1))
      return "the upvalue cells of a closure";
  return NULL;
}

static const char *check_proto(lua_State *L, int idx, const lua_Debug *ar, int sizep) {
  const Proto *p = ((const LClosure *)lua_topointer(L, idx))->p;
  int i;
  if (p == NULL || p->tt != LUA_VPROTO) return "the type tag of a prototype";
  if (p->numparams != ar->nparams || p->is_vararg != ar->isvararg ||
      p->sizeupvalues != ar->nups || p->sizep != sizep ||
      p->linedefined != ar->linedefined || p->lastlinedefined != ar->lastlinedefined ||
      p->sizecode < 2 || p->sizek < 0 || p->sizelocvars < p->numparams)
    return "the sizes and lines of a prototype";
  if (!same_string(p->source, ar->source)) return "the chunk name of a prototype";
  for (i = 0; i < p->sizeupvalues; i++) {
    const char *name = lua_getupvalue(L, idx, i + 1);
    if (name == NULL) return "lua_getupvalue";
    lua_pop(L, 1);
    if (!same_string(p->upvalues[i].name, name)) return "the upvalue names of a prototype";
  }
  for (i = 1; i <= p->numparams; i++) {
    const char *name;
    lua_pushvalue(L, idx);
    name = lua_getlocal(L, NULL, i);
    lua_pop(L, 1);
    if (name == NULL || hotlua_local_name(p, i, 0) == NULL ||
        strcmp(hotlua_local_name(p, i, 0), name) != 0)
      return "the local names of a prototype";
  }
  /* a vararg function starts by adjusting its frame and ends with a full return */
  if (p->is_vararg && (GET_OPCODE(p->code[0]) != OP_VARARGPREP ||
                       GET_OPCODE(p->code[p->sizecode - 1]) != OP_RETURN))
    return "the instruction encoding";
  return NULL;
}

/* `inner` (stack index 2) is made by `probe` (index 1): probe's only child, with the upvalues
** `shared` (probe's own upvalue 1, as probe's first upvalue) and `c` (probe's third register),
** closed, holding 12345 and 2. */
static const char *check_nesting(lua_State *L) {
  const LClosure *probe = (const LClosure *)lua_topointer(L, 1);
  const LClosure *inner = (const LClosure *)lua_topointer(L, 2);
  const Proto *p = inner->p;
  const UpVal *shared, *c;
  if (probe->p->p[0] != p) return "the nested prototypes of a prototype";
  if (p->sizeupvalues != 2 || !same_string(p->upvalues[0].name, "shared") ||
      p->upvalues[0].instack != 0 || p->upvalues[0].idx != 0 ||
      !same_string(p->upvalues[1].name, "c") || p->upvalues[1].instack != 1 ||
      p->upvalues[1].idx != 2)
    return "the upvalue descriptions of a prototype";
  if (!has_string_constant(p, "hotlua-probe") ||
      !has_string_constant(p, PROBE_LONG_CONSTANT))
    return "the constants of a prototype";
  shared = inner->upvals[0];
  c = inner->upvals[1];
  if (shared->tt != LUA_VUPVAL || c->tt != LUA_VUPVAL) return "the type tag of an upvalue";
  if (shared->v.p != &shared->u.value || !ttisinteger(shared->v.p) ||
      ivalue(shared->v.p) != 12345 || c->v.p != &c->u.value || !ttisinteger(c->v.p) ||
      ivalue(c->v.p) != 2)
    return "the value of a closed upvalue";
  return NULL;
}

static const char *check_table(lua_State *L) {
  const Table *t = (const Table *)lua_topointer(L, 4);
  const Node *n;
  if (t->tt != LUA_VTABLE || t->metatable != NULL) return "the header of a table";
  if (hotlua_array_size(t) != 3 || !ttisinteger(&t->array[1]) || ivalue(&t->array[1]) != 20)
    return "the array part of a table";
  if (isdummy(t) || sizenode(t) != 1) return "the hash part of a table";
  n = gnode(t, 0);
  if (keytt(n) != ctb(LUA_VSHRSTR) || !same_string(keystrval(n), "key") || !ttistrue(gval(n)))
    return "the slots of a table";
  lua_pushvalue(L, 4);
  lua_setmetatable(L, 4);
  if (t->metatable != t) return "the metatable of a table";
  return NULL;
}

/* The coroutine (index 5) yielded from probe_yield, called by `suspended` (index 3). */
static const char *check_threads(lua_State *L) {
  lua_State *co = lua_tothread(L, 5), *main;
  const CallInfo *ci;
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  main = lua_tothread(L, -1);
  lua_pop(L, 1);
  if (co->tt != LUA_VTHREAD || co->status != LUA_YIELD || L->status != LUA_OK)
    return "the header of a thread";
  if (co->l_G == NULL || co->l_G != L->l_G || main->l_G != L->l_G)
    return "the global state of a thread";
  if (L->top.p - (L->ci->func.p + 1) != lua_gettop(L)) return "the stack of a thread";
  ci = co->ci;
  if (isLua(ci) || !ttislcf(s2v(ci->func.p)) || fvalue(s2v(ci->func.p)) != probe_yield)
    return "the frames of a thread";
  ci = ci->previous;
  if (!isLua(ci) || (const void *)ci_func(ci) != lua_topointer(L, 3) ||
      ci->previous != &co->base_ci)
    return "the frames of a thread";
  if (G(L)->mainthread != main) return "the main thread of the global state";
  return NULL;
}

/* The global state: its allocator, registry, messages, metamethod names, the byte count the
** collector gives, and the newest objects on its list of all objects. */
static const char *check_global(lua_State *L) {
  global_State *g = G(L);
  void *ud;
  lua_Alloc alloc = lua_getallocf(L, &ud);
  size_t counted;
  GCObject *o;
  int seen = 0, found = 0;
  if (g->frealloc != alloc || g->ud != ud) return "the allocator of the global state";
  if (!ttistable(&g->l_registry) ||
      (const void *)hvalue(&g->l_registry) != lua_topointer(L, LUA_REGISTRYINDEX))
    return "the registry of the global state";
  if (!same_string(g->memerrmsg, "not enough memory") ||
      !same_string(g->tmname[TM_INDEX], "__index") || !same_string(g->tmname[TM_CALL], "__call"))
    return "the names the global state keeps";
  if (g->gckind > KGC_GEN || g->gcstate > GCSpause ||
      ((g->currentwhite & WHITEBITS) != bitmask(WHITE0BIT) &&
       (g->currentwhite & WHITEBITS) != bitmask(WHITE1BIT)))
    return "the collector's state";
  if (g->gcstopem != 0 || ((g->gcstp & GCSTPUSR) != 0) != !lua_gc(L, LUA_GCISRUNNING))
    return "the collector's switches";
  counted = counted_bytes(L);
  if ((size_t)gettotalbytes(g) != counted) return "the byte count of the global state";
  /* the table was made last: it leads the list, and the closures follow within a few */
  for (o = g->allgc; o != NULL && seen < 64; o = o->next, seen++) {
    if ((const void *)o == lua_topointer(L, 4) && o->tt == LUA_VTABLE) found |= 1;
    if ((const void *)o == lua_topointer(L, 2) && o->tt == LUA_VLCL) found |= 2;
  }
  if (found != 3) return "the list of all objects";
  return NULL;
}

/* hotlua_layout_check(): true when every field the shim uses holds what the public API says,
** else false and what disagreed. A lua_CFunction, run protected (it allocates). Invariant:
** the running Lua is a Lua 5.4 (the C module checks the version before anything else). */
int hotlua_layout_check(lua_State *L) {
  lua_Debug ar;
  const char *wrong = NULL;
  probe_objects(L, probe_source, sizeof(probe_source) - 1, 4, 3);
  wrong = check_closure(L, 1, &ar);
  if (wrong == NULL) wrong = check_proto(L, 1, &ar, 1);
  if (wrong == NULL) wrong = check_closure(L, 2, &ar);
  if (wrong == NULL) wrong = check_proto(L, 2, &ar, 0);
  if (wrong == NULL) wrong = check_closure(L, 3, &ar);
  if (wrong == NULL) wrong = check_proto(L, 3, &ar, 0);
  if (wrong == NULL) wrong = check_nesting(L);
  if (wrong == NULL) wrong = check_threads(L);
  if (wrong == NULL) wrong = check_global(L);
  if (wrong == NULL) wrong = check_table(L);
  return probe_verdict(L, wrong, LUA_RELEASE "'s");
}
