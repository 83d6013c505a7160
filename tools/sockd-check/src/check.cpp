// sockd-check: dispatch, options, file loading and the lint subcommand.
#include "diode/tools/check.hpp"

#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <sstream>

#include "cli.hpp"
#include "diode/sockd/parse.hpp"
#include "diode/tools/json.hpp"
#include "diode/tools/lint.hpp"

namespace diode::tools {

using platform::Diagnostics;
using platform::Severity;

namespace {

constexpr const char* kVersion = "sockd-check (Diode) " DIODE_VERSION;

constexpr const char* kHelp = R"(usage: sockd-check COMMAND [OPTIONS]

Checks Diode's SOCKS relay configuration: sockd.conf (rules), sockd.route
(egress), the users file and the client socks.conf. See docs/sockd-check.md.

commands:
  lint      find errors, dead rules and risky policy
            [--config gateway.toml | --rules sockd.conf [--routes sockd.route]
             [--users FILE] [--socks-conf socks.conf]] [--interfaces ADDR,...]
            [--hits FILE] [--json] [--strict]
            exit: 0 clean (notes allowed), 1 errors, 2 warnings with --strict
  simulate  decide one request, phase by phase (or many with --batch FILE)
            [--config gateway.toml | --rules sockd.conf [--routes sockd.route]
             [--users FILE]] --from ADDR[:PORT] (--to HOST:PORT | --dst HOST
             --port PORT) [--iface NAME] [--user NAME]
            [--command connect|bind|udp] [--auth none|userpass]
            [--ident ok|none|mismatch:NAME] [--resolve NAME=ADDR]...
            [--global-ident off|lenient|strict] [--explain] [--nearest]
            simulate --batch FILE [--json] (same file options)
            exit: 1 permit, 0 deny (as NEC's test_sockd_conf); with --batch
            0 every expect= held, 1 one failed; 3 configuration error
  diff      OLD.conf NEW.conf [--json]: the classes of requests whose verdict
            changes; exit 0 no change, 1 changes, 3 configuration error
  passwd    USERS_FILE NAME [--password-file FILE] [--method yescrypt|sha512]
            [--lock | --delete]: add a user or change a password (read from
            the first line of FILE or of standard input), lock or delete an
            account; the file is rewritten atomically, only if valid
            exit: 0 done, 1 could not write, 3 the users file is invalid

  --help, --version
usage errors exit 64.
)";

void sort_diagnostics(Diagnostics& d) {
  std::vector<std::string> files;
  for (const auto& x : d.items()) {
    if (std::find(files.begin(), files.end(), x.pos.file) == files.end())
      files.push_back(x.pos.file);
  }
  const auto rank = [&files](const std::string& f) {
    return std::find(files.begin(), files.end(), f) - files.begin();
  };
  std::stable_sort(d.items().begin(), d.items().end(), [&](const auto& a, const auto& b) {
    return std::make_tuple(rank(a.pos.file), a.pos.line, a.pos.column) <
           std::make_tuple(rank(b.pos.file), b.pos.line, b.pos.column);
  });
}

std::vector<platform::IpAddress> live_addresses() {
  std::vector<platform::IpAddress> out;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return out;
  for (const ifaddrs* p = list; p != nullptr; p = p->ifa_next) {
    if (p->ifa_addr == nullptr) continue;
    platform::IpAddress a;
    if (p->ifa_addr->sa_family == AF_INET) {
      sockaddr_in sin{};
      std::memcpy(&sin, p->ifa_addr, sizeof sin);
      a.family = platform::Family::V4;
      std::memcpy(a.bytes.data(), &sin.sin_addr, 4);
    } else if (p->ifa_addr->sa_family == AF_INET6) {
      sockaddr_in6 sin6{};
      std::memcpy(&sin6, p->ifa_addr, sizeof sin6);
      a.family = platform::Family::V6;
      std::memcpy(a.bytes.data(), &sin6.sin6_addr, 16);
    } else {
      continue;
    }
    out.push_back(a);
  }
  ::freeifaddrs(list);
  return out;
}

}  // namespace

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (ch) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (c < 0x20 || c >= 0x7f) {
          static constexpr char kHex[] = "0123456789abcdef";
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 15];
        } else {
          out += ch;
        }
    }
  }
  out += '"';
  return out;
}

