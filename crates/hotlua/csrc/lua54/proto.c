/* Reading the prototypes of old and new functions, for the pairing (see backend.h). */

#include "backend.h"
#include "key.h"

/* The prototype of the Lua closure at `idx` of L's stack, or NULL for anything else.
** Invariant: `idx` is a valid stack index of L. */
const Proto *hotlua_proto_of(lua_State *L, int idx) {
  if (lua_type(L, idx) != LUA_TFUNCTION || lua_iscfunction(L, idx)) return NULL;
  /* lua_topointer gives a collectable object's own address: here the LClosure */
  return ((const LClosure *)lua_topointer(L, idx))->p;
}

/* What lua_getinfo's 'S' gives of the Lua function at `idx`, read from its prototype without
** writing the chunk id lua_getinfo formats (see src/plan/facts.rs): its prototype, chunk name
** (`*source`, `*len`) and lines. Returns 0 for a C function or a main chunk, -1 for a
** prototype with no chunk name (the caller asks lua_getinfo), 1 otherwise.
** Invariant: `idx` is a valid stack index of L holding a function. */
int hotlua_function_source(lua_State *L, int idx, const Proto **proto, const char **source,
                           size_t *len, int *first, int *last) {
  const Proto *p = hotlua_proto_of(L, idx);
  if (p == NULL || p->linedefined == 0) return 0;
  if (p->source == NULL) return -1;
  *proto = p;
  *source = getstr(p->source);
  *len = hotlua_strlen(p->source);
  *first = p->linedefined;
  *last = p->lastlinedefined;
  return 1;
}

/* The LClosure address of the Lua closure at `idx` (what lua_topointer returns), or NULL. */
const void *hotlua_closure_of(lua_State *L, int idx) {
  if (lua_type(L, idx) != LUA_TFUNCTION || lua_iscfunction(L, idx)) return NULL;
  return lua_topointer(L, idx);
}

/* Number of prototypes nested directly in `p`. Invariant: `p` is a live Proto. */
int hotlua_proto_nchildren(const Proto *p) { return p->sizep; }

/* Child `i` of `p` (0-based). Invariant: 0 <= i < p->sizep. */
const Proto *hotlua_proto_child(const Proto *p, int i) { return p->p[i]; }

/* Number of upvalues the prototype declares. */
int hotlua_proto_nupvalues(const Proto *p) { return p->sizeupvalues; }

/* Name of upvalue `i` of `p` and its length, or NULL when the code is stripped.
** Names are compared by content by the caller: long names are not interned. */
const char *hotlua_proto_upvalue_name(const Proto *p, int i, size_t *len) {
  TString *name = p->upvalues[i].name;
  if (name == NULL) return NULL;
  *len = hotlua_strlen(name);
  return getstr(name);
}

/* Where upvalue `i` of `p` comes from: returns its index in the enclosing function's
** registers (`*instack` = 1: a local of the enclosing call) or upvalues (`*instack` = 0). */
int hotlua_proto_upvalue_origin(const Proto *p, int i, int *instack) {
  *instack = p->upvalues[i].instack;
  return p->upvalues[i].idx;
}

/* Upvalue cell `i` of the Lua closure `cl` (an address lua_topointer gave).
** Invariant: `cl` is a live LClosure and 0 <= i < cl->nupvalues. */
const void *hotlua_closure_cell(const void *cl, int i) {
  return ((const LClosure *)cl)->upvals[i];
}

/* The line where the function of `p` is defined (0 for a main chunk). */
int hotlua_proto_line(const Proto *p) { return p->linedefined; }

/* The chunk name of `p` (its `source`), or NULL. */
const char *hotlua_proto_source(const Proto *p, size_t *len) {
  if (p->source == NULL) return NULL;
  *len = hotlua_strlen(p->source);
  return getstr(p->source);
}

/* Writes the string constant `k` (or "?" for any other constant) into buf[pos..cap). */
static size_t put_const(char *buf, size_t pos, size_t cap, const TValue *k) {
  if (!ttisstring(k)) return put_str(buf, pos, cap, "?");
  return put_bytes(buf, pos, cap, getstr(tsvalue(k)), hotlua_strlen(tsvalue(k)));
}

static size_t put_upvalue(char *buf, size_t pos, size_t cap, const Proto *p, int i) {
  TString *name = (i < p->sizeupvalues) ? p->upvalues[i].name : NULL;
  if (name == NULL) return put_str(buf, pos, cap, "?");
  return put_bytes(buf, pos, cap, getstr(name), hotlua_strlen(name));
}

