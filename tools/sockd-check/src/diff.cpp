// sockd-check diff: the classes of requests whose verdict changes between
// two sockd.conf files, from each file's first-match partition of the
// request space (see matchset.hpp).
#include <map>
#include <ostream>

#include "cli.hpp"
#include "diode/sockd/parse.hpp"
#include "diode/sockd/session.hpp"
#include "diode/tools/json.hpp"
#include "diode/tools/matchset.hpp"

namespace diode::tools::cli {

namespace {

constexpr std::size_t kMaxShown = 1000;

struct Change {
  Box box;
  const Region* old_region;
  const Region* new_region;
};

// sockd relays UDP only under a permit that writes cmd=udp: the UDP part of
// a region another permit decides is, in effect, denied by that line.
std::vector<Region> split_udp(const sockd::RuleSet& rs, std::vector<Region> regions) {
  std::vector<Region> out;
  constexpr auto kUdp = static_cast<std::uint8_t>(sockd::RuleCommand::Udp);
  for (auto& r : regions) {
    if (r.action != sockd::Action::Permit || !r.rule || (r.box.commands & kUdp) == 0 ||
        sockd::names_command(rs.rules[*r.rule], sockd::RuleCommand::Udp)) {
      out.push_back(std::move(r));
      continue;
    }
    Region udp = r;
    udp.box.commands = kUdp;
    udp.action = sockd::Action::Deny;
    r.box.commands = static_cast<std::uint8_t>(r.box.commands & ~kUdp);
    if (r.box.commands != 0) out.push_back(std::move(r));
    out.push_back(std::move(udp));
  }
  return out;
}

std::string verdict(const Region& r) {
  return r.action == sockd::Action::Permit ? "permit" : "deny";
}

std::string decided_by(const sockd::RuleSet& rs, const Region& r) {
  if (!r.rule) return "implicit deny (no rule matched)";
  const auto& rule = rs.rules[*r.rule];
  return rs.file + ":" + std::to_string(rule.pos.line) + ": " + rule.text;
}

std::string json_side(const sockd::RuleSet& rs, const Region& r) {
  return "{\"verdict\":\"" + verdict(r) + "\",\"file\":" + json_string(rs.file) + ",\"line\":" +
         (r.rule ? std::to_string(rs.rules[*r.rule].pos.line) : std::string("null")) + "}";
}

}  // namespace

int diff_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  const auto o = parse_options(args, 1, {}, {"--json"}, "diff", err);
  if (!o) return kExitUsage;
  if (o->positional.size() != 2) {
    err << "sockd-check diff: expected two files: OLD.conf NEW.conf\n";
    return kExitUsage;
  }
  platform::Diagnostics diags;
  const auto old_rs = sockd::load_sockd_conf(o->positional[0], diags);
  const auto new_rs = sockd::load_sockd_conf(o->positional[1], diags);
  if (!old_rs || !new_rs) {
    for (const auto& d : diags.items()) err << d.format() << '\n';
    err << "sockd-check diff: configuration errors; nothing compared\n";
    return kExitConfig;
  }
  auto old_p = partition(*old_rs, Box::universe());
  auto new_p = partition(*new_rs, Box::universe());
  if (!old_p || !new_p) {
    err << "sockd-check diff: " << (!old_p ? old_rs->file : new_rs->file)
        << ": too fragmented to compare exactly (over 50000 regions)\n";
    return kExitConfig;
  }
  const auto old_regions = split_udp(*old_rs, std::move(*old_p));
  const auto new_regions = split_udp(*new_rs, std::move(*new_p));
  std::vector<Change> changes;
  for (const auto& a : old_regions) {
    for (const auto& b : new_regions) {
      if (a.action == b.action) continue;
      if (auto inter = intersect(a.box, b.box)) changes.push_back({std::move(*inter), &a, &b});
    }
  }
  if (o->has("--json")) {
    out << "{\"old\":" << json_string(old_rs->file) << ",\"new\":" << json_string(new_rs->file)
        << ",\"changes\":[";
    for (std::size_t i = 0; i < changes.size(); ++i) {
      const auto& c = changes[i];
      out << (i == 0 ? "" : ",") << "\n  {\"pattern\":" << json_string(describe(c.box))
          << ",\"old\":" << json_side(*old_rs, *c.old_region)
          << ",\"new\":" << json_side(*new_rs, *c.new_region) << "}";
    }
    out << "\n],\"count\":" << changes.size() << "}\n";
  } else if (changes.empty()) {
    out << "no request changes verdict between " << old_rs->file << " and " << new_rs->file << '\n';
  } else {
    out << changes.size() << " class(es) of requests change verdict between " << old_rs->file
        << " and " << new_rs->file << ":\n";
    std::size_t shown = 0;
    for (const auto& c : changes) {
      if (shown++ == kMaxShown) {
        out << "... and " << changes.size() - kMaxShown << " more (use --json for all)\n";
        break;
      }
      out << '\n'
          << verdict(*c.old_region) << " -> " << verdict(*c.new_region) << ": " << describe(c.box)
          << '\n';
      out << "  old: " << decided_by(*old_rs, *c.old_region) << '\n';
      out << "  new: " << decided_by(*new_rs, *c.new_region) << '\n';
    }
  }
  return changes.empty() ? 0 : 1;
}

}  // namespace diode::tools::cli