namespace cli {

bool Options::has(const std::string& name) const {
  return values.count(name) != 0 || std::find(flags.begin(), flags.end(), name) != flags.end();
}

std::optional<std::string> Options::get(const std::string& name) const {
  const auto it = values.find(name);
  if (it == values.end() || it->second.empty()) return std::nullopt;
  return it->second.back();
}

std::vector<std::string> Options::all(const std::string& name) const {
  const auto it = values.find(name);
  return it == values.end() ? std::vector<std::string>{} : it->second;
}

std::optional<Options> parse_options(const std::vector<std::string>& args, std::size_t first,
                                     const std::vector<std::string>& with_value,
                                     const std::vector<std::string>& flags,
                                     const std::string& command, std::ostream& err) {
  Options o;
  const auto known = [](const std::vector<std::string>& v, const std::string& n) {
    return std::find(v.begin(), v.end(), n) != v.end();
  };
  for (std::size_t i = first; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.size() < 2 || a.compare(0, 2, "--") != 0) {
      if (a.size() > 1 && a[0] == '-') {
        err << "sockd-check " << command << ": unknown option '" << a
            << "' (see sockd-check --help)\n";
        return std::nullopt;
      }
      o.positional.push_back(a);
      continue;
    }
    std::string name = a;
    std::optional<std::string> value;
    if (const auto eq = a.find('='); eq != std::string::npos) {
      name = a.substr(0, eq);
      value = a.substr(eq + 1);
    }
    if (known(with_value, name)) {
      if (!value) {
        if (i + 1 >= args.size()) {
          err << "sockd-check " << command << ": option '" << name << "' needs a value\n";
          return std::nullopt;
        }
        value = args[++i];
      }
      o.values[name].push_back(*value);
    } else if (known(flags, name) && !value) {
      o.flags.push_back(name);
    } else {
      err << "sockd-check " << command << ": unknown option '" << a
          << "' (see sockd-check --help)\n";
      return std::nullopt;
    }
  }
  return o;
}

