#include "diode/platform/diagnostics.hpp"

#include <algorithm>

namespace diode::platform {

std::string_view to_string(Severity s) {
  switch (s) {
    case Severity::Note: return "note";
    case Severity::Warning: return "warning";
    case Severity::Error: return "error";
  }
  return "error";
}

namespace {
std::string format_pos(const SourcePos& p) {
  std::string out = p.file;
  if (p.line != 0) {
    out += ':' + std::to_string(p.line);
    if (p.column != 0) out += ':' + std::to_string(p.column);
  }
  return out;
}
}  // namespace

std::string Diagnostic::format() const {
  std::string out = format_pos(pos);
  out += ": ";
  out += to_string(severity);
  out += ": ";
  out += message;
  return out;
}

void Diagnostics::error(SourcePos pos, std::string message, std::string code) {
  items_.push_back({std::move(pos), Severity::Error, std::move(code), std::move(message), {}});
}
void Diagnostics::warning(SourcePos pos, std::string message, std::string code) {
  items_.push_back({std::move(pos), Severity::Warning, std::move(code), std::move(message), {}});
}
void Diagnostics::note(SourcePos pos, std::string message, std::string code) {
  items_.push_back({std::move(pos), Severity::Note, std::move(code), std::move(message), {}});
}

bool Diagnostics::has_errors() const { return count(Severity::Error) != 0; }

std::size_t Diagnostics::count(Severity s) const {
  return static_cast<std::size_t>(
      std::count_if(items_.begin(), items_.end(), [s](const Diagnostic& d) { return d.severity == s; }));
}

void Diagnostics::append(const Diagnostics& other) {
  items_.insert(items_.end(), other.items_.begin(), other.items_.end());
}

std::string Diagnostics::format() const {
  std::string out;
  for (const auto& d : items_) {
    out += d.format();
    out += '\n';
    for (const auto& r : d.related) {
      out += format_pos(r);
      out += ": note: related line\n";
    }
  }
  return out;
}

}  // namespace diode::platform
