#include "diode/platform/privileges.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>

namespace diode::platform {

namespace {

struct CapFree {
  void operator()(void* p) const { ::cap_free(p); }
};
using CapPtr = std::unique_ptr<std::remove_pointer_t<cap_t>, CapFree>;

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

bool lookup_user(const std::string& name, uid_t& uid, std::string& error) {
  long size = ::sysconf(_SC_GETPW_R_SIZE_MAX);
  std::string buf(static_cast<std::size_t>(size > 0 ? size : 16384), '\0');
  passwd pw{};
  passwd* found = nullptr;
  const int rc = ::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found);
  if (found == nullptr) {
    error = "unknown user '" + name + "'" + (rc != 0 ? std::string(": ") + std::strerror(rc) : "");
    return false;
  }
  uid = pw.pw_uid;
  return true;
}

bool lookup_group(const std::string& name, gid_t& gid, std::string& error) {
  long size = ::sysconf(_SC_GETGR_R_SIZE_MAX);
  std::string buf(static_cast<std::size_t>(size > 0 ? size : 16384), '\0');
  group gr{};
  group* found = nullptr;
  int rc = 0;
  // A group with many members needs a larger buffer.
  while ((rc = ::getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &found)) == ERANGE &&
         buf.size() < (1U << 22)) {
    buf.resize(buf.size() * 2);
  }
  if (found == nullptr) {
    error = "unknown group '" + name + "'" + (rc != 0 ? std::string(": ") + std::strerror(rc) : "");
    return false;
  }
  gid = gr.gr_gid;
  return true;
}

// Effective, permitted and inheritable sets emptied (cap_clear), and the
// ambient set: removing capabilities never needs privilege.
bool clear_capabilities(std::string& error) {
  CapPtr caps(::cap_init());
  if (!caps || ::cap_clear(caps.get()) != 0 || ::cap_set_proc(caps.get()) != 0) {
    error = errno_text("cannot clear the capability sets");
    return false;
  }
  if (CAP_AMBIENT_SUPPORTED() && ::cap_reset_ambient() != 0) {
    error = errno_text("cannot clear the ambient capabilities");
    return false;
  }
  return true;
}

bool drop_bounding_set(const std::vector<cap_value_t>& keep, std::string& error) {
  const cap_value_t max = ::cap_max_bits();
  for (cap_value_t c = 0; c < max; ++c) {
    if (std::find(keep.begin(), keep.end(), c) != keep.end()) continue;
    // Already gone needs nothing (and dropping again would need CAP_SETPCAP).
    if (!CAP_IS_SUPPORTED(c) || ::cap_get_bound(c) == 0) continue;
    if (::cap_drop_bound(c) != 0) {
      error = errno_text("cannot drop capability " + std::to_string(c) + " from the bounding set");
      return false;
    }
  }
  return true;
}

bool has_effective(cap_value_t c) {
  CapPtr caps(::cap_get_proc());
  cap_flag_value_t v = CAP_CLEAR;
  return caps && ::cap_get_flag(caps.get(), c, CAP_EFFECTIVE, &v) == 0 && v == CAP_SET;
}

}  // namespace

