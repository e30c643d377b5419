// The pool of control connections to the agent, and the one rule for waiting on
// it: every exchange (connect, hello, request, reply) finishes within one overall
// deadline on the monotonic clock, which a signal does not restart; an agent that
// misses it is not asked again for a while (exponential back-off), and the caller
// reads the real file meanwhile.
#pragma once

#include <cstddef>
#include <cstdint>

#include "shim/shim_state.h"

namespace dc::shim {

// The longest any call into the shim waits for the agent, all steps together.
inline constexpr uint64_t kAgentDeadlineNs = 1'000'000'000;

// Claims a free connection of the pool (its index), or -1 if all are in use.
int acquire_conn();
// Claims conns[i] if it is free and open (a session to look at), else false.
bool acquire_open_conn(int i);
void release_conn(int i);
// Closes conns[i] (caller holds it) and forgets that it owned the client region.
void drop_conn(Conn& c);
// Is c.fd still the socket we connected? (Forgets the number, never closes it, if not.)
bool conn_is_ours(Conn& c);
// Connects `c` and greets the agent, installing what the hello brings (arena,
// dataset roots, client region). Caller holds the conn. False when the agent is
// absent, backed off, or did not answer in time.
bool connect_conn(Conn& c);
// Sends `req` on a pooled connection and waits for its reply, within the deadline.
// False if the agent could not be reached or did not answer; the connection is
// dropped then, so a late reply is never read as another request's.
bool round_trip(void* req, size_t len, void* reply, size_t reply_cap, long* reply_len);
// True while the agent is known to be silent (back-off running).
bool agent_backed_off(uint64_t now);
// Forgets back-off and connect rate limits: the agent was replaced.
void reset_agent_backoff();

}  // namespace dc::shim
