/* Reading the prototypes of old and new functions, and their bytecode, for the pairing (see
** backend.h). The descriptions match those of ../lua54/proto.c in form; they are only ever
** compared with others made by this file. */

#include "backend.h"
#include "key.h"

/* The prototype of the Lua function at `idx` of L's stack, or NULL for anything else.
** Invariant: `idx` is a valid stack index of L. */
const GCproto *hotlua_proto_of(lua_State *L, int idx) {
  const GCfunc *fn;
  if (lua_type(L, idx) != LUA_TFUNCTION || lua_iscfunction(L, idx)) return NULL;
  /* lua_topointer gives a collectable object's own address: here the GCfunc */
  fn = (const GCfunc *)lua_topointer(L, idx);
  return isluafunc(fn) ? funcproto(fn) : NULL;
}

/* What lua_getinfo's 'S' gives of the Lua function at `idx`, read from its prototype without
** writing the chunk id lua_getinfo formats (see src/plan/facts.rs): its prototype, chunk name
** (`*source`, `*len`) and lines (lj_debug_getinfo's). Returns 0 for a C function or a main
** chunk, -1 for a prototype with no chunk name (the caller asks lua_getinfo), 1 otherwise.
** Invariant: `idx` is a valid stack index of L holding a function. */
int hotlua_function_source(lua_State *L, int idx, const GCproto **proto, const char **source,
                           size_t *len, int *first, int *last) {
  const GCproto *p = hotlua_proto_of(L, idx);
  GCstr *name;
  if (p == NULL || (p->firstline == 0 && p->numline != 0)) return 0;
  name = proto_chunkname(p);
  if (name == NULL) return -1;
  *proto = p;
  *source = strdata(name);
  *len = name->len;
  *first = (int)p->firstline;
  *last = (int)(p->firstline + p->numline);
  return 1;
}

/* The GCfunc address of the Lua function at `idx` (what lua_topointer returns), or NULL. */
const void *hotlua_closure_of(lua_State *L, int idx) {
  return hotlua_proto_of(L, idx) != NULL ? lua_topointer(L, idx) : NULL;
}

/* The constant index (for proto_kgc) of child `i` of `p`: children are the prototypes among
** the collectable constants, counted from index -1 down; 0 when there is no such child. */
static ptrdiff_t child_index(const GCproto *p, int i) {
  ptrdiff_t k;
  for (k = -1; k >= -(ptrdiff_t)p->sizekgc; k--)
    if (proto_kgc(p, k)->gch.gct == ~LJ_TPROTO && i-- == 0) return k;
  return 0;
}

/* Number of prototypes nested directly in `p`. Invariant: `p` is a live GCproto. */
int hotlua_proto_nchildren(const GCproto *p) {
  int n = 0;
  ptrdiff_t k;
  for (k = -1; k >= -(ptrdiff_t)p->sizekgc; k--)
    if (proto_kgc(p, k)->gch.gct == ~LJ_TPROTO) n++;
  return n;
}

/* Child `i` of `p` (0-based). Invariant: 0 <= i < hotlua_proto_nchildren(p). */
const GCproto *hotlua_proto_child(const GCproto *p, int i) {
  return gco2pt(proto_kgc(p, child_index(p, i)));
}

/* Number of upvalues the prototype declares. */
int hotlua_proto_nupvalues(const GCproto *p) { return p->sizeuv; }

/* Name of upvalue `i` of `p` and its length, or NULL when the code is stripped. */
const char *hotlua_proto_upvalue_name(const GCproto *p, int i, size_t *len) {
  const char *name;
  if (proto_uvinfo(p) == NULL) return NULL;
  name = hotlua_upvalue_name_at(p, i);
  *len = strlen(name);
  return name;
}

/* Where upvalue `i` of `p` comes from: returns its slot in the enclosing function's frame
** (`*instack` = 1: a local of the enclosing call) or its index among the enclosing function's
** upvalues (`*instack` = 0). */
int hotlua_proto_upvalue_origin(const GCproto *p, int i, int *instack) {
  uint16_t uv = proto_uv(p)[i];
  *instack = (uv & PROTO_UV_LOCAL) != 0;
  return *instack ? (uv & 0xff) : uv;
}

