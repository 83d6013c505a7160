// rules_bench: load + compile time of a generated 100,000-line sockd.conf,
// and the median / p99 time of one decision by the compiled Engine, against
// the linear first-match scan (the reference semantics) as the baseline.
//
//   rules_bench [--lines N] [--requests N] [--linear-requests N] [--seed S]
//
// Every request's answer from the Engine is checked against the linear scan
// on the baseline sample, so a fast wrong answer cannot pass for a result.
// No network: the addresses are data only (documentation ranges).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <time.h>
#include <unistd.h>

#include "diode/sockd/engine.hpp"
#include "diode/sockd/parse.hpp"

using namespace diode::sockd;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::size_t lines = 100000;
  std::size_t requests = 1000000;
  std::size_t linear_requests = 2000;
  std::uint64_t seed = 1996;
};

class Gen {
 public:
  explicit Gen(std::uint64_t seed) : rng_(seed) {}
  std::size_t pick(std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_); }
  bool coin(unsigned percent) { return pick(100) < percent; }
  std::string host(const char* net) { return std::string(net) + std::to_string(pick(256)); }
  std::string port_test() {
    static const char* const ops[] = {"eq", "eq", "eq", "neq", "lt", "gt", "le", "ge"};
    static const char* const ports[] = {"21", "22", "23", "25", "80", "443", "1024", "8080",
                                        "telnet", "ftp", "smtp", "http", "https"};
    if (coin(10)) {
      const std::size_t lo = 1024 + pick(30000);
      return " range " + std::to_string(lo) + "-" + std::to_string(lo + pick(20000));
    }
    return std::string(" ") + ops[pick(8)] + " " + ports[pick(13)];
  }

  /// One line of a plausible large sockd.conf: mostly per-host and
  /// per-subnet NEC pairs, some CIDR, IPv6, non-contiguous masks, user
  /// lists, names and zones.
  std::string line() {
    std::string s = coin(60) ? "permit" : "deny";
    if (coin(5)) s += coin(50) ? " ?=I" : " ?=i";
    if (coin(6)) {
      static const char* const users[] = {"alice", "bob", "carol", "dave", "erin", "frank"};
      s += std::string(" *=") + users[pick(6)] + "," + users[pick(6)];
    }
    if (coin(3)) s += coin(50) ? " cmd=connect" : " cmd=connect,bind";
    const std::size_t kind = pick(100);
    if (kind < 55) {  // NEC pairs
      // Mostly host rules; a few subnets, as in files written per user and host.
      static const char* const src_masks[] = {"255.255.255.255", "255.255.255.255", "255.255.255.255",
                                              "255.255.255.255", "255.255.255.240", "255.255.255.192"};
      static const char* const dst_masks[] = {"255.255.255.255", "255.255.255.255", "255.255.255.255",
                                              "255.255.255.224", "255.255.255.252", "255.255.255.0"};
      s += " " + host("192.0.2.") + " " + (coin(3) ? "255.255.255.0" : src_masks[pick(6)]);
      if (coin(97)) s += " " + host(coin(50) ? "198.51.100." : "203.0.113.") + " " + dst_masks[pick(6)];
    } else if (kind < 72) {  // CIDR
      static const char* const src_lens[] = {"/32", "/32", "/32", "/28", "/26"};
      static const char* const dst_lens[] = {"/32", "/30", "/27", "/24", "/25"};
      s += " " + host("192.0.2.") + src_lens[pick(5)];
      s += " " + host(coin(50) ? "198.51.100." : "203.0.113.") + dst_lens[pick(5)];
    } else if (kind < 78) {  // non-contiguous NEC masks
      static const char* const masks[] = {"255.255.255.15", "255.255.0.255", "255.255.255.3"};
      s += " " + host("192.0.2.") + " " + masks[pick(3)];
      s += " " + host("198.51.100.") + " " + masks[pick(3)];
    } else if (kind < 93) {  // IPv6
      char buf[96];
      std::snprintf(buf, sizeof buf, " 2001:db8:1:%zx::/64 2001:db8:2:%zx::%s", pick(4096), pick(4096),
                    coin(50) ? "/64" : "7");
      s += buf;
    } else {  // names and zones
      s += " " + host("192.0.2.") + " 255.255.255.0";
      s += coin(50) ? " host" + std::to_string(pick(5000)) + ".example.test 0.0.0.0"
                    : " .zone" + std::to_string(pick(500)) + ".example.test 0.0.0.0";
    }
    if (coin(60)) s += port_test();
    if (coin(1)) s += " : /usr/bin/logger -t sockd 'rule hit by %u from %a'";
    return s;
  }

  RuleRequest request() {
    static const char* const users[] = {"alice", "bob", "carol", "dave", "erin", "frank", "guest"};
    static const std::uint16_t ports[] = {21, 22, 23, 25, 80, 443, 1024, 3128, 8080, 50000};
    RuleRequest q;
    q.user = users[pick(7)];
    q.dst_port = ports[pick(10)];
    if (coin(85)) {
      q.src_addr = *diode::platform::IpAddress::parse(host("192.0.2."));
      if (coin(95)) {
        q.dst_addr = *diode::platform::IpAddress::parse(host(coin(50) ? "198.51.100." : "203.0.113."));
      } else {
        q.dst_name = coin(50) ? "host" + std::to_string(pick(5000)) + ".example.test"
                              : "www.zone" + std::to_string(pick(500)) + ".example.test";
      }
    } else {
      char src[64];
      char dst[64];
      std::snprintf(src, sizeof src, "2001:db8:1:%zx::%zx", pick(4096), 1 + pick(200));
      std::snprintf(dst, sizeof dst, "2001:db8:2:%zx::7", pick(4096));
      q.src_addr = *diode::platform::IpAddress::parse(src);
      q.dst_addr = *diode::platform::IpAddress::parse(dst);
    }
    return q;
  }

 private:
  std::mt19937_64 rng_;
};

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