std::optional<std::string> read_text_file(const std::string& path, std::size_t max_bytes,
                                          std::string& error) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    error = std::string("cannot open: ") + std::strerror(errno);
    return std::nullopt;
  }
  if (!S_ISREG(st.st_mode)) {
    error = "not a regular file";
    return std::nullopt;
  }
  if (static_cast<std::size_t>(st.st_size) > max_bytes) {
    error =
        "file is larger than " + std::to_string(max_bytes / (std::size_t{1024} * 1024)) + " MiB";
    return std::nullopt;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot open";
    return std::nullopt;
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

Loaded load_files(const Options& o, Diagnostics& diags) {
  Loaded f;
  if (auto c = o.get("--config")) {
    f.config_path = *c;
    f.config = platform::load_gateway_config(*c, diags);
    if (f.config) {
      // gateway.toml's relative paths come back joined to its directory;
      // fold the "dir/../" so messages name the file plainly.
      const auto tidy = [](const std::string& p) {
        return p.empty() ? p : std::filesystem::path(p).lexically_normal().string();
      };
      f.rules_path = tidy(f.config->files.sockd_conf);
      f.routes_path = tidy(f.config->files.sockd_route);
      f.users_path = tidy(f.config->files.users);
    }
  }
  if (auto v = o.get("--rules")) f.rules_path = *v;
  if (auto v = o.get("--routes")) f.routes_path = *v;
  if (auto v = o.get("--users")) f.users_path = *v;
  if (auto v = o.get("--socks-conf")) f.client_path = *v;
  if (!f.rules_path.empty()) f.rules = sockd::load_sockd_conf(f.rules_path, diags);
  if (!f.routes_path.empty()) f.routes = sockd::load_sockd_route(f.routes_path, diags);
  if (!f.users_path.empty()) f.users = sockd::load_users_file(f.users_path, diags);
  if (!f.client_path.empty()) f.client = sockd::load_socks_conf(f.client_path, diags);
  return f;
}

std::optional<std::string> line_text(const Loaded& f, const platform::SourcePos& pos) {
  if (f.rules && pos.file == f.rules->file) {
    for (const auto& r : f.rules->rules) {
      if (r.pos.line == pos.line) return r.text;
    }
    for (const auto* h : {f.rules->no_identd ? &*f.rules->no_identd : nullptr,
                          f.rules->bad_id ? &*f.rules->bad_id : nullptr}) {
      if (h != nullptr && h->pos.line == pos.line) return h->text;
    }
  }
  if (f.routes && pos.file == f.routes->file) {
    for (const auto& r : f.routes->routes) {
      if (r.pos.line == pos.line) return r.text;
    }
  }
  if (f.client && pos.file == f.client->file) {
    for (const auto& r : f.client->rules) {
      if (r.pos.line == pos.line) return r.text;
    }
  }
  return std::nullopt;
}

void print_diagnostics(const Diagnostics& d, const Loaded& files, std::ostream& out) {
  for (const auto& x : d.items()) {
    out << x.format();
    if (!x.code.empty()) out << " [" << x.code << "]";
    out << '\n';
    for (const auto& r : x.related) {
      const auto text = line_text(files, r);
      out << r.file << ':' << r.line << ": note: " << (text ? *text : std::string("related line"))
          << '\n';
    }
  }
}

namespace {

void print_json(const Diagnostics& d, const Loaded& files, std::ostream& out) {
  out << "{\"findings\":[";
  bool first = true;
  for (const auto& x : d.items()) {
    out << (first ? "" : ",") << "\n  {\"file\":" << json_string(x.pos.file)
        << ",\"line\":" << x.pos.line << ",\"column\":" << x.pos.column
        << ",\"severity\":" << json_string(platform::to_string(x.severity))
        << ",\"code\":" << json_string(x.code) << ",\"message\":" << json_string(x.message)
        << ",\"related\":[";
    bool rf = true;
    for (const auto& r : x.related) {
      const auto text = line_text(files, r);
      out << (rf ? "" : ",") << "{\"file\":" << json_string(r.file) << ",\"line\":" << r.line
          << ",\"text\":" << (text ? json_string(*text) : std::string("null")) << "}";
      rf = false;
    }
    out << "]}";
    first = false;
  }
  out << "\n],\"errors\":" << d.count(Severity::Error)
      << ",\"warnings\":" << d.count(Severity::Warning) << ",\"notes\":" << d.count(Severity::Note)
      << "}\n";
}

}  // namespace

int lint_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  const auto o = parse_options(
      args, 1,
      {"--config", "--rules", "--routes", "--users", "--socks-conf", "--interfaces", "--hits"},
      {"--json", "--strict"}, "lint", err);
  if (!o) return kExitUsage;
  if (!o->positional.empty()) {
    err << "sockd-check lint: unexpected argument '" << o->positional.front()
        << "' (files are given with --rules, --routes, --users, --socks-conf or --config)\n";
    return kExitUsage;
  }
  if (!o->has("--config") && !o->has("--rules") && !o->has("--routes") && !o->has("--users") &&
      !o->has("--socks-conf")) {
    err << "sockd-check lint: nothing to check; give --config gateway.toml or --rules sockd.conf\n";
    return kExitUsage;
  }
  LintContext ctx;
  if (auto list = o->get("--interfaces")) {
    std::stringstream ss(*list);
    std::string item;
    while (std::getline(ss, item, ',')) {
      const auto p = platform::Prefix::parse(item);
      if (!p) {
        err << "sockd-check lint: --interfaces: '" << item
            << "' is not an address (ADDR or ADDR/LEN)\n";
        return kExitUsage;
      }
      ctx.gateway_addresses.push_back(p->addr);
    }
    ctx.addresses_source = "--interfaces";
  }

  Diagnostics diags;
  const Loaded f = load_files(*o, diags);
  if (f.config) {
    if (ctx.gateway_addresses.empty()) {
      ctx.gateway_addresses = platform::gateway_addresses(*f.config);
      ctx.addresses_source = f.config_path;
    }
    ctx.internal_networks = platform::internal_networks(*f.config);
    ctx.protect_internal = f.config->sockd.protect_internal;
    const auto& methods = f.config->sockd.methods;
    ctx.offers_none =
        std::find(methods.begin(), methods.end(), platform::SocksMethod::None) != methods.end();
    for (const auto& i : f.config->interfaces) {
      ctx.interface_names.push_back(i.name);
      if (i.role == platform::InterfaceRole::Internal && i.socks_port != 0) {
        ctx.internal_interfaces.push_back({i.name, i.addresses});
      }
    }
    switch (f.config->sockd.identd) {
      case platform::IdentdMode::Off:
        ctx.global_ident = sockd::IdentMode::Off;
        break;
      case platform::IdentdMode::Lenient:
        ctx.global_ident = sockd::IdentMode::Lenient;
        break;
      case platform::IdentdMode::Strict:
        ctx.global_ident = sockd::IdentMode::Strict;
        break;
    }
  }
  if (f.users) ctx.users = &*f.users;
  if (f.rules) lint_rules(*f.rules, ctx, diags);
  if (auto hits_path = o->get("--hits")) {
    if (!f.rules && f.rules_path.empty()) {
      err << "sockd-check lint: --hits needs the rule file (--rules or --config)\n";
      return kExitUsage;
    }
    std::string why;
    const auto text = read_text_file(*hits_path, std::size_t{64} << 20, why);
    if (!text) {
      diags.error({*hits_path, 0, 0}, why, "io");
    } else if (const auto report = sockd::parse_hits(*text, *hits_path, diags); report && f.rules) {
      lint_hits(*f.rules, *report, *hits_path, diags);
    }
  }
  if (f.routes) {
    LintContext rctx = ctx;
    if (rctx.gateway_addresses.empty()) {
      rctx.gateway_addresses = live_addresses();
      rctx.addresses_source = "the live interfaces";
    }
    lint_routes(*f.routes, rctx, diags);
  }
  if (f.client) lint_client(*f.client, ctx, diags);
  sort_diagnostics(diags);

  if (o->has("--json")) {
    print_json(diags, f, out);
  } else {
    print_diagnostics(diags, f, out);
    out << "sockd-check: " << diags.count(Severity::Error) << " error(s), "
        << diags.count(Severity::Warning) << " warning(s), " << diags.count(Severity::Note)
        << " note(s)\n";
  }
  if (diags.has_errors()) return 1;
  if (o->has("--strict") && diags.count(Severity::Warning) > 0) return 2;
  return 0;
}

}  // namespace cli

int sockd_check_main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.empty()) {
    err << kHelp;
    return cli::kExitUsage;
  }
  const std::string& cmd = args[0];
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    out << kHelp;
    return 0;
  }
  if (cmd == "--version") {
    out << kVersion << '\n';
    return 0;
  }
  if (std::find(args.begin(), args.end(), "--help") != args.end()) {
    out << kHelp;
    return 0;
  }
  if (cmd == "lint") return cli::lint_command(args, out, err);
  if (cmd == "simulate") return cli::simulate_command(args, out, err);
  if (cmd == "diff") return cli::diff_command(args, out, err);
  if (cmd == "passwd") return cli::passwd_command(args, out, err);
  if (!cmd.empty() && cmd[0] == '-') {
    err << "sockd-check: unknown option '" << cmd << "' (see sockd-check --help)\n";
  } else {
    err << "sockd-check: unknown command '" << cmd
        << "' (lint, simulate, diff, passwd; see sockd-check --help)\n";
  }
  return cli::kExitUsage;
}

}  // namespace diode::tools