/* Upvalue cell `i` of the Lua function `cl` (an address lua_topointer gave).
** Invariant: `cl` is a live Lua function and 0 <= i < its number of upvalues. */
const void *hotlua_closure_cell(const void *cl, int i) {
  return closure_cell((const GCfunc *)cl, i);
}

/* The line where the function of `p` is defined (0 for a main chunk). */
int hotlua_proto_line(const GCproto *p) { return (int)p->firstline; }

/* The chunk name of `p`, or NULL. */
const char *hotlua_proto_source(const GCproto *p, size_t *len) {
  GCstr *name = proto_chunkname(p);
  if (name == NULL) return NULL;
  *len = name->len;
  return strdata(name);
}

/* Whether instruction `op` writes its slot A: its A operand is a destination (the modes of
** lj_bc.h's instruction table, whose compiled form a shared libluajit does not export). */
static int sets_slot_a(BCOp op) {
  switch (op) {
#define WRITES_A(name, ma, mb, mc, mm) \
  case BC_##name: return BCM##ma == BCMdst;
    BCDEF(WRITES_A)
#undef WRITES_A
    default: return 0;
  }
}

static size_t put_string_constant(char *buf, size_t pos, size_t cap, const GCproto *p,
                                  BCReg d) {
  GCobj *k = proto_kgc(p, ~(ptrdiff_t)d);
  if (k->gch.gct != ~LJ_TSTR) return put_str(buf, pos, cap, "?");
  return put_bytes(buf, pos, cap, strdata(&k->str), k->str.len);
}

static size_t put_upvalue(char *buf, size_t pos, size_t cap, const GCproto *p, BCReg i) {
  return put_str(buf, pos, cap, i < p->sizeuv && proto_uvinfo(p) != NULL
                                    ? hotlua_upvalue_name_at(p, (int)i) : NULL);
}

/* The instruction that last wrote slot `slot` before instruction `pc`, looking back at most 16
** instructions (the header at 0 excluded) without following jumps, or 0. */
static BCPos last_writer(const GCproto *p, BCReg slot, BCPos pc) {
  BCPos q;
  for (q = pc; q-- > 1 && q + 16 >= pc;)
    if (sets_slot_a(bc_op(proto_bc(p)[q])) && bc_a(proto_bc(p)[q]) == slot) return q;
  return 0;
}

/* Names the value slot `slot` holds before instruction `pc`: the instruction that last loaded
** it (a global, a field, an upvalue, a local). Scans back at most 16 instructions; jumps are
** not followed, so this is a name for pairing, not a proof. */
static size_t put_slot_source(char *buf, size_t pos, size_t cap, const GCproto *p, BCReg slot,
                              BCPos pc) {
  BCPos q;
  const char *local = hotlua_local_name(p, (int)slot, pc);
  if (local != NULL) {
    pos = put_str(buf, pos, cap, "local ");
    return put_str(buf, pos, cap, local);
  }
  if ((q = last_writer(p, slot, pc)) != 0) {
    BCIns i = proto_bc(p)[q];
    switch (bc_op(i)) {
      case BC_GGET:
        pos = put_str(buf, pos, cap, "_ENV.");
        return put_string_constant(buf, pos, cap, p, bc_d(i));
      case BC_TGETS:
        pos = put_slot_source(buf, pos, cap, p, bc_b(i), q);
        pos = put_str(buf, pos, cap, ".");
        return put_string_constant(buf, pos, cap, p, bc_c(i));
      case BC_UGET:
        pos = put_str(buf, pos, cap, "upvalue ");
        return put_upvalue(buf, pos, cap, p, bc_d(i));
      case BC_MOV:
        return put_slot_source(buf, pos, cap, p, bc_d(i), q);
      default:
        return put_str(buf, pos, cap, "?");
    }
  }
  return put_str(buf, pos, cap, "?");
}

