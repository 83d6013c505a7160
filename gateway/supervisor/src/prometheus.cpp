#include "diode/gateway/prometheus.hpp"

#include <algorithm>
#include <map>

namespace diode::gateway {

namespace {

bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == ':';
}

// The metric name at the start of a sample line: `name[{labels}] value`
// with a numeric value; "" if the line is no such sample.
std::string_view sample_name(std::string_view line) {
  std::size_t n = 0;
  while (n < line.size() && name_char(line[n])) ++n;
  if (n == 0 || n == line.size() || (line[n] != '{' && line[n] != ' ')) return {};
  std::size_t rest = n;
  if (line[n] == '{') {
    rest = line.find('}', n);
    if (rest == std::string_view::npos) return {};
    ++rest;
  }
  if (rest >= line.size() || line[rest] != ' ') return {};
  const std::string_view value = line.substr(rest + 1, line.find(' ', rest + 1) - (rest + 1));
  if (value == "+Inf" || value == "-Inf" || value == "NaN") return line.substr(0, n);
  if (value.empty()) return {};
  for (const char c : value) {
    if ((c < '0' || c > '9') && c != '.' && c != '-' && c != '+' && c != 'e' && c != 'E') return {};
  }
  return line.substr(0, n);
}

struct Family {
  std::string help;  // whole "# HELP ..." line, "" if none seen
  std::string type;  // whole "# TYPE ..." line
  std::vector<std::string> samples;
};

}  // namespace

std::string add_label(std::string_view sample, std::string_view key, std::string_view value) {
  const std::string_view name = sample_name(sample);
  std::string label = std::string{key} + "=\"";
  for (const char c : value) {
    if (c == '\\' || c == '"') label += '\\';
    if (c == '\n') {
      label += "\\n";
      continue;
    }
    label += c;
  }
  label += '"';
  const std::string_view rest = sample.substr(name.size());
  if (!rest.empty() && rest.front() == '{') {
    const bool empty = rest.size() > 1 && rest[1] == '}';
    return std::string{name} + "{" + label + (empty ? "" : ",") + std::string{rest.substr(1)};
  }
  return std::string{name} + "{" + label + "}" + std::string{rest};
}

std::string merge_metrics(const std::vector<std::pair<std::string, std::string>>& pages) {
  std::vector<std::string> order;
  std::map<std::string, Family> families;
  auto family_of = [&](std::string_view name) -> Family& {
    // A histogram's or summary's samples carry suffixes of its family name.
    for (const std::string_view suffix : {"_bucket", "_sum", "_count"}) {
      if (name.size() > suffix.size() && name.substr(name.size() - suffix.size()) == suffix) {
        const std::string base{name.substr(0, name.size() - suffix.size())};
        if (families.count(base) != 0) return families[base];
      }
    }
    const std::string key{name};
    if (families.count(key) == 0) order.push_back(key);
    return families[key];
  };
  for (const auto& [child, text] : pages) {
    std::size_t pos = 0;
    while (pos < text.size()) {
      std::size_t end = text.find('\n', pos);
      if (end == std::string::npos) end = text.size();
      const std::string_view line{text.data() + pos, end - pos};
      pos = end + 1;
      if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) {
        const std::string_view rest = line.substr(7);
        const std::string_view name = rest.substr(0, rest.find(' '));
        if (name.empty()) continue;
        Family& f = family_of(name);
        std::string& slot = line[2] == 'H' ? f.help : f.type;
        if (slot.empty()) slot = std::string{line};
        continue;
      }
      const std::string_view name = sample_name(line);
      if (name.empty()) continue;
      family_of(name).samples.push_back(add_label(line, "child", child));
    }
  }
  std::string out;
  for (const auto& name : order) {
    const Family& f = families[name];
    if (!f.help.empty()) out += f.help + "\n";
    if (!f.type.empty()) out += f.type + "\n";
    for (const auto& s : f.samples) out += s + "\n";
  }
  return out;
}

}  // namespace diode::gateway
