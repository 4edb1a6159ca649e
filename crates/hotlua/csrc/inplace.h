/*
** The `inplace` engine's C side: shared by proto.c (reading prototypes, for the pairing in
** src/switch/inplace/pairing.rs), scan.c (the collector scan that retargets closures),
** collector.c (the collector's debt across hotlua's pause, for src/collector.rs) and tables.c
** (staging's slot-for-slot copies, for src/slots.rs).
**
** Compiled by crates/hotlua/build.rs against the internal headers of the exact Lua that mlua
** vendors (the Lua 5.4 source folder of the `lua-src` crate whose public headers mlua-sys
** exported), and linked into the same program as that Lua. Every function reads or writes
** the collector's own structures (Proto, LClosure, CallInfo, the `allgc` list), so it is only
** valid for that one release: the check below stops the build on any other.
**
** Callers (src/switch/inplace/) hold the invariants every function relies on:
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

#if LUA_VERSION_NUM != 504
#error "hotlua's inplace engine is written for Lua 5.4"
#endif
#if !defined(HOTLUA_EXPECTED_RELEASE) || LUA_VERSION_RELEASE_NUM != HOTLUA_EXPECTED_RELEASE
#error "hotlua's inplace engine must be compiled against the Lua release mlua vendors"
#endif

#endif
