#pragma once
// Resource records in presentation format (RFC 1035 §5.1, RFC 4034 §2.2,
// §3.2, §4.2, §5.3, RFC 5155 §3.3, §4.3, RFC 3597 §5): what trust-anchor
// files (Debian's /usr/share/dns/root.key, root.ds) and signed zone files
// hold. Supports $ORIGIN, $TTL, parentheses, comments, relative names and
// the types a DNSSEC chain needs; any type in RFC 3597's generic form.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "diode/resolver/name.hpp"
#include "diode/resolver/rrset.hpp"

namespace diode::resolver {

struct TextRecord {
  Name owner;
  std::uint16_t type = 0;
  std::uint16_t rclass = rrclass::kIN;
  std::uint32_t ttl = 0;
  std::vector<std::uint8_t> rdata;  // uncompressed wire form
  std::size_t line = 0;
};

/// A problem in the text: 1-based line and column, and what is wrong.
struct TextError {
  std::size_t line = 0;
  std::size_t column = 0;
  std::string message;
};

struct ZoneText {
  std::vector<TextRecord> records;
  std::vector<TextError> errors;  // every bad record, not only the first
};

/// Parses `text`; records with errors are left out and reported.
ZoneText parse_zone_text(std::string_view text, const Name& origin = Name(),
                         std::uint32_t default_ttl = 3600);

/// Groups records into RRsets by owner, type and class, in order of first
/// appearance; the TTL is the smallest seen.
std::vector<RRset> group_rrsets(const std::vector<TextRecord>& records);

/// "YYYYMMDDHHmmSS" (UTC) or a plain decimal number of seconds, as in an
/// RRSIG's time fields (RFC 4034 §3.2), as Unix seconds.
std::optional<std::uint64_t> parse_dnssec_time(std::string_view text);

/// RFC 4648 §4 base64 (whitespace not allowed; the caller joins tokens).
std::optional<std::vector<std::uint8_t>> base64_decode(std::string_view text);

}  // namespace diode::resolver
