#pragma once
// Collected diagnostics for configuration files: every problem, not the
// first, each as `file:line:col: severity: message`.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace diode::platform {

enum class Severity { Note, Warning, Error };

std::string_view to_string(Severity s);

struct SourcePos {
  std::string file;
  std::uint32_t line = 0;    // 1-based; 0 when the problem is about the whole file
  std::uint32_t column = 0;  // 1-based; 0 when unknown
};

struct Diagnostic {
  SourcePos pos;
  Severity severity = Severity::Error;
  std::string code;     // short stable identifier, e.g. "shadowed", "bad-mask"
  std::string message;
  std::vector<SourcePos> related;  // other lines involved (e.g. the shadowing rule)

  /// `file:line:col: severity: message` (line/col omitted when zero).
  std::string format() const;
};

/// An ordered list of diagnostics; owns its entries.
class Diagnostics {
 public:
  void add(Diagnostic d) { items_.push_back(std::move(d)); }
  void error(SourcePos pos, std::string message, std::string code = {});
  void warning(SourcePos pos, std::string message, std::string code = {});
  void note(SourcePos pos, std::string message, std::string code = {});

  bool has_errors() const;
  std::size_t count(Severity s) const;
  bool empty() const { return items_.empty(); }
  const std::vector<Diagnostic>& items() const { return items_; }
  std::vector<Diagnostic>& items() { return items_; }
  void append(const Diagnostics& other);

  /// Every diagnostic, one formatted line each, newline-terminated.
  std::string format() const;

 private:
  std::vector<Diagnostic> items_;
};

}  // namespace diode::platform
