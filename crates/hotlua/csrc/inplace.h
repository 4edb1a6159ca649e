/*
** The `inplace` engine's C side: shared by proto.c (reading prototypes, for the pairing in
** src/switch/inplace/pairing.rs), scan.c (the collector scan that retargets closures),
** collector.c (the collector's debt across hotlua's pause, for src/collector.rs), tables.c
** (staging's slot-for-slot copies, for src/slots.rs), internals.c (the few internal
** operations of Lua these need) and layout.c (the proof of the layout they rely on).
**
** Compiled by crates/hotlua/build.rs against the internal headers of a Lua 5.4 release (the
** one mlua vendors, or, for the C module, the newest 5.4 of the `lua-src` crate). The shim
** calls only Lua's public C API; it reads and writes the collector's own structures (Proto,
** LClosure, CallInfo, Table, the `allgc` list), whose layout the Lua that runs it may not
** share: a stock `lua5.4` of another release or build. layout.c proves that layout before
** the first `inplace` reload of a state (src/switch/inplace/layout.rs) and nothing else runs
** until it has.
**
** Callers (src/switch/inplace/) hold the invariants every function relies on:
**   - the layout is proven for this state (hotlua_layout_check returned 1);
**   - the collector is stopped (`lua_gc(L, LUA_GCSTOP)`) for the whole reload, so no object
**     is freed or moved while a pointer read here is used; objects already dead but not yet
**     swept (a cycle stopped in its sweep phase) are skipped with `isdead`;
**   - Proto pointers handed back and forth stay alive: they belong to closures the caller
**     holds references to (the planner's old and new functions) or are children of those;
**   - `hotlua_scan_prepare` runs inside a protected call (it can raise "not enough memory");
**     nothing runs Lua code between it and `hotlua_scan_commit` or `hotlua_scan_abandon`.
*/

#ifndef HOTLUA_INPLACE_H
#define HOTLUA_INPLACE_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lua.h"

#include "ldebug.h"
#include "ldo.h"
#include "lfunc.h"
#include "lgc.h"
#include "lobject.h"
#include "lopcodes.h"
#include "lstate.h"
#include "lstring.h"
/* after the internal headers: it defines `lua_assert` when they have not, which turns their
** `check_exp` accessors into expressions that are not lvalues */
#include "lauxlib.h"

#if LUA_VERSION_NUM != 504
#error "hotlua's inplace engine is written for Lua 5.4"
#endif
#if !defined(HOTLUA_EXPECTED_RELEASE) || LUA_VERSION_RELEASE_NUM != HOTLUA_EXPECTED_RELEASE
#error "hotlua's inplace engine must be compiled against the Lua release build.rs chose"
#endif

/* The length of string `s` in every 5.4 release: 5.4.4 tells a long string by its tag, 5.4.9
** by `shrlen == 0xFF` (the `tsslen` of the headers the shim was compiled with); the tag works
** in both. */
#define hotlua_strlen(s) ((s)->tt == LUA_VSHRSTR ? (size_t)(s)->shrlen : (s)->u.lnglen)

/* internals.c */
void hotlua_barrier_back(lua_State *L, GCObject *o, GCObject **gclist);
LClosure *hotlua_new_closure(lua_State *L, int n);
const char *hotlua_local_name(const Proto *p, int n, int pc);
unsigned int hotlua_array_size(const Table *t);
int hotlua_raw_equal(const TValue *a, const TValue *b);

#endif
