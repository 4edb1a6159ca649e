/* PREFETCH(address): asks the cache for the line at `address`, where the compiler can. A
** prefetch never faults, whatever the address. Used by prefetch.c and the scan (scan.c). */

#ifndef HOTLUA_PREFETCH_H
#define HOTLUA_PREFETCH_H

#if defined(__GNUC__) || defined(__clang__)
#define PREFETCH(address) __builtin_prefetch(address)
#define PREFETCH_FOR_WRITE(address) __builtin_prefetch((address), 1)
#else
#define PREFETCH(address) ((void)(address))
#define PREFETCH_FOR_WRITE(address) ((void)(address))
#endif

#endif
