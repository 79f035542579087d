// Engine micro-benchmarks: decision cost on the shipped policy and on large synthetic host
// policies, request parsing, policy loading, and heap allocations on the hot paths.
//
// Record figures with tests/bench/record_engine_bench.sh (Release build, 5 repetitions);
// docs/performance.md holds the results and the targets.
//
// Every decide/parse benchmark does one operation per iteration, so the reported time is
// the time per decision (or per parse), and items_per_second is decisions per second.
// Allocations are counted by replacing the global operator new in this binary (C++ heap
// allocations only; a library calling malloc directly is not seen).

#include <benchmark/benchmark.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "authbypass/decision.h"
#include "authbypass/policy.h"
#include "authbypass/request.h"

// tests/bench/CMakeLists.txt defines the source tree; a bare compile looks in the current
// directory (AUTHBYPASS_BENCH_POLICY overrides the policy file either way).
#ifndef AUTHBYPASS_SOURCE_DIR
#define AUTHBYPASS_SOURCE_DIR "."
#endif

// ---------------------------------------------------------------------------------------
// Allocation counter: every global operator new in the process goes through here.

namespace {
std::atomic<std::uint64_t> g_allocs{0};

std::uint64_t allocs_now() { return g_allocs.load(std::memory_order_relaxed); }

void* counted_alloc(std::size_t n) {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  if (n == 0) n = 1;
  for (;;) {
    if (void* p = std::malloc(n)) return p;
    std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) throw std::bad_alloc();
    handler();
  }
}

void* counted_aligned_alloc(std::size_t n, std::align_val_t al) {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  std::size_t align = static_cast<std::size_t>(al);
  if (align < sizeof(void*)) align = sizeof(void*);
  if (n == 0) n = 1;
  for (;;) {
    void* p = nullptr;
    if (posix_memalign(&p, align, n) == 0) return p;
    std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) throw std::bad_alloc();
    handler();
  }
}
}  // namespace

