/* The collector's debt across hotlua's pause (src/collector.rs).
**
** `lua_gc(L, LUA_GCRESTART)` sets the debt to zero, so the first allocation after a reload
** starts a collection step at once, whatever the collector had planned: in generational
** mode, after the "bad collection" a growing program makes, that step is a whole major
** collection. Putting the debt back as it was before the pause lets the collector go on as
** if the reload had not happened. */

#include "backend.h"

/* The collector's debt now. */
l_mem hotlua_gc_debt(lua_State *L) {
  return G(L)->GCdebt;
}

/* Sets the debt back to `debt` (a value hotlua_gc_debt returned in this state); the total
** of bytes allocated stays what it is. */
void hotlua_gc_set_debt(lua_State *L, l_mem debt) {
  global_State *g = G(L);
  l_mem total = gettotalbytes(g);  /* as luaE_setdebt does */
  if (debt < total - MAX_LMEM) debt = total - MAX_LMEM;
  g->totalbytes = total - debt;
  g->GCdebt = debt;
}
