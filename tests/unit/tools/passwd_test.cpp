// sockd-check passwd: adding, changing, locking and deleting users in a
// users file, through the same entry point the binary uses.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "diode/sockd/auth.hpp"
#include "diode/sockd/users.hpp"
#include "diode/tools/check.hpp"

namespace fs = std::filesystem;

namespace {

struct Run {
  int rc;
  std::string out;
  std::string err;
};

Run run(std::vector<std::string> args) {
  std::ostringstream out;
  std::ostringstream err;
  const int rc = diode::tools::sockd_check_main(args, out, err);
  return {rc, out.str(), err.str()};
}

void write(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

diode::sockd::UsersFile load(const fs::path& p) {
  diode::platform::Diagnostics d;
  auto u = diode::sockd::load_users_file(p.string(), d);
  INFO(d.format());
  REQUIRE(u);
  return *u;
}

}  // namespace

TEST_CASE("sockd-check passwd adds, changes, locks and deletes users", "[tools][passwd]") {
  const fs::path dir = fs::temp_directory_path() / ("diode-passwd-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path users = dir / "users";
  const fs::path pw = dir / "pw";
  write(users, "# our users\nbob:!\n");
  ::chmod(users.c_str(), 0640);

  write(pw, "open sesame\n");
  auto r = run({"passwd", users.string(), "alice", "--password-file", pw.string()});
  INFO(r.err);
  REQUIRE(r.rc == 0);
  CHECK(r.out.find("alice added to") != std::string::npos);
  auto u = load(users);
  REQUIRE(u.find("alice") != nullptr);
  CHECK(u.find("alice")->hash.rfind("$y$", 0) == 0);
  CHECK(diode::sockd::crypt_matches("open sesame", u.find("alice")->hash));
  CHECK_FALSE(diode::sockd::crypt_matches("open sesame!", u.find("alice")->hash));
  CHECK(read(users).rfind("# our users\nbob:!\nalice:$y$", 0) == 0);  // other lines kept
  struct stat st {};
  REQUIRE(::stat(users.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0640);  // the mode survives the rewrite

  // Changing the password replaces the line in place, with sha512-crypt here.
  write(pw, "new secret\r\n");
  r = run({"passwd", users.string(), "alice", "--password-file", pw.string(), "--method", "sha512"});
  REQUIRE(r.rc == 0);
  CHECK(r.out.find("alice changed in") != std::string::npos);
  u = load(users);
  CHECK(u.users.size() == 2);
  CHECK(u.find("alice")->hash.rfind("$6$", 0) == 0);
  CHECK(diode::sockd::crypt_matches("new secret", u.find("alice")->hash));

  r = run({"passwd", users.string(), "alice", "--lock"});
  REQUIRE(r.rc == 0);
  u = load(users);
  CHECK(u.find("alice")->locked);
  CHECK_FALSE(diode::sockd::crypt_matches("new secret", u.find("alice")->hash));

  r = run({"passwd", users.string(), "alice", "--delete"});
  REQUIRE(r.rc == 0);
  CHECK(read(users) == "# our users\nbob:!\n");

  // A new file is created private.
  const fs::path fresh = dir / "fresh";
  write(pw, "x\n");
  REQUIRE(run({"passwd", fresh.string(), "carol", "--password-file", pw.string()}).rc == 0);
  REQUIRE(::stat(fresh.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
  fs::remove_all(dir);
}

TEST_CASE("sockd-check passwd refuses bad input and broken files", "[tools][passwd]") {
  const fs::path dir = fs::temp_directory_path() / ("diode-passwd-bad-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path users = dir / "users";
  const fs::path pw = dir / "pw";
  write(pw, "secret\n");

  CHECK(run({"passwd", users.string(), "a:b", "--password-file", pw.string()}).rc == 64);
  CHECK(run({"passwd", users.string(), "a b", "--password-file", pw.string()}).rc == 64);
  CHECK(run({"passwd", users.string()}).rc == 64);
  CHECK(run({"passwd", users.string(), "al", "--method", "md5", "--password-file", pw.string()}).rc == 64);
  CHECK(run({"passwd", users.string(), "al", "--lock", "--delete"}).rc == 64);
  write(pw, "\n");
  CHECK(run({"passwd", users.string(), "al", "--password-file", pw.string()}).rc == 64);
  CHECK_FALSE(fs::exists(users));

  // A broken users file is reported with its position and left unchanged.
  write(users, "alice:$y$j9T$abc$def\nthis line is wrong\n");
  write(pw, "secret\n");
  const auto r = run({"passwd", users.string(), "bob", "--password-file", pw.string()});
  CHECK(r.rc == 3);
  CHECK(r.err.find(users.string() + ":2:") != std::string::npos);
  CHECK(read(users) == "alice:$y$j9T$abc$def\nthis line is wrong\n");
  // Locking someone who is not there.
  write(users, "");
  CHECK(run({"passwd", users.string(), "nobody", "--lock"}).rc == 3);
  fs::remove_all(dir);
}
