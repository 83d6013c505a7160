#pragma once
// Merging the children's Prometheus text (exposition format 0.0.4) into one
// page: each child's samples get a `child="NAME"` label, and the samples of
// one metric family from every child stand together under one HELP and TYPE
// line, as the format requires. Sans-I/O.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace diode::gateway {

/// `pages` holds (child name, that child's exposition text). Lines that are
/// neither comments nor `name[{labels}] value` samples are dropped.
std::string merge_metrics(const std::vector<std::pair<std::string, std::string>>& pages);

/// `name{child="X",rest} value` from `name{rest} value` or `name value`.
std::string add_label(std::string_view sample, std::string_view key, std::string_view value);

}  // namespace diode::gateway