/// CPU time of this process: unlike wall time, not inflated when other
/// work shares the CPUs.
double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct Stats {
  double median_ns = 0;
  double p99_ns = 0;
  double mean_ns = 0;
};

Stats stats_of(std::vector<double>& ns) {
  Stats s;
  if (ns.empty()) return s;
  std::sort(ns.begin(), ns.end());
  s.median_ns = ns[ns.size() / 2];
  s.p99_ns = ns[std::min(ns.size() - 1, ns.size() * 99 / 100)];
  double sum = 0;
  for (const double v : ns) sum += v;
  s.mean_ns = sum / static_cast<double>(ns.size());
  return s;
}

/// Times `fn(q)` once per request; returns per-call nanoseconds (the clock's
/// own cost, measured on empty calls, subtracted).
template <class F>
std::vector<double> time_each(const std::vector<RuleRequest>& qs, std::size_t n, double clock_ns, F&& fn) {
  std::vector<double> out;
  out.reserve(n);
  std::size_t sink = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const RuleRequest& q = qs[i % qs.size()];
    const auto t0 = Clock::now();
    sink += fn(q);
    const auto t1 = Clock::now();
    out.push_back(std::max(0.0, std::chrono::duration<double, std::nano>(t1 - t0).count() - clock_ns));
  }
  if (sink == 42) std::puts("");  // keeps the calls from being optimised away
  return out;
}

