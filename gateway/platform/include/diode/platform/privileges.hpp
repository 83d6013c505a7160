#pragma once
// Dropping root for good: the one routine every Diode process uses after it
// has opened what needs privilege (docs/gateway.md, "Privileges").

#include <string>
#include <sys/types.h>

#include <vector>

namespace diode::platform {

struct DropOptions {
  std::string user = "diode";
  std::string group = "diode";
  /// Where the process lives afterwards (chdir): a directory that holds
  /// nothing of value. "" = "/".
  std::string workdir;
};

/// Run as root (euid 0): setgroups to only `group`, setgid, setuid to
/// `user` (real, effective and saved), then every capability cleared with
/// libcap (effective, permitted, inheritable, the ambient set and the
/// bounding set), PR_SET_NO_NEW_PRIVS, chdir(workdir); finally checks that
/// setuid(0) fails. Run by any other user: clears whatever capabilities and
/// ambient capabilities it holds, sets no_new_privs, chdir(workdir), and
/// changes no ids; that cannot fail for lack of privilege.
/// Returns false with `error` set on any failure (an unknown user or group,
/// or one that is root, included); the caller must then exit, never run on.
/// Call it before starting any thread: capabilities and no_new_privs belong
/// to the calling thread alone (threads started later inherit them).
bool drop_privileges(const DropOptions& options, std::string& error);

/// What /proc/self/status would say, for logs and tests.
struct PrivilegeState {
  uid_t uid = 0, euid = 0;
  gid_t gid = 0, egid = 0;
  bool any_capability = false;  // effective, permitted, inheritable or ambient non-empty
  bool no_new_privs = false;
};
PrivilegeState current_privileges();

/// Keeps, as a root process, only the capabilities in `keep` (names as
/// cap_from_name(3) spells them, e.g. "cap_kill", "cap_setuid"), permitted
/// and effective, drops every other from the bounding set too, and sets
/// PR_SET_KEEPCAPS off. Used by the supervisor. False with `error` set.
bool limit_capabilities(const std::vector<std::string>& keep, std::string& error);

}  // namespace diode::platform