/* Whether instruction `op` writes its register A (lopcodes.c's A mode, whose table a stock
** liblua does not export): every 5.4 instruction but these stores, tests, jumps and returns. */
static int sets_register_a(OpCode op) {
  switch (op) {
    case OP_SETUPVAL: case OP_SETTABUP: case OP_SETTABLE: case OP_SETI: case OP_SETFIELD:
    case OP_MMBIN: case OP_MMBINI: case OP_MMBINK: case OP_CLOSE: case OP_TBC: case OP_JMP: case OP_EQ: case OP_LT: case OP_LE: case OP_EQK:
    case OP_EQI: case OP_LTI: case OP_LEI: case OP_GTI: case OP_GEI: case OP_TEST:
    case OP_RETURN: case OP_RETURN0: case OP_RETURN1: case OP_TFORPREP: case OP_TFORCALL:
    case OP_SETLIST: case OP_EXTRAARG:
      return 0;
    default:
      return 1;
  }
}

/* The instruction that last wrote register `reg` before instruction `pc`, looking back at most
** 16 instructions without following jumps, or -1. */
static int last_writer(const Proto *p, int reg, int pc) {
  int q;
  for (q = pc - 1; q >= 0 && q >= pc - 16; q--)
    if (sets_register_a(GET_OPCODE(p->code[q])) && GETARG_A(p->code[q]) == reg) return q;
  return -1;
}

/* Names the value register `reg` holds before instruction `pc`: the instruction that last
** loaded it (a global, a field, a method, an upvalue, a local). Scans back at most 16
** instructions; jumps are not followed, so this is a name for pairing, not a proof. */
static size_t put_register_source(char *buf, size_t pos, size_t cap, const Proto *p, int reg,
                                  int pc) {
  int q;
  const char *local = hotlua_local_name(p, reg + 1, pc);
  if (local != NULL) {
    pos = put_str(buf, pos, cap, "local ");
    return put_str(buf, pos, cap, local);
  }
  if ((q = last_writer(p, reg, pc)) >= 0) {
    Instruction i = p->code[q];
    switch (GET_OPCODE(i)) {
      case OP_GETTABUP:
        pos = put_upvalue(buf, pos, cap, p, GETARG_B(i));
        pos = put_str(buf, pos, cap, ".");
        return put_const(buf, pos, cap, &p->k[GETARG_C(i)]);
      case OP_GETFIELD:
        pos = put_register_source(buf, pos, cap, p, GETARG_B(i), q);
        pos = put_str(buf, pos, cap, ".");
        return put_const(buf, pos, cap, &p->k[GETARG_C(i)]);
      case OP_SELF:
        pos = put_register_source(buf, pos, cap, p, GETARG_B(i), q);
        pos = put_str(buf, pos, cap, ":");
        if (GETARG_k(i)) return put_const(buf, pos, cap, &p->k[GETARG_C(i)]);
        return put_str(buf, pos, cap, "?");
      case OP_GETUPVAL:
        pos = put_str(buf, pos, cap, "upvalue ");
        return put_upvalue(buf, pos, cap, p, GETARG_B(i));
      case OP_MOVE:
        return put_register_source(buf, pos, cap, p, GETARG_B(i), q);
      default:
        return put_str(buf, pos, cap, "?");
    }
  }
  return put_str(buf, pos, cap, "?");
}

/* Writes the constant register `reg` holds before instruction `pc`, if the instruction that
** last loaded it (within 16 instructions) loads a constant: strings quoted, numbers, booleans
** and nil; "_" for anything else. */
static size_t put_register_constant(char *buf, size_t pos, size_t cap, const Proto *p, int reg,
                                    int pc) {
  int q;
  char number[48];
  if ((q = last_writer(p, reg, pc)) >= 0) {
    Instruction i = p->code[q];
    const TValue *k = NULL;
    switch (GET_OPCODE(i)) {
      case OP_LOADK: k = &p->k[GETARG_Bx(i)]; break;
      case OP_LOADI:
        snprintf(number, sizeof number, "%d", GETARG_sBx(i));
        return put_str(buf, pos, cap, number);
      case OP_LOADF:
        snprintf(number, sizeof number, "%d.0", GETARG_sBx(i));
        return put_str(buf, pos, cap, number);
      case OP_LOADFALSE: return put_str(buf, pos, cap, "false");
      case OP_LOADTRUE: return put_str(buf, pos, cap, "true");
      case OP_LOADNIL: return put_str(buf, pos, cap, "nil");
      default: return put_str(buf, pos, cap, "_");
    }
    if (ttisstring(k)) {
      pos = put_str(buf, pos, cap, "\"");
      pos = put_const(buf, pos, cap, k);
      return put_str(buf, pos, cap, "\"");
    }
    if (ttisinteger(k)) {
      snprintf(number, sizeof number, LUA_INTEGER_FMT, (LUAI_UACINT)ivalue(k));
      return put_str(buf, pos, cap, number);
    }
    if (ttisfloat(k)) {
      snprintf(number, sizeof number, "%.17g", (double)fltvalue(k));
      return put_str(buf, pos, cap, number);
    }
    return put_str(buf, pos, cap, "_");
  }
  return put_str(buf, pos, cap, "_");
}

