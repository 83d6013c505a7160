#pragma once
// Sockets handed down the systemd way (sd_listen_fds(3)): LISTEN_PID,
// LISTEN_FDS and LISTEN_FDNAMES, fds from 3 up. Used by both sides: a daemon
// takes what it was given (from systemd or from diode-gateway), and the
// supervisor arranges the same environment for each child it starts.
// LISTEN_FDNAMES separates names with ':' ("socks.eth1:control"); our names
// never hold one, so a .socket unit spells them with FileDescriptorName=.

#include <span>
#include <string>
#include <vector>

#include "diode/platform/sockets.hpp"

namespace diode::platform {

/// Takes the sockets passed to this process: only if LISTEN_PID is our pid.
/// Each fd is marked close-on-exec, checked to be a socket, and named by
/// LISTEN_FDNAMES (an fd without a known name is an error). The three
/// variables are removed from the environment so that nothing started later
/// inherits them. No LISTEN_* at all: an empty vector and no error.
/// On error: an empty vector and `error` set.
std::vector<NamedSocket> take_listen_fds(std::string& error);

/// For the child side of fork(), before exec: moves `sockets` to fds 3, 4,
/// ... in order (clearing close-on-exec on them), closes nothing else, and
/// sets LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID (this process's pid).
/// Returns false if a dup2 or setenv failed (the child should _exit then).
/// The parent's fds may be any numbers, including 3..; the moves are done
/// so that none overwrites another.
bool pass_listen_fds_in_child(std::span<const NamedSocket> sockets);

}  // namespace diode::platform
