#include "diode/tools/lint.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <tuple>

#include "diode/sockd/expand.hpp"
#include "diode/sockd/session.hpp"
#include "diode/tools/matchset.hpp"

namespace diode::tools {

using platform::Diagnostic;
using platform::Diagnostics;
using platform::Family;
using platform::IpAddress;
using platform::MaskedAddress;
using platform::Severity;
using platform::SourcePos;
using sockd::Action;
using sockd::AddressMatch;
using sockd::Rule;
using sockd::RuleSet;

namespace {

constexpr std::size_t kMaxRelated = 10;

void add(Diagnostics& out, SourcePos pos, Severity sev, const char* code, std::string msg,
         std::vector<SourcePos> related = {}) {
  if (related.size() > kMaxRelated) related.resize(kMaxRelated);
  Diagnostic d;
  d.pos = std::move(pos);
  d.severity = sev;
  d.code = code;
  d.message = std::move(msg);
  d.related = std::move(related);
  out.add(std::move(d));
}

SourcePos at(const SourcePos& line_pos, std::uint32_t column) {
  SourcePos p = line_pos;
  p.column = column == 0 ? 1 : column;
  return p;
}

const char* action_name(Action a) {
  return a == Action::Permit ? "permit" : "deny";
}

bool is_blank(char c) {
  return c == ' ' || c == '\t';
}

// The blank-separated word starting at 1-based `col`, and the one after it.
struct Word {
  std::string text;
  std::uint32_t col = 0;
};
std::optional<Word> word_at(const std::string& line, std::uint32_t col) {
  if (col == 0 || col > line.size()) return std::nullopt;
  std::size_t i = col - 1;
  std::size_t j = i;
  while (j < line.size() && !is_blank(line[j]) && line[j] != '#') ++j;
  if (j == i) return std::nullopt;
  return Word{line.substr(i, j - i), col};
}
std::optional<Word> next_word(const std::string& line, const Word& w) {
  std::size_t i = w.col - 1 + w.text.size();
  while (i < line.size() && is_blank(line[i])) ++i;
  if (i >= line.size() || line[i] == '#' || line[i] == ':') return std::nullopt;
  return word_at(line, static_cast<std::uint32_t>(i + 1));
}

std::string normalised(const MaskedAddress& m) {
  IpAddress a = m.addr;
  for (std::size_t i = 0; i < a.size(); ++i)
    a.bytes[i] = static_cast<std::uint8_t>(a.bytes[i] & m.mask.bytes[i]);
  if (auto len = m.prefix_length()) return a.to_string() + "/" + std::to_string(*len);
  return a.to_string() + " " + m.mask.to_string();
}

bool all_digits_and_dots(const std::string& s) {
  return !s.empty() &&
         std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
}

// Mask oddities of one address field (sockd.conf source or destination,
// sockd.route destination). `text` is the whole line.
void lint_address(const AddressMatch& m, const SourcePos& line_pos, const std::string& text,
                  Diagnostics& out) {
  const auto word = word_at(text, m.pos.column);
  const auto mask_word = word ? next_word(text, *word) : std::nullopt;
  const std::uint32_t mask_col = mask_word ? mask_word->col : m.pos.column;
  switch (m.kind) {
    case AddressMatch::Kind::Any:
      // An all-zero mask makes the address irrelevant; say so if it was not 0.
      if (word && mask_word && all_digits_and_dots(word->text) && mask_word->text == "0.0.0.0" &&
          word->text != "0.0.0.0") {
        add(out, at(line_pos, word->col), Severity::Warning, "host-bits",
            "mask 0.0.0.0 matches every address; " + word->text +
                " is ignored (normalised: 0.0.0.0/0)");
      }
      return;
    case AddressMatch::Kind::Domain:
      if (mask_word && all_digits_and_dots(mask_word->text) && mask_word->text != "0.0.0.0") {
        add(out, at(line_pos, mask_word->col), Severity::Note, "domain-mask",
            "the mask " + mask_word->text +
                " after a domain name is ignored; write 0.0.0.0 or leave it out");
      }
      return;
    case AddressMatch::Kind::Masked:
      break;
  }
  const MaskedAddress& ma = m.masked;
  if (!ma.prefix_length()) {
    IpAddress inv = ma.mask;
    for (std::size_t i = 0; i < inv.size(); ++i)
      inv.bytes[i] = static_cast<std::uint8_t>(~inv.bytes[i]);
    const MaskedAddress inverted{ma.addr, inv};
    if (auto len = inverted.prefix_length()) {
      add(out, at(line_pos, mask_col), Severity::Warning, "inverted-mask",
          "mask " + ma.mask.to_string() +
              " looks like a Cisco-style wildcard mask; here a 1 bit means \"must match\" "
              "((addr & mask) test, inverted only in old NEC builds with OLD_CONF_MASK): did you "
              "mean " +
              inv.to_string() + "?");
    } else {
      add(out, at(line_pos, mask_col), Severity::Warning, "non-contiguous-mask",
          "mask " + ma.mask.to_string() +
              " is not contiguous: it matches every address that agrees with " +
              ma.addr.to_string() + " on the mask's one bits only");
    }
  }
  if (ma.has_host_bits()) {
    add(out, at(line_pos, m.pos.column), Severity::Warning, "host-bits",
        "address " + ma.addr.to_string() + " has bits set outside the mask; the test means " +
            normalised(ma));
  }
}

void lint_port(const sockd::PortTest& t, const SourcePos& line_pos, Diagnostics& out) {
  using sockd::PortOp;
  const PortSet s = PortSet::of(t);
  const auto col = t.pos.column;
  if (t.op == PortOp::Any) return;
  if (s.empty()) {
    add(out, at(line_pos, col), Severity::Warning, "port-never",
        "this port test matches no port, so the rule never matches");
  } else if (s.full()) {
    add(out, at(line_pos, col), Severity::Warning, "port-always",
        "this port test matches every port (0-65535); leave it out");
  }
}

// ---- coverage index --------------------------------------------------------

// Prefix index over one address field: rules whose field is one contiguous
// prefix, keyed by (family, address, length); the others are "wild". The
// candidates for a prefix P are the wild rules, P's ancestors and P's
// descendants, which is all a rule can overlap.
class AddrIndex {
 public:
  void add(std::size_t rule, const AddrSet& a) {
    if (auto k = key_of(a)) {
      by_prefix_[*k].push_back(rule);
    } else {
      wild_.push_back(rule);
    }
  }
  // nullopt when `a` is not one prefix (the caller falls back).
  std::optional<std::vector<std::size_t>> query(const AddrSet& a) const {
    const auto k = key_of(a);
    if (!k) return std::nullopt;
    std::vector<std::size_t> out = wild_;
    const auto& [fam, value, len] = *k;
    const unsigned bits = fam == 4 ? 32U : 128U;
    for (unsigned l = 0; l <= len; ++l) {
      const auto it = by_prefix_.find(Key{fam, masked_to(value, l), l});
      if (it != by_prefix_.end()) out.insert(out.end(), it->second.begin(), it->second.end());
    }
    if (len < bits) {
      for (auto it = by_prefix_.lower_bound(Key{fam, value, len + 1}); it != by_prefix_.end();
           ++it) {
        const auto& [f2, v2, l2] = it->first;
        if (f2 != fam || masked_to(v2, len) != value) break;
        if (l2 > len) out.insert(out.end(), it->second.begin(), it->second.end());
      }
    }
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  using Bytes = std::array<std::uint8_t, 16>;
  using Key = std::tuple<int, Bytes, unsigned>;
  static Bytes masked_to(const Bytes& v, unsigned len) {
    Bytes r{};
    for (unsigned i = 0; i < 16; ++i) {
      const unsigned here = len >= 8 * (i + 1) ? 8 : (len > 8 * i ? len - 8 * i : 0);
      r[i] = static_cast<std::uint8_t>(v[i] & static_cast<std::uint8_t>(0xFF00U >> here));
    }
    return r;
  }
  static std::optional<Key> key_of(const AddrSet& a) {
    if (a.none || a.cubes.size() != 1) return std::nullopt;
    const Cube& c = a.cubes[0];
    IpAddress mask;
    mask.family = c.family;
    for (std::size_t i = 0; i < 16; ++i) mask.bytes[i] = c.care[i];
    const auto len = MaskedAddress{IpAddress{c.family, c.value}, mask}.prefix_length();
    if (!len) return std::nullopt;
    return Key{c.family == Family::V4 ? 4 : 6, c.value, *len};
  }
  std::map<Key, std::vector<std::size_t>> by_prefix_;
  std::vector<std::size_t> wild_;
};

struct Coverage {
  bool determined = false;
  bool covered = false;
  std::vector<std::size_t> deciders;  // earlier rules that decide part of this one
};

// Subtracts the candidates' boxes from `r` in order; see lint.hpp for the budget.
// `candidates` null means every rule before `limit`.
Coverage cover(const Box& r, const std::vector<Box>& boxes,
               const std::vector<std::size_t>* candidates, std::size_t limit, std::size_t max_ops,
               std::size_t& total_ops) {
  Coverage c;
  std::vector<Box> remaining{r};
  std::size_t ops = 0;
  const std::size_t n = candidates != nullptr ? candidates->size() : limit;
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t j = candidates != nullptr ? (*candidates)[k] : k;
    ++ops;
    if (ops > max_ops) {
      total_ops += ops;
      return c;  // undetermined
    }
    if (!intersects(r, boxes[j])) continue;
    std::vector<Box> next;
    bool touched = false;
    for (const auto& p : remaining) {
      ++ops;
      if (!intersects(p, boxes[j])) {
        next.push_back(p);
        continue;
      }
      touched = true;
      auto rest = subtract(p, boxes[j]);
      next.insert(next.end(), std::make_move_iterator(rest.begin()),
                  std::make_move_iterator(rest.end()));
    }
    if (touched) c.deciders.push_back(j);
    remaining = std::move(next);
    if (remaining.empty()) break;
    if (remaining.size() > 256) {
      total_ops += ops;
      return c;  // undetermined
    }
  }
  total_ops += ops;
  c.determined = true;
  c.covered = remaining.empty();
  return c;
}

std::string line_list(const RuleSet& rs, const std::vector<std::size_t>& idx) {
  std::string s;
  for (std::size_t k = 0; k < idx.size() && k < 5; ++k) {
    if (!s.empty()) s += ", ";
    s += std::to_string(rs.rules[idx[k]].pos.line);
  }
  if (idx.size() > 5) s += ", ...";
  return s;
}

bool covers_whole_family(const AddrSet& a) {
  return a.covers_family(Family::V4) || a.covers_family(Family::V6);
}

// ---- policy ---------------------------------------------------------------

struct Target {
  platform::Prefix prefix;
  const char* code;
  std::string what;
};

void lint_protection(const RuleSet& rs, const std::vector<Box>& boxes, const LintContext& ctx,
                     Diagnostics& out) {
  if (std::none_of(rs.rules.begin(), rs.rules.end(),
                   [](const Rule& r) { return r.action == Action::Permit; })) {
    return;
  }
  std::vector<Target> targets;
  targets.push_back({*platform::Prefix::parse("127.0.0.0/8"), "unprotected-loopback", "loopback"});
  targets.push_back({*platform::Prefix::parse("::1/128"), "unprotected-loopback", "loopback"});
  for (const auto& a : ctx.gateway_addresses) {
    targets.push_back({platform::Prefix{a, static_cast<unsigned>(a.bits())}, "unprotected-self",
                       "the gateway's own address"});
  }
  for (const auto& n : ctx.internal_networks) {
    targets.push_back({n, "unprotected-internal", "the internal network"});
  }
  // One finding per (code, permitting rule), listing the targets it lets in.
  std::map<std::pair<std::string, std::size_t>, std::vector<std::string>> holes;
  for (const auto& t : targets) {
    Box x = Box::universe();
    x.dst_addr = AddrSet{false, {Cube::of(t.prefix.to_masked())}};
    std::vector<Box> remaining{x};
    for (std::size_t i = 0; i < rs.rules.size() && !remaining.empty(); ++i) {
      std::vector<Box> next;
      bool found = false;
      for (const auto& p : remaining) {
        if (!intersects(p, boxes[i])) {
          next.push_back(p);
          continue;
        }
        if (rs.rules[i].action == Action::Permit) {
          found = true;
          break;
        }
        auto rest = subtract(p, boxes[i]);
        next.insert(next.end(), rest.begin(), rest.end());
      }
      if (found) {
        auto& v = holes[{t.code, i}];
        const std::string s = t.prefix.length == t.prefix.addr.bits() ? t.prefix.addr.to_string()
                                                                      : t.prefix.to_string();
        if (std::find(v.begin(), v.end(), s) == v.end()) v.push_back(s);
        break;
      }
      remaining = std::move(next);
      if (remaining.size() > 2000) break;  // too fragmented to say; stay silent
    }
  }
  for (const auto& [key, list] : holes) {
    const Rule& r = rs.rules[key.second];
    std::string targets_text;
    for (const auto& s : list) {
      if (!targets_text.empty()) targets_text += ", ";
      targets_text += s;
    }
    std::string what = key.first == "unprotected-loopback" ? "loopback"
                       : key.first == "unprotected-self"   ? "the gateway's own addresses"
                                                           : "the internal networks";
    // A permit whose destination is written as an address range is NEC's
    // explicit permission: protect_internal lets it through.
    if (ctx.protect_internal && r.dst.kind != AddressMatch::Kind::Masked) {
      // sockd refuses these anyway unless the permit names them; say so
      // quietly, since sockd.conf alone no longer tells the whole story.
      std::string msg = "this permit covers " + what;
      msg += " (" + targets_text;
      msg += "); sockd.protect_internal refuses them unless a rule names them, but a deny before ";
      msg += "the permits keeps sockd.conf right on its own";
      add(out, r.pos, Severity::Note, key.first.c_str(), std::move(msg));
      continue;
    }
    std::string msg = "this permit lets clients reach " + what;
    msg += " (" + targets_text;
    msg += ") through the relay; put a deny for them before the permits";
    add(out, r.pos, Severity::Warning, key.first.c_str(), std::move(msg));
  }
}

void lint_users(const Rule& r, const LintContext& ctx, Diagnostics& out) {
  if (r.users.any) return;
  // A SOCKS4 USERID or a SOCKS5 session without authentication carries a
  // name nobody checked; only identd (?=I, ?=i or sockd.identd) vouches for it.
  const sockd::IdentMode ident =
      r.ident == sockd::IdentMode::Default ? ctx.global_ident : r.ident;
  const bool identd = ident == sockd::IdentMode::Strict || ident == sockd::IdentMode::Lenient;
  const bool none_reaches =
      (r.methods & static_cast<std::uint8_t>(sockd::AuthMethod::None)) != 0;
  if (ctx.offers_none && none_reaches && !identd) {
    add(out, at(r.pos, r.users.pos.column), Severity::Warning, "unauthenticated-user",
        "`*=` names users, but SOCKS4 and SOCKS5 without authentication reach this line with "
        "any name the client claims; add auth=userpass, ?=I (identd), or drop \"none\" from "
        "sockd.methods");
  }
  if (ctx.users == nullptr) return;
  const auto upos = at(r.pos, r.users.pos.column);
  for (const auto& n : r.users.names) {
    if (ctx.users->contains(n)) continue;
    std::uint32_t col = upos.column;
    if (const auto off = r.text.find(n, upos.column == 0 ? 0 : upos.column - 1);
        off != std::string::npos) {
      col = static_cast<std::uint32_t>(off + 1);
    }
    add(out, at(r.pos, col), Severity::Warning, "unknown-user",
        "user `" + n + "` is not in the users file " + ctx.users->file);
  }
  for (const auto& n : r.users.file_users) {
    if (ctx.users->contains(n)) continue;
    add(out, upos, Severity::Warning, "unknown-user",
        "user `" + n + "` (from a *= file) is not in the users file " + ctx.users->file);
  }
}

}  // namespace

void lint_shell_command(const std::string& cmd, const SourcePos& pos, Diagnostics& out) {
  const auto col = [&pos](std::size_t off) {
    return at(pos, static_cast<std::uint32_t>(pos.column + off));
  };
  for (const auto& [off, letter] : sockd::unknown_percent_tokens(cmd)) {
    const std::string tok = letter == '\0' ? std::string("%") : std::string("%") + letter;
    add(out, col(off), Severity::Warning, "hook-percent",
        "`" + tok +
            "` is not a known % token (%A %a %c %p %S %s %U %u %Z %z %%) and expands to nothing");
  }
  if (const auto h = cmd.find('#'); h != std::string::npos) {
    add(out, col(h), Severity::Warning, "hook-hash",
        "`#` after ':' is not a comment: NEC passes it to the shell as part of the command");
  }
  if (const auto m = cmd.find_first_of(";|&`$<>(){}\\"); m != std::string::npos) {
    add(out, col(m), Severity::Warning, "hook-shell-meta",
        std::string("shell metacharacter `") + cmd[m] +
            "` in the command's literal text (it runs through /bin/sh)");
  }
  if (!cmd.empty() && cmd.front() != '/') {
    add(out, pos, Severity::Warning, "hook-not-absolute",
        "the command does not start with an absolute path; it depends on the daemon's PATH");
  }
}

void lint_rules(const RuleSet& rs, const LintContext& ctx, Diagnostics& out) {
  std::vector<Box> boxes;
  boxes.reserve(rs.rules.size());
  for (const auto& r : rs.rules) boxes.push_back(box_of(r));

  AddrIndex src_index;
  AddrIndex dst_index;
  std::optional<std::size_t> catch_all;
  std::vector<bool> dead(rs.rules.size(), false);
  std::size_t total_ops = 0;
  bool budget_noted = false;

  for (std::size_t i = 0; i < rs.rules.size(); ++i) {
    const Rule& r = rs.rules[i];
    lint_address(r.src, r.pos, r.text, out);
    lint_address(r.dst, r.pos, r.text, out);
    lint_port(r.port, r.pos, out);
    if (r.shell_cmd) lint_shell_command(*r.shell_cmd, at(r.pos, r.shell_cmd_pos.column), out);
    lint_users(r, ctx, out);

    const Box& b = boxes[i];
    if (b.empty()) {
      dead[i] = true;
      if (!PortSet::of(r.port).empty()) {
        add(out, r.pos, Severity::Warning, "never-matches", "this rule matches no request");
      }
    } else if (catch_all) {
      dead[i] = true;
      const Rule& c = rs.rules[*catch_all];
      add(out, r.pos, Severity::Warning, "after-catch-all",
          "unreachable: line " + std::to_string(c.pos.line) + " (" + action_name(c.action) +
              ") already matches every request",
          {c.pos});
    } else if (i > 0) {
      // Candidates: earlier rules that can overlap, from the narrower index.
      auto cand = dst_index.query(b.dst_addr);
      if (auto s = src_index.query(b.src_addr); s && (!cand || s->size() < cand->size()))
        cand = std::move(s);
      Coverage cov;
      if (total_ops < ctx.max_ops_total) {
        cov = cover(b, boxes, cand ? &*cand : nullptr, i, ctx.max_ops_per_rule, total_ops);
      } else if (!budget_noted) {
        budget_noted = true;
        add(out, r.pos, Severity::Note, "coverage-budget",
            "shadowing analysis stopped here: the work budget of " +
                std::to_string(ctx.max_ops_total) +
                " comparisons is spent (later rules are not checked for shadowing)");
      }
      std::vector<SourcePos> related;
      for (const auto j : cov.deciders) related.push_back(rs.rules[j].pos);
      if (cov.determined && cov.covered) {
        dead[i] = true;
        const bool same = std::all_of(cov.deciders.begin(), cov.deciders.end(), [&](std::size_t j) {
          return rs.rules[j].action == r.action;
        });
        const std::string lines = line_list(rs, cov.deciders);
        if (same) {
          add(out, r.pos, Severity::Warning, "redundant",
              std::string("redundant: every request it matches is already ") +
                  (r.action == Action::Permit ? "permitted" : "denied") + " by line" +
                  (cov.deciders.size() > 1 ? "s " : " ") + lines,
              related);
        } else {
          add(out, r.pos, Severity::Warning, "shadowed",
              std::string("shadowed: this ") + action_name(r.action) +
                  " never decides; every request it matches is decided earlier by line" +
                  (cov.deciders.size() > 1 ? "s " : " ") + lines,
              related);
        }
      } else if (cov.determined && !b.is_universe()) {
        // Partial overlap with earlier rules of the other verdict: order
        // matters there. One note per rule (a catch-all is exempt: it
        // overlaps everything by design).
        std::vector<std::size_t> other;
        for (const auto j : cov.deciders) {
          if (rs.rules[j].action == r.action) continue;
          other.push_back(j);
        }
        if (!other.empty()) {
          // Only the line of the example is quoted; the others are listed
          // by number (a note, not a wall of text).
          const std::vector<SourcePos> other_pos{rs.rules[other.front()].pos};
          const auto overlap = intersect(b, boxes[other.front()]);
          add(out, r.pos, Severity::Note, "correlated",
              "partly overlaps earlier line" + std::string(other.size() > 1 ? "s " : " ") +
                  line_list(rs, other) + " (" + action_name(rs.rules[other.front()].action) +
                  "), which decide" + (other.size() > 1 ? " " : "s ") +
                  "part of its requests first, e.g. " +
                  (overlap ? describe(*overlap) : std::string("?")),
              other_pos);
        }
      }
    }
    if (!catch_all && b.is_universe()) catch_all = i;
    src_index.add(i, b.src_addr);
    dst_index.add(i, b.dst_addr);
  }

  // Policy: open relay, unrestricted BIND / UDP.
  for (std::size_t i = 0; i < rs.rules.size(); ++i) {
    const Rule& r = rs.rules[i];
    const Box& b = boxes[i];
    if (dead[i] || r.action != Action::Permit) continue;
    const bool anywhere =
        covers_whole_family(b.src_addr) && b.src_name.full() && covers_whole_family(b.dst_addr);
    if (!anywhere) continue;
    if (b.users.full() && (b.methods & static_cast<std::uint8_t>(sockd::AuthMethod::None)) != 0) {
      add(out, r.pos, Severity::Warning, "open-relay",
          "open relay: permits anyone, from anywhere, to anywhere" +
              std::string(b.iface.full() ? "" : " (on the listed interfaces)"));
      continue;
    }
    if ((b.commands & static_cast<std::uint8_t>(sockd::RuleCommand::Bind)) != 0) {
      add(out, r.pos, Severity::Warning, "open-bind",
          "BIND is permitted from anywhere to anywhere; restrict it with cmd= or the addresses");
    }
    // sockd relays UDP only under a line that writes cmd=udp.
    if (sockd::names_command(r, sockd::RuleCommand::Udp)) {
      add(out, r.pos, Severity::Warning, "open-udp",
          "UDP ASSOCIATE is permitted from anywhere to anywhere; restrict it with cmd= or the "
          "addresses");
    }
  }
  lint_protection(rs, boxes, ctx, out);

  // Identd hooks.
  const auto uses_ident = std::find_if(rs.rules.begin(), rs.rules.end(), [](const Rule& r) {
    return r.ident == sockd::IdentMode::Strict || r.ident == sockd::IdentMode::Lenient;
  });
  const bool global_on =
      ctx.global_ident == sockd::IdentMode::Strict || ctx.global_ident == sockd::IdentMode::Lenient;
  if (uses_ident != rs.rules.end() || (global_on && !rs.rules.empty())) {
    const SourcePos pos = uses_ident != rs.rules.end() ? uses_ident->pos : SourcePos{rs.file, 0, 0};
    const std::string why = uses_ident != rs.rules.end() ? "this rule asks identd (?=I / ?=i)"
                                                         : "identd checking is on (sockd.identd)";
    if (!rs.no_identd) {
      add(out, pos, Severity::Note, "no-identd-hook",
          why + " but there is no #NO_IDENTD: line to run when identd cannot be reached");
    }
    if (!rs.bad_id) {
      add(out, pos, Severity::Note, "no-bad-id-hook",
          why + " but there is no #BAD_ID: line to run when identd reports another user");
    }
  }
  for (const auto* h :
       {rs.no_identd ? &*rs.no_identd : nullptr, rs.bad_id ? &*rs.bad_id : nullptr}) {
    if (h == nullptr) continue;
    const auto off = h->text.find(h->shell_cmd);
    lint_shell_command(
        h->shell_cmd,
        at(h->pos, off == std::string::npos ? 1 : static_cast<std::uint32_t>(off + 1)), out);
  }
}

void lint_routes(const sockd::RouteTable& rt, const LintContext& ctx, Diagnostics& out) {
  std::vector<Box> boxes;
  AddrSet uncovered = AddrSet::all(false);
  for (const auto& r : rt.routes) {
    Box b = Box::universe();
    restrict_dst(b, r.dst);
    boxes.push_back(b);
    lint_address(r.dst, r.pos, r.text, out);
  }
  for (std::size_t i = 0; i < rt.routes.size(); ++i) {
    const auto& r = rt.routes[i];
    const std::string egress = r.egress_addr ? r.egress_addr->to_string() : r.egress_iface;
    if (r.egress_addr && !ctx.gateway_addresses.empty()) {
      const auto a = r.egress_addr->unmapped();
      if (std::find(ctx.gateway_addresses.begin(), ctx.gateway_addresses.end(), a) ==
          ctx.gateway_addresses.end()) {
        add(out, r.pos, Severity::Warning, "route-egress-unknown",
            "egress " + egress + " is not one of the gateway's addresses (from " +
                ctx.addresses_source + ")");
      }
    }
    if (!r.egress_iface.empty() && !ctx.interface_names.empty() &&
        std::find(ctx.interface_names.begin(), ctx.interface_names.end(), r.egress_iface) ==
            ctx.interface_names.end()) {
      add(out, r.pos, Severity::Warning, "route-egress-unknown",
          "egress interface " + r.egress_iface + " is not configured in gateway.toml");
    }
    for (const auto& l : ctx.internal_interfaces) {
      const bool by_name = !r.egress_iface.empty() && r.egress_iface == l.name;
      const bool by_addr =
          r.egress_addr && std::any_of(l.addresses.begin(), l.addresses.end(), [&](const auto& p) {
            return p.addr == r.egress_addr->unmapped();
          });
      if (by_name || by_addr) {
        add(out, r.pos, Severity::Warning, "route-egress-internal",
            "egress " + egress + " is the internal interface " + l.name +
                " the relay listens on; relayed traffic would go back inside");
      }
    }
    // Shadowed / overlapping lines (route tables are short: plain scan).
    if (i > 0) {
      std::size_t route_ops = 0;
      const Coverage cov = cover(boxes[i], boxes, nullptr, i, ctx.max_ops_per_rule, route_ops);
      std::vector<SourcePos> related;
      std::string lines;
      for (const auto j : cov.deciders) {
        related.push_back(rt.routes[j].pos);
        lines += (lines.empty() ? "" : ", ") + std::to_string(rt.routes[j].pos.line);
      }
      if (cov.determined && cov.covered) {
        add(out, r.pos, Severity::Warning, "route-shadowed",
            "never used: every destination it covers is routed earlier by line" +
                std::string(cov.deciders.size() > 1 ? "s " : " ") + lines,
            related);
      } else if (cov.determined) {
        for (const auto j : cov.deciders) {
          const auto& o = rt.routes[j];
          if (o.egress_addr == r.egress_addr && o.egress_iface == r.egress_iface) continue;
          const auto overlap = intersect(boxes[i], boxes[j]);
          add(out, r.pos, Severity::Note, "route-overlap",
              "partly overlaps line " + std::to_string(o.pos.line) + ", which routes " +
                  (overlap ? describe(*overlap) : std::string("part of it")) + " first",
              {o.pos});
        }
      }
    }
    uncovered = subtract(uncovered, boxes[i].dst_addr);
  }
  const bool v4 = !std::any_of(uncovered.cubes.begin(), uncovered.cubes.end(),
                               [](const Cube& c) { return c.family == Family::V4; });
  const bool v6 = !std::any_of(uncovered.cubes.begin(), uncovered.cubes.end(),
                               [](const Cube& c) { return c.family == Family::V6; });
  if (!v4 && !v6) {
    add(out, SourcePos{rt.file, 0, 0}, Severity::Warning, "route-no-default",
        "no default line (0.0.0.0 0.0.0.0 or ::/0): requests to other destinations fail with no "
        "route");
  } else if (!v4 || !v6) {
    add(out, SourcePos{rt.file, 0, 0}, Severity::Note, "route-no-default",
        std::string("no default line for IPv") + (v4 ? "6" : "4") + " destinations");
  }
}

void lint_hits(const sockd::RuleSet& rs, const sockd::HitsReport& hits,
               const std::string& hits_file, Diagnostics& out) {
  const auto base = [](const std::string& p) {
    const auto slash = p.rfind('/');
    return slash == std::string::npos ? p : p.substr(slash + 1);
  };
  const std::string rules_base = base(rs.file);
  std::map<std::uint32_t, sockd::HitCount> by_line;
  std::vector<std::string> other_files;
  for (const auto& [key, count] : hits.rules) {
    if (key.first == rs.file || base(key.first) == rules_base) {
      sockd::HitCount& c = by_line[key.second];
      c.hits += count.hits;
      c.last = std::max(c.last, count.last);
    } else if (std::find(other_files.begin(), other_files.end(), key.first) == other_files.end()) {
      other_files.push_back(key.first);
    }
  }
  if (by_line.empty()) {
    std::string names;
    for (const auto& f : other_files) names += (names.empty() ? "" : ", ") + f;
    out.warning({hits_file, 0, 0},
                "names no line of " + rs.file +
                    (names.empty() ? std::string(" (it names no rule at all)") : " (it names " + names + ")") +
                    ": the hits cannot be compared",
                "hits-other-file");
    return;
  }
  const std::string since =
      hits.since != 0 ? "since " + sockd::iso8601_utc(hits.since) : "in the counted period";
  std::map<std::uint32_t, const sockd::Rule*> rules_by_line;
  for (const auto& r : rs.rules) rules_by_line[r.pos.line] = &r;
  for (const auto& r : rs.rules) {
    const auto it = by_line.find(r.pos.line);
    if (it == by_line.end()) {
      out.note({rs.file, r.pos.line, 1},
               "rule not in " + hits_file + ": the file changed since the hits were taken?",
               "hits-missing");
    } else if (it->second.hits == 0) {
      out.note({rs.file, r.pos.line, 1},
               "never decided a request " + since + " (" + hits_file + ")", "never-hit");
    }
  }
  for (const auto& [line, count] : by_line) {
    if (rules_by_line.count(line) != 0) continue;
    out.warning({rs.file, line, 0},
                hits_file + " counts " + std::to_string(count.hits) +
                    " hit(s) for this line, which is not a rule now: the file changed since the "
                    "hits were taken",
                "hits-stale");
  }
}

void lint_client(const sockd::ClientRuleSet& cs, const LintContext& ctx, Diagnostics& out) {
  for (const auto& r : cs.rules) {
    if (r.shell_cmd) {
      const auto off = r.text.find(*r.shell_cmd);
      lint_shell_command(
          *r.shell_cmd,
          at(r.pos, off == std::string::npos ? 1 : static_cast<std::uint32_t>(off + 1)), out);
    }
    if (r.action != sockd::ClientAction::Sockd || ctx.gateway_addresses.empty()) continue;
    for (const auto& s : r.servers) {
      auto host = s;
      if (auto ep = platform::Endpoint::parse(s)) host = ep->addr.to_string();
      const auto a = IpAddress::parse(host);
      if (!a) continue;  // a name: not checkable without DNS
      if (std::find(ctx.gateway_addresses.begin(), ctx.gateway_addresses.end(), *a) ==
          ctx.gateway_addresses.end()) {
        add(out, r.pos, Severity::Warning, "client-server-unknown",
            "server " + s + " is not one of the gateway's addresses (from " + ctx.addresses_source +
                ")");
      }
    }
  }
}

}  // namespace diode::tools