bool drop_privileges(const DropOptions& options, std::string& error) {
  const std::string workdir = options.workdir.empty() ? "/" : options.workdir;
  const bool was_root = ::geteuid() == 0;
  if (was_root) {
    uid_t uid = 0;
    gid_t gid = 0;
    if (!lookup_user(options.user, uid, error) || !lookup_group(options.group, gid, error)) return false;
    if (uid == 0 || gid == 0) {
      error = "user '" + options.user + "' and group '" + options.group +
              "' must not be root: a process started as root never runs on as root";
      return false;
    }
    // The bounding and ambient sets first: dropping from the bounding set
    // needs CAP_SETPCAP, which is gone once the ids change.
    if (!drop_bounding_set({}, error)) return false;
    if (CAP_AMBIENT_SUPPORTED() && ::cap_reset_ambient() != 0) {
      error = errno_text("cannot clear the ambient capabilities");
      return false;
    }
    // Without keep-caps, the kernel empties the permitted and effective sets
    // when the last of real, effective and saved uid leaves 0.
    if (::prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) {
      error = errno_text("cannot clear PR_SET_KEEPCAPS");
      return false;
    }
    if (::setgroups(1, &gid) != 0) {
      error = errno_text("cannot set the supplementary groups to '" + options.group + "'");
      return false;
    }
    if (::setresgid(gid, gid, gid) != 0) {
      error = errno_text("cannot change to group '" + options.group + "'");
      return false;
    }
    if (::setresuid(uid, uid, uid) != 0) {
      error = errno_text("cannot change to user '" + options.user + "'");
      return false;
    }
  } else if (has_effective(CAP_SETPCAP)) {
    // An unprivileged user given capabilities (e.g. ambient ones by a
    // service manager) loses the bounding set too, while it still can.
    if (!drop_bounding_set({}, error)) return false;
  }
  // The inheritable set survives a change of ids: clear all of them.
  if (!clear_capabilities(error)) return false;
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    error = errno_text("cannot set no_new_privs");
    return false;
  }
  if (::chdir(workdir.c_str()) != 0) {
    error = errno_text("cannot change directory to " + workdir);
    return false;
  }
  const PrivilegeState st = current_privileges();
  if (st.any_capability || !st.no_new_privs) {
    error = "capabilities remain after the drop";
    return false;
  }
  if (was_root && ::setuid(0) == 0) {
    error = "still able to become root after the drop";
    return false;
  }
  return true;
}

PrivilegeState current_privileges() {
  PrivilegeState st;
  uid_t ru = 0, eu = 0, su = 0;
  gid_t rg = 0, eg = 0, sg = 0;
  ::getresuid(&ru, &eu, &su);
  ::getresgid(&rg, &eg, &sg);
  st.uid = ru;
  st.euid = eu;
  st.gid = rg;
  st.egid = eg;
  st.no_new_privs = ::prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1;
  // The calling thread's sets, as the kernel reports them.
  std::ifstream in("/proc/thread-self/status");
  std::string line;
  while (std::getline(in, line)) {
    for (const char* key : {"CapInh:", "CapPrm:", "CapEff:", "CapAmb:"}) {
      if (line.rfind(key, 0) != 0) continue;
      const std::string hex = line.substr(std::strlen(key));
      if (hex.find_first_not_of("0\t ") != std::string::npos) st.any_capability = true;
    }
  }
  return st;
}

bool limit_capabilities(const std::vector<std::string>& keep, std::string& error) {
  std::vector<cap_value_t> values;
  for (const auto& name : keep) {
    cap_value_t v = 0;
    if (::cap_from_name(name.c_str(), &v) != 0) {
      error = "unknown capability '" + name + "'";
      return false;
    }
    values.push_back(v);
  }
  if (::prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) {
    error = errno_text("cannot clear PR_SET_KEEPCAPS");
    return false;
  }
  if (!drop_bounding_set(values, error)) return false;
  if (CAP_AMBIENT_SUPPORTED() && ::cap_reset_ambient() != 0) {
    error = errno_text("cannot clear the ambient capabilities");
    return false;
  }
  CapPtr caps(::cap_init());
  if (!caps || ::cap_clear(caps.get()) != 0) {
    error = errno_text("cannot build a capability set");
    return false;
  }
  if (!values.empty() &&
      (::cap_set_flag(caps.get(), CAP_PERMITTED, static_cast<int>(values.size()), values.data(), CAP_SET) != 0 ||
       ::cap_set_flag(caps.get(), CAP_EFFECTIVE, static_cast<int>(values.size()), values.data(), CAP_SET) != 0)) {
    error = errno_text("cannot build a capability set");
    return false;
  }
  if (::cap_set_proc(caps.get()) != 0) {
    error = errno_text("cannot set the capability sets");
    return false;
  }
  return true;
}

}  // namespace diode::platform