/// Per-call CPU nanoseconds, as the median over batches of `batch` calls:
/// time the scheduler gives to other processes is not counted.
template <class F>
double cpu_ns_per_call(const std::vector<RuleRequest>& qs, std::size_t n, std::size_t batch, F&& fn) {
  std::vector<double> per_call;
  std::size_t sink = 0;
  for (std::size_t done = 0; done + batch <= n; done += batch) {
    timespec a{};
    timespec b{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
    for (std::size_t i = done; i < done + batch; ++i) sink += fn(qs[i % qs.size()]);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
    const double ns = static_cast<double>(b.tv_sec - a.tv_sec) * 1e9 + static_cast<double>(b.tv_nsec - a.tv_nsec);
    per_call.push_back(ns / static_cast<double>(batch));
  }
  if (sink == 42) std::puts("");
  if (per_call.empty()) return 0;
  std::sort(per_call.begin(), per_call.end());
  return per_call[per_call.size() / 2];
}

double clock_cost_ns() {
  std::vector<double> v;
  for (int i = 0; i < 100000; ++i) {
    const auto t0 = Clock::now();
    const auto t1 = Clock::now();
    v.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count());
  }
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

bool parse_args(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return false;
    const auto v = std::strtoull(argv[++i], nullptr, 10);
    if (a == "--lines") o.lines = v;
    else if (a == "--requests") o.requests = v;
    else if (a == "--linear-requests") o.linear_requests = v;
    else if (a == "--seed") o.seed = v;
    else return false;
  }
  return o.lines > 0 && o.requests > 0 && o.linear_requests > 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse_args(argc, argv, o)) {
    std::fprintf(stderr, "usage: rules_bench [--lines N] [--requests N] [--linear-requests N] [--seed S]\n");
    return 2;
  }
  Gen g(o.seed);
  std::string text = "# generated by rules_bench\n#NO_IDENTD: /usr/bin/logger 'no identd on %A'\n";
  for (std::size_t i = 0; i + 1 < o.lines; ++i) text += g.line() + "\n";
  text += "deny 0.0.0.0 0.0.0.0\n";  // the catch-all, as every real file ends

  char path[] = "/tmp/rules_bench-XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0 || write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    std::perror("rules_bench: temporary file");
    return 1;
  }
  close(fd);

  // Load = read + parse + compile, what a SIGHUP reload costs.
  diode::platform::Diagnostics diags;
  const auto t_load = Clock::now();
  const double c_load = cpu_seconds();
  auto parsed = load_sockd_conf(path, diags, ParseOptions{false});
  const double parse_s = seconds_since(t_load);
  const double parse_cpu = cpu_seconds() - c_load;
  unlink(path);
  if (!parsed) {
    std::fprintf(stderr, "generated file did not parse:\n%s", diags.format().c_str());
    return 1;
  }
  auto rules = std::make_shared<const RuleSet>(std::move(*parsed));
  const auto t_compile = Clock::now();
  const double c_compile = cpu_seconds();
  const Engine engine(rules);
  const double compile_s = seconds_since(t_compile);
  const double compile_cpu = cpu_seconds() - c_compile;

  std::vector<RuleRequest> qs;
  qs.reserve(65536);
  for (std::size_t i = 0; i < 65536; ++i) qs.push_back(g.request());

  // Same answers first: the baseline sample doubles as a correctness check.
  const std::size_t check_n = std::min(o.linear_requests, qs.size());
  std::size_t matched_early = 0;
  for (std::size_t i = 0; i < check_n; ++i) {
    const auto fast = engine.first_match(qs[i]);
    const auto slow = first_match_linear(*rules, qs[i]);
    if (fast != slow) {
      std::fprintf(stderr, "MISMATCH on request %zu: engine %zd, linear %zd\n", i,
                   fast ? static_cast<ssize_t>(*fast) : -1, slow ? static_cast<ssize_t>(*slow) : -1);
      return 1;
    }
    if (slow && *slow + 1 < rules->rules.size()) ++matched_early;
  }

  const double clock_ns = clock_cost_ns();
  // Warm up caches and branch predictors once over the request pool.
  for (const RuleRequest& q : qs) (void)engine.first_match(q);
  auto fm = time_each(qs, o.requests, clock_ns, [&](const RuleRequest& q) { return engine.first_match(q).value_or(0); });
  auto dc = time_each(qs, o.requests, clock_ns,
                      [&](const RuleRequest& q) { return static_cast<std::size_t>(engine.decide(q).verdict); });
  auto ln = time_each(qs, o.linear_requests, clock_ns,
                      [&](const RuleRequest& q) { return first_match_linear(*rules, q).value_or(0); });
  const double cpu_fm = cpu_ns_per_call(qs, o.requests, 1000,
                                        [&](const RuleRequest& q) { return engine.first_match(q).value_or(0); });
  const double cpu_ln = cpu_ns_per_call(qs, o.linear_requests, 20,
                                        [&](const RuleRequest& q) { return first_match_linear(*rules, q).value_or(0); });
  const Stats s_fm = stats_of(fm);
  const Stats s_dc = stats_of(dc);
  const Stats s_ln = stats_of(ln);

  std::printf("rules_bench: %zu lines (%zu rules), seed %llu, %zu requests (%zu for the linear baseline)\n",
              o.lines, rules->rules.size(), static_cast<unsigned long long>(o.seed), o.requests,
              o.linear_requests);
  std::printf("  requests decided before the catch-all: %.1f%%\n",
              100.0 * static_cast<double>(matched_early) / static_cast<double>(check_n));
  std::printf("  clock cost subtracted: %.0f ns\n", clock_ns);
  // Shared machines skew timings; say how busy this one was.
  if (std::FILE* f = std::fopen("/proc/loadavg", "r")) {
    char load[128] = {};
    if (std::fgets(load, sizeof load, f) != nullptr) std::printf("  /proc/loadavg: %s", load);
    std::fclose(f);
  }
  std::printf("\n");
  std::printf("| measure                         | value        |\n");
  std::printf("|---------------------------------|--------------|\n");
  std::printf("| load (read + parse)             | %8.3f s   |\n", parse_s);
  std::printf("| compile (Engine index)          | %8.3f s   |\n", compile_s);
  std::printf("| load + compile                  | %8.3f s   |\n", parse_s + compile_s);
  std::printf("| load + compile, CPU time        | %8.3f s   |\n", parse_cpu + compile_cpu);
  std::printf("| Engine::first_match median      | %8.0f ns  |\n", s_fm.median_ns);
  std::printf("| Engine::first_match p99         | %8.0f ns  |\n", s_fm.p99_ns);
  std::printf("| Engine::decide median           | %8.0f ns  |\n", s_dc.median_ns);
  std::printf("| Engine::decide p99              | %8.0f ns  |\n", s_dc.p99_ns);
  std::printf("| linear scan median (baseline)   | %8.0f ns  |\n", s_ln.median_ns);
  std::printf("| linear scan p99 (baseline)      | %8.0f ns  |\n", s_ln.p99_ns);
  std::printf("| Engine::first_match mean        | %8.0f ns  |\n", s_fm.mean_ns);
  std::printf("| Engine::first_match, CPU time   | %8.0f ns  |\n", cpu_fm);
  std::printf("| linear scan, CPU time           | %8.0f ns  |\n", cpu_ln);
  std::printf("| linear scan mean (baseline)     | %8.0f ns  |\n", s_ln.mean_ns);
  std::printf("| speed-up, median (linear/Engine)| %8.0fx    |\n",
              s_ln.median_ns / std::max(1.0, s_fm.median_ns));
  std::printf("| speed-up, mean (linear/Engine)  | %8.0fx    |\n", s_ln.mean_ns / std::max(1.0, s_fm.mean_ns));
  std::printf("| speed-up, CPU time              | %8.0fx    |\n", cpu_ln / std::max(1.0, cpu_fm));
  std::printf("\nCPU time rows: median over batches (1000 calls; 20 for the linear scan) of\n"
              "the batch's thread CPU time divided by its size, so preemption is not counted.\n");
  return 0;
}