/* Writes "(a1, a2, ...)": the arguments of the call at `call` (function in register `func`)
** other than register `self_reg` (the closure being described, written "fn"), each as its
** constant or "_". With a variable number of arguments (B = 0), those up to `self_reg`. */
static size_t put_call_arguments(char *buf, size_t pos, size_t cap, const Proto *p, int call,
                                 int func, int self_reg) {
  int b = GETARG_B(p->code[call]);
  int last = b != 0 ? func + b - 1 : self_reg;
  int r;
  pos = put_str(buf, pos, cap, "(");
  for (r = func + 1; r <= last; r++) {
    if (r > func + 1) pos = put_str(buf, pos, cap, ", ");
    pos = r == self_reg ? put_str(buf, pos, cap, "fn")
                        : put_register_constant(buf, pos, cap, p, r, call);
  }
  return put_str(buf, pos, cap, ")");
}

/* Describes where the code of `p` stores the closure of its child `child`: the local it
** initialises, the field, global or upvalue it is assigned to, `return`, or the argument of a
** named call it is passed to, with that call's constant arguments (`em:on("open", fn)` and
** `em:on("close", fn)` are two places). The description does not depend on the child's index
** or line, so siblings pair by it whatever their order. Writes at most `cap` bytes to `buf` and returns
** the length; 0 when `p` never instantiates `child`.
** Invariant: `p` is a live Proto and 0 <= child < p->sizep. */
size_t hotlua_child_key(const Proto *p, int child, char *buf, size_t cap) {
  int pc, reg, q;
  size_t pos = 0;
  for (pc = 0; pc < p->sizecode; pc++) {
    Instruction i = p->code[pc];
    if (GET_OPCODE(i) == OP_CLOSURE && GETARG_Bx(i) == child) break;
  }
  if (pc == p->sizecode) return 0;
  reg = GETARG_A(p->code[pc]);
  {
    const char *local = hotlua_local_name(p, reg + 1, pc + 1);
    if (local != NULL) {
      pos = put_str(buf, pos, cap, "local ");
      return put_str(buf, pos, cap, local);
    }
  }
  if (pc + 1 < p->sizecode) {
    Instruction n = p->code[pc + 1];
    switch (GET_OPCODE(n)) {
      case OP_SETFIELD:
        if (!GETARG_k(n) && GETARG_C(n) == reg) {
          pos = put_str(buf, pos, cap, "field ");
          pos = put_register_source(buf, pos, cap, p, GETARG_A(n), pc);
          pos = put_str(buf, pos, cap, ".");
          return put_const(buf, pos, cap, &p->k[GETARG_B(n)]);
        }
        break;
      case OP_SETTABUP:
        if (!GETARG_k(n) && GETARG_C(n) == reg) {
          pos = put_str(buf, pos, cap, "field ");
          pos = put_upvalue(buf, pos, cap, p, GETARG_A(n));
          pos = put_str(buf, pos, cap, ".");
          return put_const(buf, pos, cap, &p->k[GETARG_B(n)]);
        }
        break;
      case OP_SETUPVAL:
        if (GETARG_A(n) == reg) {
          pos = put_str(buf, pos, cap, "upvalue ");
          return put_upvalue(buf, pos, cap, p, GETARG_B(n));
        }
        break;
      case OP_MOVE:
        if (GETARG_B(n) == reg) {
          const char *local = hotlua_local_name(p, GETARG_A(n) + 1, pc + 2);
          if (local != NULL) {
            pos = put_str(buf, pos, cap, "local ");
            return put_str(buf, pos, cap, local);
          }
        }
        break;
      case OP_RETURN1:
        if (GETARG_A(n) == reg) return put_str(buf, pos, cap, "return");
        break;
      case OP_RETURN:
        if (GETARG_A(n) == reg) return put_str(buf, pos, cap, "return");
        break;
      default:
        break;
    }
  }
  /* A temporary: the argument of the next call whose function sits below it. */
  for (q = pc + 1; q < p->sizecode; q++) {
    Instruction n = p->code[q];
    OpCode op = GET_OPCODE(n);
    if ((op == OP_CALL || op == OP_TAILCALL) && GETARG_A(n) < reg) {
      char digits[16];
      int arg = reg - GETARG_A(n);
      int d = 0;
      pos = put_str(buf, pos, cap, "argument ");
      do {
        digits[d++] = (char)('0' + arg % 10);
        arg /= 10;
      } while (arg > 0 && d < 15);
      while (d > 0 && pos < cap) buf[pos++] = digits[--d];
      pos = put_str(buf, pos, cap, " of ");
      pos = put_register_source(buf, pos, cap, p, GETARG_A(n), pc);
      return put_call_arguments(buf, pos, cap, p, q, GETARG_A(n), reg);
    }
  }
  return put_str(buf, pos, cap, "?");
}

