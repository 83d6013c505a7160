#include "diode/sockd/expand.hpp"

#include <unistd.h>

namespace diode::sockd {
namespace {

bool is_safe_char(char c) {
  if ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')) return true;
  switch (c) {
    // No '\\': outside quotes it escapes the next character, inside double
    // quotes it escapes the closing one (NEC allowed it).
    case '!': case '@': case '%': case '-': case '_': case '=': case '+':
    case ':': case ',': case '.': case '/':
      return true;
    default:
      return false;
  }
}

const std::string* value_for(char token, const ExpandContext& ctx) {
  switch (token) {
    case 'A': return &ctx.client_host;
    case 'a': return &ctx.client_addr;
    case 'c': return &ctx.command;
    case 'p': return &ctx.pid;
    case 'S': return &ctx.dst_service;
    case 's': return &ctx.dst_port;
    case 'U': return &ctx.ident_user;
    case 'u': return &ctx.client_user;
    case 'Z': return &ctx.dst_host;
    case 'z': return &ctx.dst_addr;
    default: return nullptr;
  }
}

const char* command_name(RuleCommand c) {
  switch (c) {
    case RuleCommand::Connect: return "connect";
    case RuleCommand::Bind: return "bind";
    case RuleCommand::Udp: return "udp";
  }
  return "connect";
}

}  // namespace

std::string expand_command(std::string_view cmd, const ExpandContext& ctx) {
  std::string out;
  out.reserve(cmd.size() + 32);
  for (std::size_t i = 0; i < cmd.size(); ++i) {
    if (cmd[i] != '%') {
      out.push_back(cmd[i]);
      continue;
    }
    if (i + 1 >= cmd.size()) break;  // a trailing lone % expands to nothing
    const char token = cmd[++i];
    if (token == '%') {
      out.push_back('%');
      continue;
    }
    // Values come from the network (user names, identd answers, DNS): only
    // the literal set survives, so they cannot carry quotes, blanks or ';',
    // and a leading '-' becomes '_' so a value is never taken as an option.
    if (const std::string* v = value_for(token, ctx)) {
      for (std::size_t k = 0; k < v->size(); ++k) {
        const char c = (*v)[k];
        out.push_back(is_safe_char(c) && !(k == 0 && c == '-') ? c : '_');
      }
    }
  }
  return out;
}

std::vector<std::pair<std::size_t, char>> unknown_percent_tokens(std::string_view cmd) {
  std::vector<std::pair<std::size_t, char>> out;
  for (std::size_t i = 0; i < cmd.size(); ++i) {
    if (cmd[i] != '%') continue;
    if (i + 1 >= cmd.size()) {
      out.emplace_back(i, '\0');
      break;
    }
    const char token = cmd[++i];
    if (token != '%' && value_for(token, ExpandContext{}) == nullptr) out.emplace_back(i - 1, token);
  }
  return out;
}

ExpandContext context_for(const RuleRequest& q) {
  ExpandContext ctx;
  ctx.client_addr = q.src_addr.to_string();
  ctx.client_host = q.src_name ? *q.src_name : ctx.client_addr;
  ctx.command = command_name(q.command);
  ctx.pid = std::to_string(::getpid());
  ctx.dst_port = std::to_string(q.dst_port);
  ctx.dst_service = ctx.dst_port;
  // identd confirmed the client's own name when Ok, so an empty report means that name.
  if (q.ident == IdentResult::Ok) {
    ctx.ident_user = q.ident_user.empty() ? q.user : q.ident_user;
  } else if (q.ident == IdentResult::Mismatch && !q.ident_user.empty()) {
    ctx.ident_user = q.ident_user;
  } else {
    ctx.ident_user = "unknown";
  }
  ctx.client_user = q.user;
  ctx.dst_addr = q.dst_addr ? q.dst_addr->to_string() : std::string();
  ctx.dst_host = q.dst_name ? *q.dst_name : ctx.dst_addr;
  return ctx;
}

}  // namespace diode::sockd
