#pragma once
// The client side of the control protocol every Diode process serves
// (docs/gateway.md, "Status and control"): one command line per connection
// to an AF_UNIX stream socket, the answer is text until the server closes.
// Used by diodectl, `sockd --control PATH CMD` and `diode-resolver
// --control PATH CMD`.

#include <optional>
#include <string>
#include <string_view>

namespace diode::platform {

/// Sends `command` and a newline to the socket at `path` and returns the
/// whole reply (at most 64 MiB); nullopt with `error` set if it cannot
/// connect or the exchange fails.
std::optional<std::string> control_request(const std::string& path, std::string_view command,
                                           std::string& error);

/// A command-line client: prints the reply to stdout, or
/// "PROGRAM: cannot reach PATH: ERROR" to stderr. Returns 0, or 1 when the
/// socket cannot be reached, the reply is empty, or it reports a failure
/// (it starts with "error" or "reload failed").
int run_control_client(std::string_view program, const std::string& path, std::string_view command);

}  // namespace diode::platform
