#pragma once
// Pieces the three rule-file parsers share: line splitting with NEC's limits,
// the tokenizer (blank-separated words, `#` comments, `: shell_cmd`), error
// collection with a cap, and the address, port and list fields.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "diode/platform/diagnostics.hpp"
#include "diode/sockd/parse.hpp"
#include "diode/sockd/rules.hpp"

namespace diode::sockd::detail {

inline constexpr std::size_t kMaxLineLength = 1023;  // NEC's 1024-byte line buffer
inline constexpr std::size_t kMaxErrors = 100;
inline constexpr std::uint64_t kMaxFileSize = 64ULL * 1024 * 1024;

/// Collects errors as `file:line:col: error: message`; after kMaxErrors it
/// adds one "too many errors" line and asks the caller to stop.
class ErrorSink {
 public:
  ErrorSink(platform::Diagnostics& diags, const std::string& file) : diags_(diags), file_(file) {}
  void error(std::uint32_t line, std::uint32_t col, std::string message);
  bool stopped() const { return stopped_; }
  bool any() const { return count_ > 0 || stopped_; }
  const std::string& file() const { return file_; }
  platform::SourcePos pos(std::uint32_t line, std::uint32_t col) const { return {file_, line, col}; }

 private:
  platform::Diagnostics& diags_;
  const std::string& file_;
  std::size_t count_ = 0;
  bool stopped_ = false;
};

struct Token {
  std::string_view text;
  std::uint32_t col = 0;  // 1-based
  std::uint32_t end_col() const { return col + static_cast<std::uint32_t>(text.size()); }
};

struct LineTokens {
  std::vector<Token> tokens;
  bool has_shell = false;
  std::string_view shell;       // trimmed text after ':'
  std::uint32_t shell_col = 0;  // column of its first character
  std::uint32_t colon_col = 0;
  std::uint32_t end_col = 1;    // just after the last token
};

enum class ColonRule : std::uint8_t {
  ShellCommand,        // sockd.conf: ':' starts the command unless it is inside an IPv6 address
  ShellCommandListAt,  // socks.conf: the same, but an `@=` server list keeps its ':port's
  Plain,               // sockd.route: no commands; ':' is an ordinary character
};

/// Calls `fn(line_text, line_number)` for each line that passes the
/// line-level checks (length, control characters); CRLF is accepted.
template <class F>
void for_each_line(std::string_view text, ErrorSink& sink, F&& fn);

/// Splits one line into words, honouring `#` and `: shell_cmd`. The result
/// is a per-thread buffer, valid until the next call on this thread.
const LineTokens& tokenize(std::string_view line, ColonRule rule);

/// An address field starting at tokens[i]: one word, or an address and its
/// mask. On success `consumed` is 1 or 2; on failure `error` is set.
struct AddressParse {
  std::optional<AddressMatch> match;
  std::size_t consumed = 1;
  std::string error;
  std::uint32_t error_col = 0;
};
AddressParse parse_address_tokens(const std::vector<Token>& tokens, std::size_t i);

/// A TCP service name's port (getservbyname_r, cached per thread).
std::optional<std::uint16_t> lookup_service(std::string_view name);

/// True for `eq neq lt gt le ge range` in any case.
bool is_port_op(std::string_view word);

/// `op operand` at tokens[i]; reports errors itself. Returns consumed words.
std::size_t parse_port_test(const std::vector<Token>& tokens, std::size_t i, std::uint32_t line,
                            std::uint32_t line_end, ErrorSink& sink, PortTest& out);

/// User files read once per parse (a 100k-line file naming one list stays fast).
struct UserFileCache {
  std::unordered_map<std::string, std::optional<std::vector<std::string>>> files;
  std::unordered_map<std::string, std::string> errors;
};

/// The value of a `*=` token (without the `*=`), at column `col`.
void parse_user_list(std::string_view value, std::uint32_t col, std::uint32_t line,
                     const ParseOptions& opts, UserFileCache& cache, ErrorSink& sink, UserList& out);

/// Reads a whole file (≤ 64 MiB) or returns nullopt with a message.
std::optional<std::string> read_text_file(const std::string& path, std::string& error);

/// Reads a rule file for load_*, reporting one error on failure.
std::optional<std::string> read_config_file(const std::string& path, platform::Diagnostics& diags);

bool is_interface_name(std::string_view s);
std::string lower(std::string_view s);

template <class F>
void for_each_line(std::string_view text, ErrorSink& sink, F&& fn) {
  std::uint32_t number = 0;
  std::size_t start = 0;
  while (start < text.size() && !sink.stopped()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    ++number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    bool bad = false;
    for (std::size_t i = 0; i < line.size(); ++i) {
      const auto c = static_cast<unsigned char>(line[i]);
      if ((c < 0x20 && c != '\t') || c == 0x7f) {
        static constexpr char kHex[] = "0123456789abcdef";
        std::string msg = "binary data: control character 0x";
        msg += kHex[c >> 4];
        msg += kHex[c & 15];
        msg += " (is this a text file?)";
        sink.error(number, static_cast<std::uint32_t>(i + 1), std::move(msg));
        bad = true;
        break;
      }
    }
    if (bad) continue;
    if (line.size() > kMaxLineLength) {
      sink.error(number, static_cast<std::uint32_t>(kMaxLineLength + 1),
                 "line is " + std::to_string(line.size()) +
                     " characters long; NEC SOCKS's limit of 1023 applies");
      continue;
    }
    fn(line, number);
  }
}

}  // namespace diode::sockd::detail
