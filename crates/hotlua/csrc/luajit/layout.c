/* The proof that the LuaJIT running this code lays its objects out as the headers the shim was
** compiled with say (see backend.h).
**
** A C module built against luajit2's headers may be loaded by Debian's `luajit`, a build
** without GC64, or a patched fork. Before the shim touches a structure, hotlua_layout_check
** builds objects whose every field it will read or write has a value the public API also gives
** (a function, its prototype and nested prototype, its cells, a coroutine suspended in a Lua
** function, the global state) and compares the two. Fields are compared in an order that
** dereferences a pointer read from a structure only after the plain fields around it agreed.
*/

#include "backend.h"
#include "probe.h"

static const char probe_source[] =
    PROBE_FUNCTIONS "return probe, probe(1, 2), suspended\n";

static int same_string(GCstr *s, const char *text) {
  size_t len = strlen(text);
  return s != NULL && s->gct == ~LJ_TSTR && s->len == len && memcmp(strdata(s), text, len) == 0;
}

static int has_string_constant(const GCproto *p, const char *text) {
  ptrdiff_t k;
  for (k = -1; k >= -(ptrdiff_t)p->sizekgc; k--) {
    GCobj *o = proto_kgc(p, k);
    if (o->gch.gct == ~LJ_TSTR && same_string(&o->str, text)) return 1;
  }
  return 0;
}

/* Each check returns NULL or what disagreed. Stack indices: 1 probe, 2 inner, 3 suspended,
** 4 the coroutine. */

static const char *check_closure(lua_State *L, int idx, lua_Debug *ar) {
  const GCfunc *fn = (const GCfunc *)lua_topointer(L, idx);
  int i;
  lua_pushvalue(L, idx);
  if (!lua_getinfo(L, ">Su", ar)) return "lua_getinfo";
  if (fn->l.gct != ~LJ_TFUNC || !isluafunc(fn)) return "the header of a function";
  if (fn->l.nupvalues != ar->nups) return "the number of upvalues of a function";
  for (i = 0; i < fn->l.nupvalues; i++)
    if ((const void *)gcref(fn->l.uvptr[i]) != lua_upvalueid(L, idx, i + 1))
      return "the upvalue cells of a function";
  return NULL;
}

static const char *check_proto(lua_State *L, int idx, const lua_Debug *ar, int params,
                               int vararg) {
  const GCproto *p = funcproto((const GCfunc *)lua_topointer(L, idx));
  BCOp last;
  int i;
  if (p->gct != ~LJ_TPROTO) return "the header of a prototype";
  if (p->numparams != params || !(p->flags & PROTO_VARARG) != !vararg ||
      p->sizeuv != ar->nups || (int)p->firstline != ar->linedefined ||
      (int)(p->firstline + p->numline) != ar->lastlinedefined || p->sizebc < 2)
    return "the sizes and lines of a prototype";
  if (!same_string(proto_chunkname(p), ar->source)) return "the chunk name of a prototype";
  for (i = 0; i < p->sizeuv; i++) {
    const char *name = lua_getupvalue(L, idx, i + 1);
    if (name == NULL) return "lua_getupvalue";
    lua_pop(L, 1);
    if (strcmp(hotlua_upvalue_name_at(p, i), name) != 0) return "the upvalue names of a prototype";
  }
  for (i = 0; i < params; i++) {
    const char *name = hotlua_local_name(p, i, 0);
    if (name == NULL || strcmp(name, i == 0 ? (params == 1 ? "x" : "a") : "b") != 0)
      return "the local names of a prototype";
  }
  /* A function ends with a return. (Its first instruction, the header, is not compared: the
  ** header opcodes come after the bit operations OpenResty's fork adds, so their numbers
  ** differ between forks; the shim never reads them.) */
  last = bc_op(proto_bc(p)[p->sizebc - 1]);
  if (last != BC_RET0 && last != BC_RET1 && last != BC_RET && last != BC_RETM)
    return "the instruction encoding";
  return NULL;
}

