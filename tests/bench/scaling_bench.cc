// Engine scaling benchmarks: how decide() and loading grow with the size of the
// policy. Run by tests/bench/scaling.sh (Release build in build-bench/, JSON output, plot in
// docs/perf/scaling.png); not part of record_engine_bench.sh.
//
// This file includes engine_bench.cc as it is, so the scaling cases use exactly its
// generators and request mixes (synthetic_policy/host_rule_mix, default_mix, the shipped
// policy), its allocation counter and its main(). The engine benchmarks are therefore in
// this binary too; scaling.sh selects the BM_Scale_ ones with --benchmark_filter.
//
//   BM_Scale_HostRules/N       decide(), N synthetic host rules (engine_bench's generator
//                              and its half-hit, half-miss mix), N = 10 ... 100,000
//   BM_Scale_LoadHostRules/N   load_policy_text of that policy
//   BM_Scale_<family>/N        decide(), the shipped policy plus N hostless regex rules,
//                              on engine_bench's realistic mix (N = 0 is the shipped
//                              policy alone); families:
//       PathRegexLiteral   path_regex with a literal start ('/pki-K/...'): the engine's
//                          literal-prefix check rejects other paths before Boost runs
//       PathRegex          path_regex without a literal start ('.*/pki-K/...'): Boost runs
//                          on every path that reaches the rule
//       UaRegexAnchored    user_agent_regex '^Updater-K/...': literal-prefix check
//       UaRegex            user_agent_regex 'Updater-K/...' (unanchored): a Boost search
//                          of the User-Agent (the EvalContext memoizes 4 UA-regex outcomes)
//   BM_Scale_LoadRegexRules/N  load_policy_text of the shipped policy plus N path regexes
//
// The generated regex rules never match the mix, so every one is evaluated for every
// request that passes its cheap criteria (GET/HEAD, port 80) and that no shipped rule
// bypassed first: the most a regex rule can cost. Each case checks its decisions first
// (host mix: the expected answers; regex mix: the shipped policy's answers) and refuses
// to report a wrong one.
//
// The policy loader reads at most 8 MiB per policy file. engine_bench's host-rule text is
// ~155 bytes per rule, so past 40,000 rules the generated policy keeps its first 40,000
// rules in memory (the text given to load_policy_text) and puts the rest, in order, into
// files of at most 40,000 rules each in a temporary directory, pulled in with `include:`
// (the loader's own mechanism; the rules follow in the same order). Below that, the text
// is synthetic_policy(N) itself, byte for byte.

#include "engine_bench.cc"  // NOLINT(bugprone-suspicious-include): reuse, see above

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>

