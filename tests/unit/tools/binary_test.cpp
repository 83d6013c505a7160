// The real sockd-check binary: every shell example in docs/sockd-check.md
// is run from the repository root and its exit status compared with the
// `# exit N` comment it carries; the JSON outputs are checked with Python's
// json module (python3 is in scripts/setup.sh).
#include <sys/wait.h>

#include <array>
#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

namespace {

struct Result {
  int status;
  std::string output;
};

// Runs `command` through /bin/sh from the repository root.
Result shell(const std::string& command) {
  const std::string full = "cd '" + std::string(DIODE_SOURCE_DIR) + "' && " + command + " 2>&1";
  FILE* p = ::popen(full.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  std::array<char, 4096> buf{};
  std::size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int st = ::pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

struct Example {
  std::string args;
  int expected;
  std::size_t line;
};

std::vector<Example> doc_examples() {
  std::ifstream in(std::string(DIODE_SOURCE_DIR) + "/docs/sockd-check.md");
  REQUIRE(in);
  std::vector<Example> out;
  const std::regex cmd(R"(^sockd-check(\s.*?)\s+# exit (\d+)\s*$)");
  bool in_sh = false;
  std::size_t n = 0;
  for (std::string line; std::getline(in, line);) {
    ++n;
    if (line.rfind("```", 0) == 0) {
      in_sh = !in_sh && line == "```sh";
      continue;
    }
    if (!in_sh || line.empty()) continue;
    std::smatch m;
    INFO("docs/sockd-check.md:" << n << ": " << line);
    REQUIRE(std::regex_match(line, m, cmd));  // every sh line is a checked command
    out.push_back({m[1].str(), std::stoi(m[2].str()), n});
  }
  return out;
}

}  // namespace

TEST_CASE("docs/sockd-check.md: every sh example runs with its exit status",
          "[sockd-check][docs]") {
  const auto examples = doc_examples();
  CHECK(examples.size() >= 12);
  for (const auto& e : examples) {
    const auto r = shell(std::string(SOCKD_CHECK_BIN) + e.args);
    INFO("docs/sockd-check.md:" << e.line << ": sockd-check" << e.args << "\n" << r.output);
    CHECK(r.status == e.expected);
    CHECK_FALSE(r.output.empty());
  }
}

TEST_CASE("the binary's JSON is valid JSON", "[sockd-check][json]") {
  if (shell("command -v python3 >/dev/null").status != 0) {
    WARN("python3 not installed: JSON validity not checked");
    return;
  }
  const std::string bin = SOCKD_CHECK_BIN;
  const std::string check_doc =
      " | python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d))'";
  const std::string check_lines =
      " | python3 -c 'import json,sys; rows=[json.loads(l) for l in sys.stdin]; "
      "assert all(r[\"verdict\"] in (\"permit\",\"deny\") and \"line\" in r and \"route\" in r for "
      "r in rows); "
      "print(len(rows))'";
  const auto lint =
      shell(bin + " lint --json --config tests/unit/tools/data/broken-gateway.toml" + check_doc);
  INFO(lint.output);
  CHECK(lint.status == 0);
  const auto garbage = shell("head -c 3000 " + bin + " > /tmp/sockd-check-garbage.$$ && " + bin +
                             " lint --json --rules /tmp/sockd-check-garbage.$$" + check_doc +
                             "; rc=$?; rm -f /tmp/sockd-check-garbage.$$; exit $rc");
  INFO(garbage.output);
  CHECK(garbage.status == 0);
  const auto batch = shell(bin +
                           " simulate --json --rules conf/sockd.conf --routes conf/sockd.route "
                           "--batch conf/simulate.flows" +
                           check_lines);
  INFO(batch.output);
  CHECK(batch.status == 0);
  CHECK(batch.output == "12\n");
  const auto diff =
      shell(bin + " diff --json tests/unit/tools/data/old.conf tests/unit/tools/data/new.conf" +
            check_doc);
  INFO(diff.output);
  CHECK(diff.status == 0);
}

TEST_CASE("the binary: usage errors exit 64", "[sockd-check][cli]") {
  const std::string bin = SOCKD_CHECK_BIN;
  CHECK(shell(bin).status == 64);
  CHECK(shell(bin + " lint --bogus").status == 64);
  const auto r =
      shell(bin + " simulate --rules conf/sockd.conf --from 999.1.1.1 --to 198.51.100.7:80");
  CHECK(r.status == 64);
  CHECK(r.output.find("invalid client address '999.1.1.1'") != std::string::npos);
}
