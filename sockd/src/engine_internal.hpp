#pragma once
// Shared between engine.cpp (reference semantics) and engine_index.cpp (the
// compiled index): one request, normalised once, and the per-rule test on it.

#include <optional>
#include <string>
#include <string_view>

#include "diode/sockd/rules.hpp"

namespace diode::sockd::detail {

/// Lower case, one trailing dot removed: the form rules store names in.
std::string normalise_name(std::string_view name);

/// `m` is Kind::Domain; `name` is normalised.
bool domain_matches(const AddressMatch& m, std::string_view name);

/// One side of a rule against a normalised (unmapped) address and name.
bool side_matches(const AddressMatch& m, const std::optional<IpAddress>& addr,
                  const std::optional<std::string>& name);

/// A request with addresses unmapped (::ffff:a.b.c.d → a.b.c.d) and names
/// normalised, so every rule test shares that work.
struct PreparedRequest {
  explicit PreparedRequest(const RuleRequest& q);
  const RuleRequest* request;
  std::optional<IpAddress> src_addr;  // always set; optional to share side_matches
  std::optional<std::string> src_name;
  std::optional<IpAddress> dst_addr;
  std::optional<std::string> dst_name;
};

bool prepared_matches(const Rule& r, const PreparedRequest& p, Field* stopped_by);

}  // namespace diode::sockd::detail