/* Writes the constant slot `slot` holds before instruction `pc`, if the instruction that last
** loaded it (within 16 instructions) loads a constant: strings quoted, numbers, booleans and
** nil; "_" for anything else. */
static size_t put_slot_constant(char *buf, size_t pos, size_t cap, const GCproto *p,
                                BCReg slot, BCPos pc) {
  BCPos q;
  char number[48];
  if ((q = last_writer(p, slot, pc)) != 0) {
    BCIns i = proto_bc(p)[q];
    switch (bc_op(i)) {
      case BC_KSTR:
        pos = put_str(buf, pos, cap, "\"");
        pos = put_string_constant(buf, pos, cap, p, bc_d(i));
        return put_str(buf, pos, cap, "\"");
      case BC_KSHORT:
        snprintf(number, sizeof number, "%d", (int)(int16_t)bc_d(i));
        return put_str(buf, pos, cap, number);
      case BC_KNUM: {
        cTValue *k = proto_knumtv(p, bc_d(i));
        if (tvisint(k)) snprintf(number, sizeof number, "%d", (int)intV(k));
        else snprintf(number, sizeof number, "%.17g", numV(k));
        return put_str(buf, pos, cap, number);
      }
      case BC_KPRI:
        return put_str(buf, pos, cap, bc_d(i) == 0 ? "nil" : bc_d(i) == 1 ? "false" : "true");
      default:
        return put_str(buf, pos, cap, "_");
    }
  }
  return put_str(buf, pos, cap, "_");
}

/* Writes "(a1, a2, ...)": the arguments of the call at `call` (function in slot `func`, the
** arguments from func + 1 + LJ_FR2) other than slot `self_slot` (the closure being
** described, written "fn"), each as its constant or "_". With a variable number of arguments
** (CALLM), those up to `self_slot`. */
static size_t put_call_arguments(char *buf, size_t pos, size_t cap, const GCproto *p,
                                 BCPos call, BCReg func, BCReg self_slot) {
  BCIns i = proto_bc(p)[call];
  BCReg first = func + 1 + LJ_FR2;
  BCReg last = bc_op(i) == BC_CALL    ? first + bc_c(i) - 2
               : bc_op(i) == BC_CALLT ? first + bc_d(i) - 2
                                      : self_slot;
  BCReg r;
  pos = put_str(buf, pos, cap, "(");
  for (r = first; r <= last; r++) {
    if (r > first) pos = put_str(buf, pos, cap, ", ");
    pos = r == self_slot ? put_str(buf, pos, cap, "fn")
                         : put_slot_constant(buf, pos, cap, p, r, call);
  }
  return put_str(buf, pos, cap, ")");
}

/* Describes where the code of `p` stores the closure of its child `child`: the local it
** initialises, the field, global or upvalue it is assigned to, `return`, or the argument of a
** named call it is passed to, with that call's constant arguments. The description does not
** depend on the child's index or line, so siblings pair by it whatever their order. Writes at
** most `cap` bytes to `buf` and returns the length; 0 when `p` never instantiates `child`.
** Invariant: `p` is a live GCproto and 0 <= child < hotlua_proto_nchildren(p). */
size_t hotlua_child_key(const GCproto *p, int child, char *buf, size_t cap) {
  BCReg d = (BCReg)~child_index(p, child);
  BCPos pc, q;
  BCReg slot;
  size_t pos = 0;
  const char *local;
  for (pc = 1; pc < p->sizebc; pc++) {
    BCIns i = proto_bc(p)[pc];
    if (bc_op(i) == BC_FNEW && bc_d(i) == d) break;
  }
  if (pc >= p->sizebc) return 0;
  slot = bc_a(proto_bc(p)[pc]);
  if ((local = hotlua_local_name(p, (int)slot, pc + 1)) != NULL) {
    pos = put_str(buf, pos, cap, "local ");
    return put_str(buf, pos, cap, local);
  }
  if (pc + 1 < p->sizebc) {
    BCIns n = proto_bc(p)[pc + 1];
    switch (bc_op(n)) {
      case BC_TSETS:
        if (bc_a(n) != slot) break;
        pos = put_str(buf, pos, cap, "field ");
        pos = put_slot_source(buf, pos, cap, p, bc_b(n), pc);
        pos = put_str(buf, pos, cap, ".");
        return put_string_constant(buf, pos, cap, p, bc_c(n));
      case BC_GSET:
        if (bc_a(n) != slot) break;
        pos = put_str(buf, pos, cap, "field _ENV.");
        return put_string_constant(buf, pos, cap, p, bc_d(n));
      case BC_USETV:
        if (bc_d(n) != slot) break;
        pos = put_str(buf, pos, cap, "upvalue ");
        return put_upvalue(buf, pos, cap, p, bc_a(n));
      case BC_MOV:
        if (bc_d(n) != slot || (local = hotlua_local_name(p, (int)bc_a(n), pc + 2)) == NULL)
          break;
        pos = put_str(buf, pos, cap, "local ");
        return put_str(buf, pos, cap, local);
      case BC_RET1: case BC_RET:
        if (bc_a(n) == slot) return put_str(buf, pos, cap, "return");
        break;
      default:
        break;
    }
  }
  /* A temporary: the argument of the next call whose function sits below it. */
  for (q = pc + 1; q < p->sizebc; q++) {
    BCIns n = proto_bc(p)[q];
    BCOp op = bc_op(n);
    if ((op == BC_CALL || op == BC_CALLT || op == BC_CALLM || op == BC_CALLMT) &&
        bc_a(n) < slot) {
      char number[16];
      snprintf(number, sizeof number, "%d", (int)(slot - bc_a(n) - LJ_FR2));
      pos = put_str(buf, pos, cap, "argument ");
      pos = put_str(buf, pos, cap, number);
      pos = put_str(buf, pos, cap, " of ");
      pos = put_slot_source(buf, pos, cap, p, bc_a(n), pc);
      return put_call_arguments(buf, pos, cap, p, q, bc_a(n), slot);
    }
  }
  return put_str(buf, pos, cap, "?");
}