namespace {

constexpr std::size_t kRulesPerFile = 40000;

// engine_bench's synthetic rules [begin, end), the same bytes as in synthetic_policy().
std::string synthetic_rules(std::size_t begin, std::size_t end) {
  std::string y;
  y.reserve((end - begin) * 200 + 64);
  for (std::size_t i = begin; i < end; ++i) {
    const std::string domain = ".example" + std::to_string(i % 97) + ".test";
    const std::string num = std::to_string(i);
    y += "  - id: host-rule-" + num + "\n";
    y += "    match:\n";
    y += "      hosts: [host-" + num + domain + ", www.host-" + num + domain + ", api-" + num +
         domain + ", .cdn-" + num + domain + "]\n";
  }
  return y;
}

// A temporary directory (for include files), removed with its files on destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = "/tmp/authbypass-scaling-XXXXXX";
    if (::mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  ~TempDir() {
    for (const auto& f : files_) ::unlink(f.c_str());
    if (!path_.empty()) ::rmdir(path_.c_str());
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  bool ok() const { return !path_.empty(); }
  const std::string& path() const { return path_; }
  bool write(const std::string& name, const std::string& text) {
    const std::string p = path_ + "/" + name;
    std::ofstream out(p, std::ios::binary);
    out << text;
    out.close();
    files_.push_back(p);
    return static_cast<bool>(out);
  }

 private:
  std::string path_;
  std::vector<std::string> files_;
};

// The N-rule host policy: its top text (for load_policy_text) and the name to give it
// (inside `dir` when there are include files).
struct HostPolicy {
  std::unique_ptr<TempDir> dir;
  std::string text;
  std::string name = "synthetic.yaml";
  std::size_t bytes = 0;  // all files together
  std::size_t files = 1;
  std::string error;
};

HostPolicy host_policy(std::size_t n) {
  HostPolicy p;
  if (n <= kRulesPerFile) {
    p.text = synthetic_policy(n);
    p.bytes = p.text.size();
    return p;
  }
  p.dir = std::make_unique<TempDir>();
  if (!p.dir->ok()) {
    p.error = std::string("mkdtemp: ") + std::strerror(errno);
    return p;
  }
  std::string include = "include: [";
  for (std::size_t begin = kRulesPerFile, k = 1; begin < n; begin += kRulesPerFile, ++k) {
    const std::string file = "part-" + std::to_string(k) + ".yaml";
    const std::string part =
        "version: 1\nrules:\n" + synthetic_rules(begin, std::min(n, begin + kRulesPerFile));
    if (!p.dir->write(file, part)) {
      p.error = "cannot write " + p.dir->path() + "/" + file;
      return p;
    }
    include += (k > 1 ? ", " : "") + file;
    p.bytes += part.size();
    ++p.files;
  }
  include += "]\n";
  p.text = "version: 1\n" + include + "rules:\n" + synthetic_rules(0, kRulesPerFile);
  p.bytes += p.text.size();
  p.name = p.dir->path() + "/synthetic.yaml";
  return p;
}

// decide() with N host rules: BM_Decide_HostRules's body (generator, mix, checks) on the
// policy above.
void BM_Scale_HostRules(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const HostPolicy hp = host_policy(n);
  if (!hp.error.empty()) {
    fail(state, hp.error);
    return;
  }
  const auto loaded = authbypass::load_policy_text(hp.text, hp.name);
  if (!loaded.ok()) {
    fail(state, "synthetic policy: " + join_errors(loaded.errors));
    return;
  }
  const Policy& policy = *loaded.policy;
  if (policy.rules().size() != n) {
    fail(state, "synthetic policy has " + std::to_string(policy.rules().size()) + " rules, want " +
                    std::to_string(n));
    return;
  }
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
  state.counters["policy_bytes"] = static_cast<double>(hp.bytes);
  state.counters["policy_files"] = static_cast<double>(hp.files);
}
BENCHMARK(BM_Scale_HostRules)->RangeMultiplier(10)->Range(10, 100000);

// Loading (parse, validate, compile) the N-rule host policy; include files are read from
// the temporary directory (page cache) as part of the load.
void BM_Scale_LoadHostRules(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const HostPolicy hp = host_policy(n);
  if (!hp.error.empty()) {
    fail(state, hp.error);
    return;
  }
  for (auto _ : state) {
    auto loaded = authbypass::load_policy_text(hp.text, hp.name);
    if (!loaded.ok() || loaded.policy->rules().size() != n) {
      fail(state, "synthetic policy: " + join_errors(loaded.errors));
      break;
    }
    benchmark::DoNotOptimize(loaded.policy.get());
    state.PauseTiming();  // freeing the policy is not part of loading it
    loaded.policy.reset();
    state.ResumeTiming();
  }
  state.counters["rules"] = static_cast<double>(n);
  state.counters["policy_bytes"] = static_cast<double>(hp.bytes);
  state.counters["policy_files"] = static_cast<double>(hp.files);
}
BENCHMARK(BM_Scale_LoadHostRules)
    ->RangeMultiplier(10)
    ->Range(10, 100000)
    ->Unit(benchmark::kMillisecond);

// ---------------------------------------------------------------------------------------
// Regex rules on top of the shipped policy.

enum class RegexFamily { kPathLiteral, kPath, kUaAnchored, kUa };

// One hostless enforce rule; none of them matches a request of default_mix().
std::string regex_rule(RegexFamily f, std::size_t k) {
  const std::string num = std::to_string(k);
  std::string y = "  - id: scale-regex-" + num + "\n    match:\n";
  switch (f) {
    case RegexFamily::kPathLiteral:
      y += "      path_regex: ['/pki-" + num + "/(crl|certs)/[a-z0-9._-]+\\.(crl|crt)']\n";
      break;
    case RegexFamily::kPath:
      y += "      path_regex: ['.*/pki-" + num + "/[a-z0-9._-]+\\.(crl|crt)']\n";
      break;
    case RegexFamily::kUaAnchored:
      y += "      user_agent_regex: ['^Updater-" + num + "/[0-9]+(\\.[0-9]+)*$']\n";
      break;
    case RegexFamily::kUa:
      y += "      user_agent_regex: ['Updater-" + num + "/[0-9]+(\\.[0-9]+)*']\n";
      break;
  }
  y += "    verify: crl\n";
  return y;
}

// The shipped policy's text with N generated rules appended to its `rules:` list (before
// its `tests:`), so they come after every shipped rule, in file order.
bool shipped_plus_regex(RegexFamily f, std::size_t n, std::string* text, std::string* error) {
  const std::string path = default_policy_path();
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = "cannot read " + path;
    return false;
  }
  std::string base((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::size_t tests = base.find("\ntests:\n");
  if (tests == std::string::npos || base.find("\nrules:\n") == std::string::npos ||
      base.find("\nrules:\n") > tests) {
    *error = path + ": no top-level 'rules:' followed by 'tests:' to insert rules before";
    return false;
  }
  std::string extra;
  for (std::size_t k = 0; k < n; ++k) extra += regex_rule(f, k);
  *text = base.substr(0, tests + 1) + extra + base.substr(tests + 1);
  return true;
}

void scale_regex(benchmark::State& state, RegexFamily f) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const std::string path = default_policy_path();
  const auto shipped = authbypass::load_policy_file(path);
  if (!shipped.ok()) {
    fail(state, "cannot load " + path + ": " + join_errors(shipped.errors));
    return;
  }
  std::string text, error;
  if (!shipped_plus_regex(f, n, &text, &error)) {
    fail(state, error);
    return;
  }
  const auto loaded = authbypass::load_policy_text(text, path);
  if (!loaded.ok()) {
    fail(state, "shipped policy + regex rules: " + join_errors(loaded.errors));
    return;
  }
  const Policy& policy = *loaded.policy;
  if (policy.rules().size() != shipped.policy->rules().size() + n) {
    fail(state, "policy has " + std::to_string(policy.rules().size()) + " rules, want " +
                    std::to_string(shipped.policy->rules().size() + n));
    return;
  }
  const auto today = authbypass::today_utc();
  authbypass::EvalContext ctx;  // the caller's regex memos, as the helper keeps one
  const auto samples = default_mix();
  std::vector<Request> reqs, ref_reqs;
  if (!parse_all(samples, reqs, &error) || !parse_all(samples, ref_reqs, &error)) {
    fail(state, error);
    return;
  }
  std::size_t bypasses = 0, reaching = 0;
  for (std::size_t k = 0; k < reqs.size(); ++k) {
    const Decision want = shipped.policy->decide(ref_reqs[k], today, ctx);
    const Decision got = policy.decide(reqs[k], today, ctx);
    const bool same_rule = (want.rule == nullptr) == (got.rule == nullptr) &&
                           (want.rule == nullptr || want.rule->id == got.rule->id);
    if (got.bypass() != want.bypass() || !same_rule || got.regex_fault) {
      fail(state, "decision differs from the shipped policy's for " + samples[k].method + " " +
                      samples[k].url);
      return;
    }
    bypasses += got.bypass() ? 1 : 0;
    // requests that pass the generated rules' cheap criteria and that no shipped rule
    // bypasses: each evaluates all N regexes
    if (n > 0 && !got.bypass()) {
      const auto& r = policy.rules().back();
      reaching += policy.methods_match(r, reqs[k]) && policy.ports_match(r, reqs[k]) ? 1 : 0;
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
      static_cast<double>(used) / static_cast<double>(state.iterations());
  state.counters["bypass_pct"] = 100.0 * static_cast<double>(bypasses) / kMixSize;
  state.counters["regex_rules"] = static_cast<double>(n);
  state.counters["requests_reaching_all"] = static_cast<double>(reaching);
}

void BM_Scale_PathRegexLiteral(benchmark::State& s) { scale_regex(s, RegexFamily::kPathLiteral); }
void BM_Scale_PathRegex(benchmark::State& s) { scale_regex(s, RegexFamily::kPath); }
void BM_Scale_UaRegexAnchored(benchmark::State& s) { scale_regex(s, RegexFamily::kUaAnchored); }
void BM_Scale_UaRegex(benchmark::State& s) { scale_regex(s, RegexFamily::kUa); }
BENCHMARK(BM_Scale_PathRegexLiteral)->Arg(0)->Arg(1)->Arg(10)->Arg(100)->Arg(1000);
BENCHMARK(BM_Scale_PathRegex)->Arg(0)->Arg(1)->Arg(10)->Arg(100)->Arg(1000);
BENCHMARK(BM_Scale_UaRegexAnchored)->Arg(0)->Arg(1)->Arg(10)->Arg(100)->Arg(1000);
BENCHMARK(BM_Scale_UaRegex)->Arg(0)->Arg(1)->Arg(10)->Arg(100)->Arg(1000);

// Loading the shipped policy plus N path regexes (each compiled by Boost at load).
void BM_Scale_LoadRegexRules(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  std::string text, error;
  if (!shipped_plus_regex(RegexFamily::kPath, n, &text, &error)) {
    fail(state, error);
    return;
  }
  const std::string path = default_policy_path();
  for (auto _ : state) {
    auto loaded = authbypass::load_policy_text(text, path);
    if (!loaded.ok()) {
      fail(state, "shipped policy + regex rules: " + join_errors(loaded.errors));
      break;
    }
    benchmark::DoNotOptimize(loaded.policy.get());
    state.PauseTiming();
    loaded.policy.reset();
    state.ResumeTiming();
  }
  state.counters["regex_rules"] = static_cast<double>(n);
  state.counters["policy_bytes"] = static_cast<double>(text.size());
}
BENCHMARK(BM_Scale_LoadRegexRules)
    ->Arg(0)
    ->Arg(1)
    ->Arg(10)
    ->Arg(100)
    ->Arg(1000)
    ->Unit(benchmark::kMillisecond);

}  // namespace
