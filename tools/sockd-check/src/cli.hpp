#pragma once
// Shared pieces of sockd-check's subcommands (not a public header).

#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "diode/platform/config.hpp"
#include "diode/platform/diagnostics.hpp"
#include "diode/sockd/rules.hpp"
#include "diode/sockd/users.hpp"

namespace diode::tools::cli {

inline constexpr int kExitUsage = 64;
inline constexpr int kExitConfig = 3;

/// Parsed command-line options: `--name value`, `--name=value`, or a flag.
struct Options {
  std::map<std::string, std::vector<std::string>> values;
  std::vector<std::string> flags;
  std::vector<std::string> positional;
  bool has(const std::string& name) const;
  std::optional<std::string> get(const std::string& name) const;  // the last one given
  std::vector<std::string> all(const std::string& name) const;
};

/// Parses args[first..]; options in `with_value` take a value, those in
/// `flags` do not. An unknown option or a missing value writes a message to
/// `err` and returns nullopt (exit 64).
std::optional<Options> parse_options(const std::vector<std::string>& args, std::size_t first,
                                     const std::vector<std::string>& with_value,
                                     const std::vector<std::string>& flags,
                                     const std::string& command, std::ostream& err);

/// The files a subcommand works on, loaded and parsed.
struct Loaded {
  std::optional<platform::GatewayConfig> config;
  std::string config_path;
  std::optional<sockd::RuleSet> rules;
  std::optional<sockd::RouteTable> routes;
  std::optional<sockd::UsersFile> users;
  std::optional<sockd::ClientRuleSet> client;
  std::string rules_path, routes_path, users_path, client_path;
};

/// Loads --config and/or --rules/--routes/--users/--socks-conf (explicit
/// flags win over gateway.toml's [files]); every problem goes to `diags`.
Loaded load_files(const Options& o, platform::Diagnostics& diags);

/// `file:line:col: severity: message [code]`, then one
/// `file:line: note: <text>` per related line whose text is known.
void print_diagnostics(const platform::Diagnostics& d, const Loaded& files, std::ostream& out);

/// The original text of a line of one of the loaded files, if known.
std::optional<std::string> line_text(const Loaded& files, const platform::SourcePos& pos);

/// Reads a whole regular file (at most `max_bytes`); nullopt and a message otherwise.
std::optional<std::string> read_text_file(const std::string& path, std::size_t max_bytes,
                                          std::string& error);

int lint_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int simulate_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int diff_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int passwd_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace diode::tools::cli