int hotlua_proto_same_body(const GCproto *a, const GCproto *b);

/* True when the collectable constants `a` and `b` are equal: strings by content, prototypes
** by body (recursively), anything else (tables of constants, cdata) never. */
static int same_constant(GCobj *a, GCobj *b) {
  if (a->gch.gct != b->gch.gct) return 0;
  if (a->gch.gct == ~LJ_TSTR)
    return a->str.len == b->str.len && memcmp(strdata(&a->str), strdata(&b->str), a->str.len) == 0;
  if (a->gch.gct == ~LJ_TPROTO) return hotlua_proto_same_body(&a->pt, &b->pt);
  return 0;
}

/* True when `a` and `b` have the same body: parameters, bytecode, constants, upvalue names
** and, recursively, nested prototypes. Running one in place of the other changes nothing, so
** two siblings whose places in the source are ambiguous may still pair this way.
** Invariant: both are live GCprotos. Recursion depth is bounded by the nesting of functions
** in the source, which the parser limits (LJ_MAX_XLEVEL). */
int hotlua_proto_same_body(const GCproto *a, const GCproto *b) {
  ptrdiff_t k;
  int i;
  if (a->numparams != b->numparams || (a->flags & PROTO_VARARG) != (b->flags & PROTO_VARARG) ||
      a->sizebc != b->sizebc || a->sizekgc != b->sizekgc || a->sizekn != b->sizekn ||
      a->sizeuv != b->sizeuv)
    return 0;
  /* The first instruction is the function header, which the JIT may patch (JFUNCF). */
  if (memcmp(proto_bc(a) + 1, proto_bc(b) + 1, sizeof(BCIns) * (a->sizebc - 1)) != 0) return 0;
  if (memcmp(mref(a->k, TValue), mref(b->k, TValue), sizeof(TValue) * a->sizekn) != 0) return 0;
  for (k = -1; k >= -(ptrdiff_t)a->sizekgc; k--)
    if (!same_constant(proto_kgc(a, k), proto_kgc(b, k))) return 0;
  if (proto_uvinfo(a) == NULL || proto_uvinfo(b) == NULL) return 0;
  for (i = 0; i < a->sizeuv; i++)
    if (proto_uv(a)[i] != proto_uv(b)[i] ||
        strcmp(hotlua_upvalue_name_at(a, i), hotlua_upvalue_name_at(b, i)) != 0)
      return 0;
  return 1;
}

/* Writes the names of `p`'s parameters, comma-separated, into buf[0..cap) and returns the
** length ("?" for a stripped prototype). Parameters are the first locals, live from pc 0. */
size_t hotlua_proto_params(const GCproto *p, char *buf, size_t cap) {
  size_t pos = 0;
  int i;
  for (i = 0; i < p->numparams; i++) {
    const char *name = hotlua_local_name(p, i, 0);
    if (i > 0) pos = put_str(buf, pos, cap, ",");
    if (name == NULL) return put_str(buf, pos, cap, "?");
    pos = put_str(buf, pos, cap, name);
  }
  if (p->flags & PROTO_VARARG) pos = put_str(buf, pos, cap, i > 0 ? ",..." : "...");
  return pos;
}
