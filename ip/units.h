/*
 * ip/units.h - the time units at the protocol libraries' boundaries.
 *
 * Neither library owns a clock: the environment passes the time in, as
 * a count from any fixed origin that must not go backwards, and gets
 * deadlines back in the same unit. The two libraries count differently:
 *
 *   bh_ms  milliseconds: the IP library (ip/ip.h). Its timers (ARP
 *          retries and aging, reassembly, rate limits) are coarse.
 *   bh_us  microseconds: the TCP library (tcp/tcp.h). RTT samples and
 *          the RTO (RFC 6298) need the finer unit; the ISN clock ticks
 *          every 4 us (RFC 6528).
 *
 * Both are plain uint64_t, so a caller's uint64_t passes unchanged; the
 * type says which unit a parameter or result is in. The domains read the
 * monotonic clock in nanoseconds (bh_now_ns, ipc/clock.h) and convert
 * for each library (bh_ns_to_ms and bh_ns_to_us, domains/rt.h).
 */
#ifndef BH_IP_UNITS_H
#define BH_IP_UNITS_H

#include <stdint.h>

typedef uint64_t bh_ms; /* milliseconds */
typedef uint64_t bh_us; /* microseconds */

#endif /* BH_IP_UNITS_H */
