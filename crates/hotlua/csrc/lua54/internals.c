/* The few internal operations of Lua the shim needs, written over the structures alone.
**
** Lua keeps its internal functions (luaC_barrierback_, luaF_newLclosure, luaH_realasize...)
** out of the symbols a shared `liblua5.4` exports, so a C module loaded into a stock `lua5.4`
** cannot call them. With these, the shim calls nothing but the public C API and reads and
** writes only the structures whose layout layout.c proves before the first `inplace` reload:
** the same object file works in the program that vendors Lua and in a stock interpreter.
** Each function does what the Lua function named in its comment does in Lua 5.4.
*/

#include "backend.h"
#include "ltable.h"
#include "lauxlib.h"

/* The list link of a gray object of type `o->tt` (lgc.c's getgclist), or NULL for a type
** the collector never puts on a gray list. */
static GCObject **gray_link(GCObject *o) {
  switch (o->tt) {
    case LUA_VTABLE: return &gco2t(o)->gclist;
    case LUA_VLCL: return &gco2lcl(o)->gclist;
    case LUA_VCCL: return &gco2ccl(o)->gclist;
    case LUA_VTHREAD: return &gco2th(o)->gclist;
    case LUA_VPROTO: return &gco2p(o)->gclist;
    case LUA_VUSERDATA: return &gco2u(o)->gclist;
    default: return NULL;
  }
}

#define make_gray(o) ((o)->marked &= cast_byte(~(bitmask(BLACKBIT) | WHITEBITS)))
#define make_black(o) ((o)->marked = cast_byte(((o)->marked & ~WHITEBITS) | bitmask(BLACKBIT)))

/* lgc.c's reallymarkobject: marks white object `o`, to be visited later (on the gray list)
** or now (strings, upvalues, userdata without user values). */
static void mark_object(global_State *g, GCObject *o) {
  switch (o->tt) {
    case LUA_VSHRSTR: case LUA_VLNGSTR:
      make_black(o);
      return;
    case LUA_VUPVAL: {
      UpVal *uv = gco2upv(o);
      if (uv->v.p != &uv->u.value) make_gray(o);  /* open upvalues are kept gray */
      else make_black(o);
      if (iscollectable(uv->v.p) && iswhite(gcvalue(uv->v.p))) mark_object(g, gcvalue(uv->v.p));
      return;
    }
    case LUA_VUSERDATA:
      if (gco2u(o)->nuvalue == 0) {
        Table *mt = gco2u(o)->metatable;
        if (mt != NULL && iswhite(mt)) mark_object(g, obj2gco(mt));
        make_black(o);
        return;
      }
      break;
    default:
      break;
  }
  *gray_link(o) = g->gray;
  g->gray = o;
  make_gray(o);
}

/* luaC_barrier_: black `o` now points at `v`. While the collector keeps its invariant, `v`
** is marked (and, `o` being old in generational mode, made old too); in the sweep phase of
** incremental mode, `o` turns white instead. Invariant: `o` is live and has just been given
** a pointer to the live `v`. */
void hotlua_barrier(lua_State *L, GCObject *o, GCObject *v) {
  global_State *g = G(L);
  if (!isblack(o) || !iswhite(v)) return;
  if (keepinvariant(g)) {
    mark_object(g, v);
    if (isold(o)) setage(v, G_OLD0);
  } else if (g->gckind == KGC_INC) {
    o->marked = cast_byte((o->marked & ~(bitmask(BLACKBIT) | WHITEBITS | AGEBITS)) | luaC_white(g));
  }
}

/* luaC_barrierback_, for tables only (their traversal keeps a touched table on the
** generational gray lists; a closure's does not, so closures take hotlua_barrier): black
** table `t` is about to point at (or points at) white objects; the collector visits it again
** (in the atomic phase, or as a touched old object in generational mode) instead of marking
** each of them now. Invariant: `t` is a live table. */
void hotlua_table_barrier(lua_State *L, Table *t) {
  global_State *g = G(L);
  GCObject *o = obj2gco(t);
  if (!isblack(o)) return;
  if (getage(o) != G_TOUCHED2) {  /* else it is on a gray list already */
    t->gclist = g->grayagain;
    g->grayagain = o;
  }
  make_gray(o);
  if (isold(o)) setage(o, G_TOUCHED1);
}

/* luaF_getlocalname: the name of the `n`-th local (1-based) active at instruction `pc` of
** `p`, or NULL. */
const char *hotlua_local_name(const Proto *p, int n, int pc) {
  int i;
  for (i = 0; i < p->sizelocvars && p->locvars[i].startpc <= pc; i++) {
    if (pc < p->locvars[i].endpc && --n == 0) return getstr(p->locvars[i].varname);
  }
  return NULL;
}

/* luaH_realasize: the size of `t`'s array part. */
unsigned int hotlua_array_size(const Table *t) {
  unsigned int size = t->alimit;
  if (isrealasize(t) || ispow2(size)) return size;
  /* the smallest power of 2 not smaller than `size` */
  size |= size >> 1;
  size |= size >> 2;
  size |= size >> 4;
  size |= size >> 8;
  size |= size >> 16;
  return size + 1;
}

/* luaV_rawequalobj, except that an integer and a float are never equal: for staging, a
** global that went from 1 to 1.0 was written. */
int hotlua_raw_equal(const TValue *a, const TValue *b) {
  if (ttypetag(a) != ttypetag(b)) return 0;
  switch (ttypetag(a)) {
    case LUA_VNIL: case LUA_VFALSE: case LUA_VTRUE: return 1;
    case LUA_VNUMINT: return ivalue(a) == ivalue(b);
    case LUA_VNUMFLT: return luai_numeq(fltvalue(a), fltvalue(b));
    case LUA_VLIGHTUSERDATA: return pvalue(a) == pvalue(b);
    case LUA_VLCF: return fvalue(a) == fvalue(b);
    case LUA_VLNGSTR: {
      const TString *x = tsvalue(a), *y = tsvalue(b);
      return x == y || (x->u.lnglen == y->u.lnglen &&
                        memcmp(getstr(x), getstr(y), x->u.lnglen) == 0);
    }
    default: return gcvalue(a) == gcvalue(b);  /* short strings are interned */
  }
}