/* `inner` (stack index 2) is made by `probe` (index 1): probe's only child, with the upvalues
** `shared` (probe's upvalue 0) and `c` (probe's slot 2), closed, holding 12345 and 2. */
static const char *check_nesting(lua_State *L) {
  const GCfunc *probe = (const GCfunc *)lua_topointer(L, 1);
  const GCfunc *inner = (const GCfunc *)lua_topointer(L, 2);
  const GCproto *p = funcproto(inner);
  const GCupval *shared, *c;
  ptrdiff_t k;
  BCPos pc;
  int children = 0;
  for (k = -1; k >= -(ptrdiff_t)funcproto(probe)->sizekgc; k--) {
    GCobj *o = proto_kgc(funcproto(probe), k);
    if (o->gch.gct == ~LJ_TPROTO && &o->pt == p) children++;
  }
  if (children != 1) return "the nested prototypes of a prototype";
  for (pc = 1; pc < funcproto(probe)->sizebc; pc++) {
    BCIns ins = proto_bc(funcproto(probe))[pc];
    if (bc_op(ins) == BC_FNEW && &proto_kgc(funcproto(probe), ~(ptrdiff_t)bc_d(ins))->pt == p)
      break;
  }
  if (pc == funcproto(probe)->sizebc) return "the instruction encoding";
  if (p->sizeuv != 2 || strcmp(hotlua_upvalue_name_at(p, 0), "shared") != 0 ||
      (proto_uv(p)[0] & ~PROTO_UV_IMMUTABLE) != 0 ||
      strcmp(hotlua_upvalue_name_at(p, 1), "c") != 0 ||
      (proto_uv(p)[1] & ~PROTO_UV_IMMUTABLE) != (PROTO_UV_LOCAL | 2))
    return "the upvalue descriptions of a prototype";
  if (!has_string_constant(p, "hotlua-probe") ||
      !has_string_constant(p, PROBE_LONG_CONSTANT))
    return "the constants of a prototype";
  shared = closure_cell(inner, 0);
  c = closure_cell(inner, 1);
  if (shared->gct != ~LJ_TUPVAL || c->gct != ~LJ_TUPVAL) return "the header of an upvalue";
  if (!shared->closed || uvval(shared) != &shared->tv || !tvisnumber(uvval(shared)) ||
      numberVnum(uvval(shared)) != 12345 || !c->closed || uvval(c) != &c->tv ||
      !tvisnumber(uvval(c)) || numberVnum(uvval(c)) != 2)
    return "the value of a closed upvalue";
  return NULL;
}

/* The coroutine (index 4) yielded from probe_yield, called by `suspended` (index 3). */
static const char *check_threads(lua_State *L) {
  lua_State *co = lua_tothread(L, 4);
  global_State *g;
  TValue *f;
  int frames = 0, found = 0;
  if (co->gct != ~LJ_TTHREAD || co->status != LUA_YIELD || L->status != LUA_OK)
    return "the header of a thread";
  if (mref(co->glref, void) == NULL || mref(co->glref, void) != mref(L->glref, void))
    return "the global state of a thread";
  if (L->top - L->base != lua_gettop(L)) return "the stack of a thread";
  g = G(L);
  if (gcref(g->mainthref) == NULL || gcref(g->mainthref)->gch.gct != ~LJ_TTHREAD ||
      mref(mainthread(g)->glref, void) != (void *)g)
    return "the main thread of the global state";
  for (f = frame_top(co); f != NULL && frames < 8; f = frame_below(co, f), frames++)
    if ((const void *)frame_lua_closure(f) == lua_topointer(L, 3)) found++;
  if (found != 1 || frames >= 8) return "the frames of a thread";
  return NULL;
}

/* The global state: its allocator, registry, the byte count the collector gives, and the
** newest objects on its list of all objects. */
static const char *check_global(lua_State *L) {
  global_State *g = G(L);
  void *ud;
  lua_Alloc alloc = lua_getallocf(L, &ud);
  size_t counted;
  GCobj *o;
  int seen = 0, found = 0;
  if (g->allocf != alloc || g->allocd != ud) return "the allocator of the global state";
  if (!tvistab(&g->registrytv) ||
      (const void *)tabV(&g->registrytv) != lua_topointer(L, LUA_REGISTRYINDEX))
    return "the registry of the global state";
  if (g->gc.state > GCSfinalize ||
      (curwhite(g) != LJ_GC_WHITE0 && curwhite(g) != LJ_GC_WHITE1))
    return "the collector's state";
  counted = counted_bytes(L);
  if ((size_t)g->gc.total != counted) return "the byte count of the global state";
  /* the coroutine was made last: it leads the list, and the functions follow within a few */
  for (o = gcref(g->gc.root); o != NULL && seen < 64; o = gcref(o->gch.nextgc), seen++) {
    if ((const void *)o == lua_topointer(L, 4) && o->gch.gct == ~LJ_TTHREAD) found |= 1;
    if ((const void *)o == lua_topointer(L, 2) && o->gch.gct == ~LJ_TFUNC) found |= 2;
  }
  if (found != 3) return "the list of all objects";
  return NULL;
}

/* hotlua_layout_check(): true when every field the shim uses holds what the public API says,
** else false and what disagreed. A lua_CFunction, run protected (it allocates). */
int hotlua_layout_check(lua_State *L) {
  lua_Debug ar;
  const char *wrong = NULL;
  probe_objects(L, probe_source, sizeof(probe_source) - 1, 3, 3);
  wrong = check_closure(L, 1, &ar);
  if (wrong == NULL) wrong = check_proto(L, 1, &ar, 2, 1);
  if (wrong == NULL) wrong = check_closure(L, 2, &ar);
  if (wrong == NULL) wrong = check_proto(L, 2, &ar, 0, 0);
  if (wrong == NULL) wrong = check_closure(L, 3, &ar);
  if (wrong == NULL) wrong = check_proto(L, 3, &ar, 1, 0);
  if (wrong == NULL) wrong = check_nesting(L);
  if (wrong == NULL) wrong = check_threads(L);
  if (wrong == NULL) wrong = check_global(L);
  return probe_verdict(L, wrong, "the GC64 LuaJIT 2.1 hotlua was built for");
}