/* True when two constants are equal values (strings by content). */
static int same_constant(const TValue *a, const TValue *b) {
  if (ttypetag(a) != ttypetag(b)) return 0;
  switch (ttypetag(a)) {
    case LUA_VNIL: case LUA_VFALSE: case LUA_VTRUE: return 1;
    case LUA_VNUMINT: return ivalue(a) == ivalue(b);
    case LUA_VNUMFLT: return memcmp(&fltvalue(a), &fltvalue(b), sizeof(lua_Number)) == 0;
    case LUA_VSHRSTR: case LUA_VLNGSTR:
      return hotlua_strlen(tsvalue(a)) == hotlua_strlen(tsvalue(b)) &&
             memcmp(getstr(tsvalue(a)), getstr(tsvalue(b)), hotlua_strlen(tsvalue(a))) == 0;
    default: return 0;
  }
}

/* True when `a` and `b` have the same body: parameters, code, constants, upvalue names and,
** recursively, nested prototypes. Running one in place of the other changes nothing, so two
** siblings whose places in the source are ambiguous may still pair this way.
** Invariant: both are live Protos. Recursion depth is bounded by the nesting of functions in
** the source, which the Lua parser limits (LUAI_MAXCCALLS). */
int hotlua_proto_same_body(const Proto *a, const Proto *b) {
  int i;
  if (a->numparams != b->numparams || a->is_vararg != b->is_vararg ||
      a->sizecode != b->sizecode || a->sizek != b->sizek || a->sizep != b->sizep ||
      a->sizeupvalues != b->sizeupvalues)
    return 0;
  if (memcmp(a->code, b->code, sizeof(Instruction) * (size_t)a->sizecode) != 0) return 0;
  for (i = 0; i < a->sizek; i++)
    if (!same_constant(&a->k[i], &b->k[i])) return 0;
  for (i = 0; i < a->sizeupvalues; i++) {
    TString *x = a->upvalues[i].name, *y = b->upvalues[i].name;
    if (x == NULL || y == NULL || hotlua_strlen(x) != hotlua_strlen(y) ||
        memcmp(getstr(x), getstr(y), hotlua_strlen(x)) != 0)
      return 0;
  }
  for (i = 0; i < a->sizep; i++)
    if (!hotlua_proto_same_body(a->p[i], b->p[i])) return 0;
  return 1;
}

/* Writes the names of `p`'s parameters, comma-separated, into buf[0..cap) and returns the
** length ("?" for a stripped prototype). Parameters are the first local variables. */
size_t hotlua_proto_params(const Proto *p, char *buf, size_t cap) {
  size_t pos = 0;
  int i;
  for (i = 0; i < p->numparams; i++) {
    TString *name = i < p->sizelocvars ? p->locvars[i].varname : NULL;
    if (i > 0) pos = put_str(buf, pos, cap, ",");
    if (name == NULL) return put_str(buf, pos, cap, "?");
    pos = put_str(buf, pos, cap, getstr(name));
  }
  if (p->is_vararg) pos = put_str(buf, pos, cap, i > 0 ? ",..." : "...");
  return pos;
}