void* operator new(std::size_t n) { return counted_alloc(n); }
void* operator new[](std::size_t n) { return counted_alloc(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return counted_alloc(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return counted_alloc(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new(std::size_t n, std::align_val_t al) { return counted_aligned_alloc(n, al); }
void* operator new[](std::size_t n, std::align_val_t al) { return counted_aligned_alloc(n, al); }
void* operator new(std::size_t n, std::align_val_t al, const std::nothrow_t&) noexcept {
  try {
    return counted_aligned_alloc(n, al);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, std::align_val_t al, const std::nothrow_t&) noexcept {
  try {
    return counted_aligned_alloc(n, al);
  } catch (...) {
    return nullptr;
  }
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  std::free(p);
}

// ---------------------------------------------------------------------------------------

namespace {

using authbypass::Decision;
using authbypass::Policy;
using authbypass::Request;
using authbypass::RequestInput;

// Set when a benchmark cannot run (policy does not load, wrong decision, ...): the binary
// then exits 1, so the ctest smoke run fails instead of passing on an empty report.
bool g_failed = false;

void fail(benchmark::State& state, const std::string& message) {
  g_failed = true;
  state.SkipWithError(message.c_str());
}

constexpr std::size_t kMixSize = 64;  // a power of two: the loops rotate with a mask
constexpr std::size_t kMixMask = kMixSize - 1;

// One request as an adapter would hand it over; owns the bytes RequestInput points to.
struct Sample {
  std::string method;
  std::string url;
  std::string user_agent;
  std::string src;

  RequestInput input() const { return RequestInput{method, url, user_agent, src}; }
};

// The policy shipped in config/, unless AUTHBYPASS_BENCH_POLICY names another file.
std::string default_policy_path() {
  if (const char* env = std::getenv("AUTHBYPASS_BENCH_POLICY"); env != nullptr && *env != 0) {
    return env;
  }
  return std::string(AUTHBYPASS_SOURCE_DIR) + "/config/policy.yaml";
}

std::string join_errors(const std::vector<std::string>& errors) {
  std::string out;
  for (const auto& e : errors) {
    if (!out.empty()) out += "; ";
    out += e;
    if (out.size() > 400) break;
  }
  return out;
}

const char* const kChrome =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36";
const char* const kEdge =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51";
const char* const kFirefox =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0";
const char* const kSafari =
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4_1) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4.1 Safari/605.1.15";
const char* const kCryptoApi = "Microsoft-CryptoAPI/10.0";
const char* const kCryptoApi61 = "Microsoft-CryptoAPI/6.1";
const char* const kMsoidcrl =
    "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 6.1; Win64; x64; MSOIDCRL 7.250.4303.0; "
    "App msoidsvc.exe, 7.250.4303.0, {3C5E0FFD-8F1A-4C1B-9B1D-7A8C2F7E7B21})";

// The realistic mix: ~70% browsing, ~20% revocation traffic, ~10% *.crl on other hosts.
// Shuffled with a fixed seed so the rotation has no regular structure.
std::vector<Sample> default_mix() {
  const char* const browsers[] = {kChrome, kEdge, kFirefox, kSafari};
  std::vector<Sample> mix;
  std::mt19937 rng(20240611);
  auto src = [&rng]() {
    return "10." + std::to_string(rng() % 8) + "." + std::to_string(rng() % 256) + "." +
           std::to_string(1 + rng() % 254);
  };
  auto browser = [&]() { return std::string(browsers[rng() % 4]); };

  // 45 browsing requests (70%).
  const char* const pages[] = {
      "http://www.example.com/",
      "http://www.example.com/index.html",
      "http://www.example.com/news/2024/06/article-1234.html?ref=home&utm_source=feed",
      "http://www.example.com/static/js/app.3f9c2d.js",
      "http://www.example.com/static/css/site.css?v=42",
      "http://www.example.com/search?q=proxy+authentication&page=2",
      "http://www.example.com/products/widgets/blue-widget",
      "http://www.example.com/about/contact.html",
      "http://www.example.com/api/v1/items?limit=50&offset=100",
      "http://www.example.com/downloads/setup.exe",
      "http://www.example.com/favicon.ico",
      "http://www.example.com/blog/2023/12/31/year-in-review/",
      "http://www.example.com/account/login?next=%2Faccount%2Fsettings",
      "http://www.example.com/docs/reference/chapter-7.html#section-3",
      "http://www.example.com/feed.xml",
  };
  for (const char* url : pages) mix.push_back({"GET", url, browser(), src()});
  const char* const tunnels[] = {
      "login.microsoftonline.com:443", "www.google.com:443",     "outlook.office365.com:443",
      "api.github.com:443",            "www.wikipedia.org:443",  "teams.microsoft.com:443",
      "cdn.jsdelivr.net:443",          "accounts.google.com:443", "www.bbc.co.uk:443",
      "fonts.gstatic.com:443",         "news.ycombinator.com:443", "s3.amazonaws.com:443",
      "update.googleapis.com:443",     "www.linkedin.com:443",   "graph.microsoft.com:443",
  };
  for (const char* hostport : tunnels) mix.push_back({"CONNECT", hostport, browser(), src()});
  const char* const images[] = {
      "http://www.example.com/images/logo.png",
      "http://www.example.com/images/hero-banner@2x.jpg",
      "http://img.example.net/photos/2024/1234567.jpg",
      "http://cdn.example.org/a/b/c/spacer.gif",
      "http://static.example.com/thumbs/9f/9f3a2b.webp",
      "http://www.example.com/images/icons/sprite.svg",
      "http://media.example.net/gallery/IMG_0042.JPG",
      "http://cdn.example.org/avatars/u/314159.png?s=64",
      "http://www.example.com/images/products/widget-blue-large.png",
      "http://img.example.net/ads/728x90/banner.gif",
      "http://static.example.com/emoji/1f600.png",
      "http://www.example.com/images/bg/pattern.jpg",
      "http://media.example.net/video/poster/trailer.jpg",
      "http://cdn.example.org/maps/tiles/12/2048/1361.png",
      "http://www.example.com/images/team/alice.jpg",
  };
  for (const char* url : images) mix.push_back({"GET", url, browser(), src()});

  // 13 revocation requests (20%).
  const Sample revocation[] = {
      {"GET", "http://crl.microsoft.com/pki/crl/products/MicRooCerAut2011_2011_03_22.crl",
       kCryptoApi, ""},
      {"GET", "http://crl.microsoft.com/pki/crl/products/MicCodSigPCA_08-31-2010.crl", kCryptoApi,
       ""},
      {"GET", "http://www.microsoft.com/pki/crl/products/MicrosoftRootAuthority.crl",
       kCryptoApi61, ""},
      {"GET",
       "http://crl.microsoft.com/pki/mscorp/crl/Microsoft%20RSA%20TLS%20CA%2002.crl",
       kCryptoApi, ""},
      {"GET",
       "http://ocsp.digicert.com/"
       "MFEwTzBNMEswSTAJBgUrDgMCGgUABBQ50otx%2Fh0Ztl%2Bz8SiPI7wEWVxDlQQUTiJUIBiV5uNu5g%2F6%"
       "2BrkS7QYXjzkCEAUZZSZEml49Gjh0j13P68w%3D",
       kCryptoApi, ""},
      {"GET",
       "http://ocsp.digicert.com/"
       "MFEwTzBNMEswSTAJBgUrDgMCGgUABBTrjrydRyt%2BApF3GSPypfHBxR5XtQQUs9tIpPmhxdiuNkHMEWNpYim8S8Y"
       "CEAI5PUjXAkJafLQcAAsO18o%3D",
       kCryptoApi, ""},
      {"GET",
       "http://ocsp.digicert.com/"
       "MFEwTzBNMEswSTAJBgUrDgMCGgUABBSAUQYBMq2awn1Rh6Doh%2FsBYgFV7gQUA95QNVbRTLtm8KPiGxvDl7I90VU"
       "CEAJ0LqoXyo4hxxe7H%2Fz9DKA%3D",
       kFirefox, ""},
      {"POST", "http://ocsp.digicert.com/", kCryptoApi, ""},
      {"POST", "http://ocsp.digicert.com/", kFirefox, ""},
      {"GET", "http://crl3.digicert.com/DigiCertGlobalRootCA.crl", kCryptoApi, ""},
      {"GET", "http://crl4.digicert.com/DigiCertGlobalRootG2.crl", kMsoidcrl, ""},
      {"GET",
       "http://ctldl.windowsupdate.com/msdownload/update/v3/static/trustedr/en/"
       "authrootstl.cab?1b2c3d4e5f6a7b8c",
       kCryptoApi, ""},
      {"GET", "http://oneocsp.microsoft.com/ocsp", kCryptoApi, ""},
  };
  for (Sample s : revocation) {
    s.src = src();
    mix.push_back(std::move(s));
  }

  // 6 *.crl requests on other hosts (10%), including the classic query trick.
  const Sample other_crl[] = {
      {"GET", "http://crl.sectigo.com/SectigoRSADomainValidationSecureServerCA.crl", kCryptoApi,
       ""},
      {"GET", "http://crl.globalsign.net/root.crl", kCryptoApi, ""},
      {"GET", "http://c.pki.goog/r/gsr1.crl", kChrome, ""},
      {"GET", "http://crl.verisign.com/pca3.crl", kCryptoApi61, ""},
      {"GET", "http://files.example.net/update/payload.crl", kCryptoApi, ""},
      {"GET", "http://files.example.net/download/tool.exe?.crl", kCryptoApi, ""},
  };
  for (Sample s : other_crl) {
    s.src = src();
    mix.push_back(std::move(s));
  }

  if (mix.size() != kMixSize) {
    std::fprintf(stderr, "engine_bench: default mix has %zu requests, want %zu\n", mix.size(),
                 kMixSize);
    std::abort();
  }
  std::shuffle(mix.begin(), mix.end(), rng);
  return mix;
}

// Parses every sample; returns false (and the first error) if one does not parse.
bool parse_all(const std::vector<Sample>& samples, std::vector<Request>& out, std::string* error) {
  out.clear();
  out.resize(samples.size());
  for (std::size_t i = 0; i < samples.size(); ++i) {
    if (!out[i].parse(samples[i].input())) {
      *error = "request " + samples[i].method + " " + samples[i].url +
               " does not parse: " + std::string(out[i].error());
      return false;
    }
  }
  return true;
}

// A synthetic policy of `n` rules, each with three exact host names and one suffix entry.
std::string host_rule_host(std::size_t i) {
  return "host-" + std::to_string(i) + ".example" + std::to_string(i % 97) + ".test";
}
std::string host_rule_suffix(std::size_t i) {
  return "cdn-" + std::to_string(i) + ".example" + std::to_string(i % 97) + ".test";
}

std::string synthetic_policy(std::size_t n) {
  std::string y;
  y.reserve(n * 200 + 64);
  y += "version: 1\nrules:\n";
  for (std::size_t i = 0; i < n; ++i) {
    const std::string domain = ".example" + std::to_string(i % 97) + ".test";
    const std::string num = std::to_string(i);
    y += "  - id: host-rule-" + num + "\n";
    y += "    match:\n";
    y += "      hosts: [host-" + num + domain + ", www.host-" + num + domain + ", api-" + num +
         domain + ", .cdn-" + num + domain + "]\n";
  }
  return y;
}

struct HostSample {
  Sample sample;
  bool expect_bypass = false;
};

// Half hits on random rules (exact names and subdomains of the suffix entries), half misses
// (hosts in no rule, label-boundary near misses, a listed host with a method not allowed).
std::vector<HostSample> host_rule_mix(std::size_t n) {
  std::mt19937 rng(static_cast<std::mt19937::result_type>(7919 + n));
  std::vector<HostSample> mix;
  const char* const browsers[] = {kChrome, kEdge, kFirefox, kSafari};
  for (std::size_t k = 0; k < kMixSize; ++k) {
    const std::size_t r = rng() % n;
    const std::string ua = browsers[k % 4];
    const std::string src = "10.2." + std::to_string(k) + ".9";
    const std::string wrong_domain = "host-" + std::to_string(r) + ".example" +
                                     std::to_string((r % 97 + 1) % 97) + ".test";
    switch (k % 8) {
      case 0:
      case 4:
        mix.push_back({{"GET", "http://" + host_rule_host(r) + "/pki/ca-" + std::to_string(k) + ".crl",
                        ua, src},
                       true});
        break;
      case 1:
        mix.push_back({{"HEAD", "http://api-" + std::to_string(r) + ".example" +
                                    std::to_string(r % 97) + ".test/status",
                        ua, src},
                       true});
        break;
      case 5:
        mix.push_back({{"GET", "http://" + host_rule_suffix(r) + "/index.html", ua, src}, true});
        break;
      case 2:
      case 6:
        mix.push_back({{"GET",
                        "http://img" + std::to_string(k) + "." + host_rule_suffix(r) +
                            "/img/" + std::to_string(k) + ".png",
                        ua, src},
                       true});
        break;
      case 3:
        mix.push_back({{"GET", "http://" + wrong_domain + "/", ua, src}, false});
        break;
      case 7:
        if (k % 16 == 7) {
          mix.push_back({{"GET", "http://x" + host_rule_suffix(r) + "/x.crl", ua, src}, false});
        } else {
          mix.push_back({{"POST", "http://" + host_rule_host(r) + "/form", ua, src}, false});
        }
        break;
    }
  }
  // Turn a quarter of the hits into plain misses (hosts in no rule), so the mix is about
  // half hits, half misses.
  for (std::size_t k = 0; k < kMixSize; k += 4) {
    const std::size_t r = rng() % n;
    mix[k] = {{"GET",
               "http://www.unlisted-" + std::to_string(r) + ".example.com/page-" +
                   std::to_string(k) + ".html",
               browsers[k % 4], "10.3.0." + std::to_string(k + 1)},
              false};
  }
  std::shuffle(mix.begin(), mix.end(), rng);
  return mix;
}

// True iff some active rule with a regex passes the cheap criteria (method, port, host,
// client address) for `req`, i.e. the engine may have to run a regex to decide.
bool may_reach_regex(const Policy& policy, const Request& req, authbypass::Date today) {
  for (const auto& rule : policy.rules()) {
    if (!rule.active(today)) continue;
    if (rule.match.path_regex.empty() && rule.match.user_agent_regex.empty()) continue;
    if (policy.methods_match(rule, req) && policy.ports_match(rule, req) &&
        policy.hosts_match(rule, req) && policy.src_match(rule, req)) {
      return true;
    }
  }
  return false;
}

// ---------------------------------------------------------------------------------------

// The shipped default policy on the realistic mix.
void BM_Decide_Default(benchmark::State& state) {
  const std::string path = default_policy_path();
  const auto loaded = authbypass::load_policy_file(path);
  if (!loaded.ok()) {
    fail(state, "cannot load " + path + ": " + join_errors(loaded.errors));
    return;
  }
  const Policy& policy = *loaded.policy;
  const auto today = authbypass::today_utc();
  authbypass::EvalContext ctx;  // the caller's regex memos, as the helper keeps one
  const auto samples = default_mix();
  std::vector<Request> reqs;
  std::string error;
  if (!parse_all(samples, reqs, &error)) {
    fail(state, error);
    return;
  }

  // Untimed pre-pass: allocations per decision for the requests that cannot reach a regex
  // (target zero), and the share of bypass answers in the mix.
  constexpr int kRounds = 200;
  std::uint64_t plain_allocs = 0, plain_decisions = 0, regex_requests = 0, bypasses = 0;
  for (std::size_t i = 0; i < reqs.size(); ++i) {
    const Request& req = reqs[i];
    const Decision warm = policy.decide(req, today, ctx);
    bypasses += warm.bypass() ? 1 : 0;
    const bool regex = may_reach_regex(policy, req, today);
    regex_requests += regex ? 1 : 0;
    const std::uint64_t before = allocs_now();
    for (int k = 0; k < kRounds; ++k) {
      Decision d = policy.decide(req, today, ctx);
      benchmark::DoNotOptimize(d);
    }
    const std::uint64_t used = allocs_now() - before;
    if (!regex) {
      plain_allocs += used;
      plain_decisions += kRounds;
      if (used != 0) {
        std::fprintf(stderr,
                     "engine_bench: decide() allocates %.2f times for non-regex request %s %s\n",
                     static_cast<double>(used) / kRounds, samples[i].method.c_str(),
                     samples[i].url.c_str());
      }
    }
  }

  std::size_t i = 0;
  const std::uint64_t before = allocs_now();
  for (auto _ : state) {
    Decision d = policy.decide(reqs[i++ & kMixMask], today, ctx);
    benchmark::DoNotOptimize(d);
  }
  const std::uint64_t used = allocs_now() - before;

  state.SetItemsProcessed(state.iterations());
  state.counters["allocs_per_decision"] =
      plain_decisions ? static_cast<double>(plain_allocs) / static_cast<double>(plain_decisions)
                      : 0.0;
  state.counters["allocs_per_decision_all"] =
      static_cast<double>(used) / static_cast<double>(state.iterations());
  state.counters["regex_requests"] = static_cast<double>(regex_requests);
  state.counters["bypass_pct"] = 100.0 * static_cast<double>(bypasses) / kMixSize;
  state.counters["rules"] = static_cast<double>(policy.rules().size());
}
BENCHMARK(BM_Decide_Default);

// Synthetic host policies: the cost per decision must not grow with the number of rules.
void BM_Decide_HostRules(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const auto loaded = authbypass::load_policy_text(synthetic_policy(n), "synthetic.yaml");
  if (!loaded.ok()) {
    fail(state, "synthetic policy: " + join_errors(loaded.errors));
    return;
  }
  const Policy& policy = *loaded.policy;
  const auto today = authbypass::today_utc();
  authbypass::EvalContext ctx;  // the caller's regex memos, as the helper keeps one
  const auto mix = host_rule_mix(n);
  std::vector<Request> reqs(mix.size());
  std::size_t hits = 0;
  for (std::size_t k = 0; k < mix.size(); ++k) {
    const Sample& s = mix[k].sample;
    if (!reqs[k].parse(s.input())) {
      fail(state, "request " + s.url + " does not parse: " + std::string(reqs[k].error()));
      return;
    }
    // A wrong answer makes the timing meaningless: refuse to report it.
    const Decision d = policy.decide(reqs[k], today, ctx);
    if (d.bypass() != mix[k].expect_bypass) {
      fail(state, "wrong decision for " + s.method + " " + s.url + ": got " +
                      (d.bypass() ? "bypass" : "authenticate"));
      return;
    }
    hits += d.bypass() ? 1 : 0;
  }

  std::size_t i = 0;
  const std::uint64_t before = allocs_now();
  for (auto _ : state) {
    Decision d = policy.decide(reqs[i++ & kMixMask], today, ctx);
    benchmark::DoNotOptimize(d);
  }
  const std::uint64_t used = allocs_now() - before;

  state.SetItemsProcessed(state.iterations());
  state.counters["allocs_per_decision"] =
      static_cast<double>(used) / static_cast<double>(state.iterations());
  state.counters["bypass_pct"] = 100.0 * static_cast<double>(hits) / kMixSize;
  state.counters["rules"] = static_cast<double>(n);
}
BENCHMARK(BM_Decide_HostRules)->Arg(10)->Arg(1000)->Arg(10000);

// Request::parse on the realistic mix, reusing one warm Request.
void BM_ParseRequest(benchmark::State& state) {
  const auto samples = default_mix();
  std::vector<RequestInput> inputs;
  inputs.reserve(samples.size());
  for (const auto& s : samples) inputs.push_back(s.input());

  Request req;
  for (int round = 0; round < 2; ++round) {  // warm: every buffer at its largest size
    for (std::size_t k = 0; k < inputs.size(); ++k) {
      if (!req.parse(inputs[k])) {
        fail(state, "request " + samples[k].url + " does not parse: " + std::string(req.error()));
        return;
      }
    }
  }

  std::size_t i = 0;
  const std::uint64_t before = allocs_now();
  for (auto _ : state) {
    bool ok = req.parse(inputs[i++ & kMixMask]);
    benchmark::DoNotOptimize(ok);
    benchmark::ClobberMemory();
  }
  const std::uint64_t used = allocs_now() - before;

  state.SetItemsProcessed(state.iterations());
  state.counters["allocs_per_parse"] =
      static_cast<double>(used) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_ParseRequest);

// Loading (parse, validate, compile) a 10,000-rule policy from memory.
void BM_Load_10000Rules(benchmark::State& state) {
  constexpr std::size_t kRules = 10000;
  const std::string text = synthetic_policy(kRules);
  for (auto _ : state) {
    auto loaded = authbypass::load_policy_text(text, "synthetic.yaml");
    if (!loaded.ok()) {
      fail(state, "synthetic policy: " + join_errors(loaded.errors));
      break;
    }
    benchmark::DoNotOptimize(loaded.policy.get());
    state.PauseTiming();  // freeing the policy is not part of loading it
    loaded.policy.reset();
    state.ResumeTiming();
  }
  state.counters["rules"] = static_cast<double>(kRules);
  state.counters["policy_bytes"] = static_cast<double>(text.size());
}
BENCHMARK(BM_Load_10000Rules)->Unit(benchmark::kMillisecond);

// Reference for the figure above: yaml-cpp alone parsing the same text into its node tree
// (and freeing it), which load_policy_text does before any validation of its own.
void BM_YamlCppOnly_10000Rules(benchmark::State& state) {
  const std::string text = synthetic_policy(10000);
  for (auto _ : state) {
    std::vector<YAML::Node> docs = YAML::LoadAll(text);
    benchmark::DoNotOptimize(docs.data());
  }
  state.counters["policy_bytes"] = static_cast<double>(text.size());
}
BENCHMARK(BM_YamlCppOnly_10000Rules)->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return g_failed ? 1 : 0;
}
