// NEC percent_x.c expansion of shell commands, and its sanitising.
#include <catch2/catch.hpp>

#include <unistd.h>

#include "diode/sockd/expand.hpp"

using namespace diode::sockd;

namespace {
ExpandContext sample() {
  ExpandContext c;
  c.client_host = "pc1.example.test";
  c.client_addr = "192.0.2.10";
  c.command = "connect";
  c.pid = "4242";
  c.dst_service = "telnet";
  c.dst_port = "23";
  c.ident_user = "realuser";
  c.client_user = "clyde";
  c.dst_host = "www.example.test";
  c.dst_addr = "198.51.100.7";
  return c;
}
}  // namespace

TEST_CASE("every NEC % token", "[sockd][expand]") {
  CHECK(expand_command("%A %a %c %p %S %s %U %u %Z %z %%", sample()) ==
        "pc1.example.test 192.0.2.10 connect 4242 telnet 23 realuser clyde www.example.test 198.51.100.7 %");
  CHECK(expand_command("/usr/ucb/mail -s '%U pretends to be %u on %A' $USER", sample()) ==
        "/usr/ucb/mail -s 'realuser pretends to be clyde on pc1.example.test' $USER");
  CHECK(expand_command("no tokens; 'quotes' stay", sample()) == "no tokens; 'quotes' stay");
}

TEST_CASE("unknown tokens expand to nothing and are reported", "[sockd][expand]") {
  CHECK(expand_command("a%xb%Qc%", sample()) == "abc");
  const auto unknown = unknown_percent_tokens("a%xb%Qc %% %u %");
  REQUIRE(unknown.size() == 3);
  CHECK(unknown[0] == std::pair<std::size_t, char>{1, 'x'});
  CHECK(unknown[1] == std::pair<std::size_t, char>{4, 'Q'});
  CHECK(unknown[2] == std::pair<std::size_t, char>{14, '\0'});
  CHECK(unknown_percent_tokens("%A%a%c%p%S%s%U%u%Z%z%%").empty());
}

TEST_CASE("expanded values are sanitised, the literal text is not", "[sockd][expand]") {
  ExpandContext c = sample();
  c.client_user = "x'; rm -rf / #`$(id)\"|&<>\n";
  CHECK(expand_command("echo '%u'", c) == "echo 'x___rm_-rf_/_____id_______'");
  c.client_user = "!@%-_=+:,./AZaz09";
  CHECK(expand_command("%u", c) == "!@%-_=+:,./AZaz09");
  c.client_user = "caf\xc3\xa9";
  CHECK(expand_command("%u", c) == "caf__");
}

TEST_CASE("an expanded value is never an option and never a shell escape", "[sockd][expand]") {
  ExpandContext c = sample();
  // A leading '-' would make the value an option of the administrator's
  // command (`rm %u` with user `-rf`): it becomes '_'; later ones stay.
  c.client_user = "-rf";
  CHECK(expand_command("/bin/rm %u", c) == "/bin/rm _rf");
  c.client_user = "--output=/etc/x";
  CHECK(expand_command("%u", c) == "_-output=/etc/x");
  c.client_user = "a-b";
  CHECK(expand_command("%u", c) == "a-b");
  // A backslash escapes the next character (outside quotes) or the closing
  // double quote (inside them): `"%u"` with `a\` would run on past the quote.
  c.client_user = "a\\b";
  CHECK(expand_command("%u", c) == "a_b");
  c.client_user = "a\\";
  CHECK(expand_command("/bin/echo \"%u\" end", c) == "/bin/echo \"a_\" end");
  // Every token gets the same treatment: identd's answer, names, the lot.
  c.ident_user = "-x\\y";
  c.dst_host = "-evil.test";
  c.client_host = "-h";
  CHECK(expand_command("%U %Z %A", c) == "_x_y _evil.test _h");
  // Only the value's first character: literal text and %% are left alone.
  c.client_user = "u";
  CHECK(expand_command("-%u %%-", c) == "-u %-");
}

TEST_CASE("context_for a request", "[sockd][expand]") {
  RuleRequest q;
  q.src_addr = *diode::platform::IpAddress::parse("192.0.2.10");
  q.user = "alice";
  q.command = RuleCommand::Bind;
  q.dst_addr = *diode::platform::IpAddress::parse("2001:db8::7");
  q.dst_port = 21;
  const auto c = context_for(q);
  CHECK(c.client_host == "192.0.2.10");
  CHECK(c.client_addr == "192.0.2.10");
  CHECK(c.command == "bind");
  CHECK(c.pid == std::to_string(getpid()));
  CHECK(c.dst_port == "21");
  CHECK(c.dst_host == "2001:db8::7");
  CHECK(c.ident_user == "unknown");
  CHECK(c.client_user == "alice");
  q.ident = IdentResult::Ok;
  CHECK(context_for(q).ident_user == "alice");
  q.ident = IdentResult::Mismatch;
  q.ident_user = "mallory";
  CHECK(context_for(q).ident_user == "mallory");
  q.dst_name = "ftp.example.test";
  CHECK(context_for(q).dst_host == "ftp.example.test");
}
