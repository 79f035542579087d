// ext_authbypass_acl: Squid external ACL helper (DESIGN §3). Reads request lines on stdin,
// asks the engine, answers OK/ERR on stdout, writes audit events. Never exits on its own
// except at end of input: a helper that exits makes Squid die.
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "authbypass/audit.h"
#include "authbypass/output_file.h"
#include "authbypass/policy.h"
#include "authbypass/policy_source.h"
#include "authbypass/request.h"
#include "authbypass/squid_helper.h"

namespace {

using authbypass::AuditEvent;
using authbypass::AuditLog;
using authbypass::Decision;
using authbypass::Policy;
using authbypass::PolicySource;
using authbypass::Request;
using authbypass::write_all;
namespace squid = authbypass::squid;

volatile sig_atomic_t g_hup = 0;
extern "C" void on_hup(int) {
  g_hup = 1;
}

// The signal set-up, before any other code of the process: SIGHUP gets its handler and is
// blocked (a SIGHUP that comes during start-up waits and is handled once the helper
// serves), SIGPIPE is ignored, and every other signal is unblocked whatever mask Squid
// left; threads started meanwhile inherit SIGHUP blocked. Idempotent.
void set_up_signals() {
  sigset_t hup;
  sigemptyset(&hup);
  sigaddset(&hup, SIGHUP);
  sigprocmask(SIG_SETMASK, &hup, nullptr);
  struct sigaction sa {};
  sa.sa_handler = on_hup;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a blocked read() returns EINTR and we reload at once
  sigaction(SIGHUP, &sa, nullptr);
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  sigaction(SIGPIPE, &ignore, nullptr);
}

// Start-up is over: a waiting SIGHUP is handled now, later ones at once (this thread only;
// the writer thread keeps it blocked).
void release_hup() {
  sigset_t hup;
  sigemptyset(&hup);
  sigaddset(&hup, SIGHUP);
  pthread_sigmask(SIG_UNBLOCK, &hup, nullptr);
}

// Runs set_up_signals() from the executable's pre-initialisation array: after the dynamic
// loader has mapped the libraries, before any of their constructors and before main().
// Until then a SIGHUP still ends the process (the kernel's default); the shipped logrotate
// rule signals only helpers that handle SIGHUP (SigCgt in /proc/PID/status).
extern "C" void authbypass_preinit_signals(int, char**, char**) {
  set_up_signals();
}
using PreinitFunction = void (*)(int, char**, char**);
__attribute__((section(".preinit_array"), used)) const PreinitFunction kPreinitSignals =
    authbypass_preinit_signals;

constexpr std::size_t kReadChunk = std::size_t{256} * 1024;
constexpr std::size_t kEchoPrefix = 64;  // bytes of an over-long line kept to find its id

const char kUsage[] =
    "usage: ext_authbypass_acl --policy FILE [--format TOKENS] [--channel-id auto|yes|no]\n"
    "                          [--audit-log FILE] [--syslog[=FACILITY]] [--stats-file FILE]\n"
    "                          [--require-audit] [--check-interval MS] [-d]\n"
    "\n"
    "Squid external ACL helper: answers OK for requests the authbypass policy lets skip\n"
    "proxy authentication, ERR otherwise. See ext_authbypass_acl(8).\n"
    "\n"
    "  --policy FILE        the policy (reloaded when it changes and on SIGHUP)\n"
    "  --format TOKENS      the external_acl_type format, default\n"
    "                       \"%SRC %METHOD %#URI %#>ha{User-Agent}\"\n"
    "  --channel-id MODE    lines start with a concurrency channel id: auto (default), yes, no\n"
    "  --audit-log FILE     append JSON audit events (reopened on SIGHUP)\n"
    "  --syslog[=FACILITY]  send audit events to syslog too (default authpriv; auth, daemon,\n"
    "                       user, local0..local7)\n"
    "  --stats-file FILE    keep counters (per-rule hits, shadow hits, errors, reloads,\n"
    "                       policy hash) in FILE, replaced atomically at most once a second\n"
    "  --require-audit      refuse bypasses (ERR) while the audit log cannot be written\n"
    "  --check-interval MS  how often to look at the policy file (default 1000)\n"
    "  -d, --debug          diagnostics on stderr for every bad line\n";

struct Options {
  std::string policy;
  squid::Format format = squid::Format::default_format();
  squid::ChannelMode channel = squid::ChannelMode::kAuto;
  std::string audit_log;
  bool syslog = false;
  bool require_audit = false;
  int syslog_facility = -1;
  std::string stats_file;
  bool debug = false;
  long check_interval_ms = 1000;
};

void say(const std::string& msg) {
  std::string line = "ext_authbypass_acl: " + msg + "\n";
  ssize_t ignored = ::write(2, line.data(), line.size());
  (void)ignored;
}

// Parses argv; on error returns false with *error set (the helper then answers ERR to
// everything instead of exiting, so that Squid keeps running).
bool parse_args(int argc, char** argv, Options& o, std::string* error, bool* done) {
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&](std::string_view name) -> const char* {
      if (i + 1 >= argc) {
        *error = "option '" + std::string(name) + "' needs a value";
        return nullptr;
      }
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      *done = true;
      return true;
    } else if (a == "--version") {
      std::printf("ext_authbypass_acl %s\n", AUTHBYPASS_VERSION);
      *done = true;
      return true;
    } else if (a == "--policy") {
      const char* v = value(a);
      if (!v) return false;
      o.policy = v;
    } else if (a == "--format") {
      const char* v = value(a);
      if (!v) return false;
      auto f = squid::Format::parse(v, error);
      if (!f) return false;
      o.format = *f;
    } else if (a == "--channel-id") {
      const char* v = value(a);
      if (!v) return false;
      std::string_view m = v;
      if (m == "auto") {
        o.channel = squid::ChannelMode::kAuto;
      } else if (m == "yes") {
        o.channel = squid::ChannelMode::kYes;
      } else if (m == "no") {
        o.channel = squid::ChannelMode::kNo;
      } else {
        *error = "--channel-id must be auto, yes or no";
        return false;
      }
    } else if (a == "--audit-log") {
      const char* v = value(a);
      if (!v) return false;
      o.audit_log = v;
    } else if (a == "--syslog" || a.starts_with("--syslog=")) {
      o.syslog = true;
      if (a.size() > 9) {
        auto f = authbypass::syslog_facility(a.substr(9));
        if (!f) {
          *error = "unknown syslog facility '" + std::string(a.substr(9)) +
                   "' (auth, authpriv, daemon, user, local0..local7)";
          return false;
        }
        o.syslog_facility = *f;
      }
    } else if (a == "--require-audit") {
      o.require_audit = true;
    } else if (a == "--stats-file") {
      const char* v = value(a);
      if (!v) return false;
      o.stats_file = v;
    } else if (a == "--check-interval") {
      const char* v = value(a);
      if (!v) return false;
      char* end = nullptr;
      long ms = std::strtol(v, &end, 10);
      if (end == v || *end != '\0' || ms < 0 || ms > 3'600'000) {
        *error = "--check-interval needs milliseconds 0-3600000";
        return false;
      }
      o.check_interval_ms = ms;
    } else if (a == "-d" || a == "--debug") {
      o.debug = true;
    } else {
      *error = "unknown option '" + std::string(a) + "' (see ext_authbypass_acl --help)";
      return false;
    }
  }
  if (o.policy.empty()) {
    *error = "--policy FILE is required";
    return false;
  }
  return true;
}

// Bytes appended without the zero fill of std::string::resize.
class ByteBuffer {
 public:
  bool empty() const { return size_ == 0; }
  std::size_t size() const { return size_; }
  const char* data() const { return data_.get(); }
  void clear() { size_ = 0; }
  void swap(ByteBuffer& o) noexcept {
    data_.swap(o.data_);
    std::swap(size_, o.size_);
    std::swap(cap_, o.cap_);
  }
  void reserve(std::size_t n) {
    if (n <= cap_) return;
    auto bigger = std::make_unique_for_overwrite<char[]>(n);
    if (size_ != 0) std::memcpy(bigger.get(), data_.get(), size_);
    data_ = std::move(bigger);
    cap_ = n;
  }
  // Room for n more bytes at the end, which the caller fills at once.
  char* extend(std::size_t n) {
    if (size_ + n > cap_) reserve(std::max(size_ + n, cap_ * 2));
    char* w = data_.get() + size_;
    size_ += n;
    return w;
  }
  void append(const void* p, std::size_t n) {
    if (n != 0) std::memcpy(extend(n), p, n);
  }

 private:
  std::unique_ptr<char[]> data_;
  std::size_t size_ = 0, cap_ = 0;
};

// A batch's audit events as compact records. The main thread only copies each request's
// fields; format() escapes them and makes the JSON lines (DESIGN §5), on the writer thread
// when the batch is big. A record is a kind byte, then for 'L' (a ready line) a u32 length
// and the bytes; for 'R' (one request's events) the u32 lengths of the five request fields,
// a u32 event count, that many pointers to the events' fixed fields (strings of a table
// that `tables` keeps alive) and the fields' bytes; for 'T' the time (system_clock ticks,
// i64) of the request records after it, written when it changes. Not thread-safe: it
// belongs to one thread at a time.
class AuditRecords {
 public:
  struct Fields {
    std::string_view src, method, url, host, user_agent;
  };

  using Table = std::shared_ptr<const std::vector<std::string>>;

  bool empty() const { return raw.empty(); }
  std::size_t bytes() const { return raw.size(); }  // the records' size, not the JSON's
  void reserve(std::size_t bytes) { raw.reserve(bytes); }
  void clear() {
    raw.clear();
    events = 0;
    tables.clear();
    have_ts = false;
  }
  void swap(AuditRecords& o) noexcept {
    raw.swap(o.raw);
    std::swap(events, o.events);
    tables.swap(o.tables);
    std::swap(ts, o.ts);
    std::swap(have_ts, o.have_ts);
  }

  void add_line(std::string_view line) {
    put('L');
    put(static_cast<std::uint32_t>(line.size()));
    raw.append(line.data(), line.size());
    ++events;
  }

  // The events of one request, stamped `time` (one time per batch): one per entry of
  // `fixed`, each the JSON of an event's fixed fields (audit_fixed_fields()), strings of
  // `table` that stay unchanged while the table lives.
  void add_request(const Fields& f, std::span<const std::string* const> fixed, const Table& table,
                   std::chrono::system_clock::time_point time) {
    if (fixed.empty()) return;
    if (tables.empty() || tables.back() != table) tables.push_back(table);
    if (!have_ts || time != ts) {  // held batches: each keeps the time it was read
      put('T');
      put(static_cast<std::int64_t>(time.time_since_epoch().count()));
      ts = time;
      have_ts = true;
    }
    const std::string_view parts[] = {f.src, f.method, f.url, f.host, f.user_agent};
    std::uint32_t head[7] = {};
    std::size_t bytes = 0;
    for (std::size_t i = 0; i < 5; ++i) {
      head[i] = static_cast<std::uint32_t>(parts[i].size());
      bytes += parts[i].size();
    }
    head[5] = static_cast<std::uint32_t>(fixed.size());
    char* w = raw.extend(1 + 6 * 4 + fixed.size_bytes() + bytes);
    *w++ = 'R';
    std::memcpy(w, head, 6 * 4);
    w += 6 * 4;
    std::memcpy(w, fixed.data(), fixed.size_bytes());
    w += fixed.size_bytes();
    for (const std::string_view part : parts) {
      if (part.empty()) continue;
      std::memcpy(w, part.data(), part.size());
      w += part.size();
    }
    events += fixed.size();
  }

  // Appends the JSON lines of every record, in order, to `out`. `scratch` is a buffer
  // kept by the caller between calls.
  void format(std::string& out, std::string& scratch) const {
    const char* p = raw.data();
    const char* const end = p + raw.size();
    auto u32 = [&p] {
      std::uint32_t v;
      std::memcpy(&v, p, 4);
      p += 4;
      return v;
    };
    std::chrono::system_clock::time_point time{};
    while (p < end) {
      const char kind = *p++;
      if (kind == 'L') {
        const std::uint32_t n = u32();
        out.append(p, n);
        p += n;
        continue;
      }
      if (kind == 'T') {
        std::int64_t ticks;
        std::memcpy(&ticks, p, sizeof ticks);
        p += sizeof ticks;
        time = std::chrono::system_clock::time_point(std::chrono::system_clock::duration(ticks));
        continue;
      }
      std::uint32_t len[5];
      for (auto& l : len) l = u32();
      const std::uint32_t n = u32();
      const char* fixed = p;
      p += std::size_t{n} * sizeof(const std::string*);
      std::string_view field[5];
      for (std::size_t i = 0; i < 5; ++i) {
        field[i] = std::string_view(p, len[i]);
        p += len[i];
      }
      AuditEvent e;
      e.src = field[0];
      e.method = field[1];
      e.url = field[2];
      e.host = field[3];
      e.user_agent = field[4];
      if (n > 1) {  // escape the request's fields once for all its events
        scratch.clear();
        authbypass::append_audit_request_fields(scratch, e);
        e.request_json = scratch;
      }
      for (std::uint32_t k = 0; k < n; ++k) {
        const std::string* text;
        std::memcpy(&text, fixed + std::size_t{k} * sizeof text, sizeof text);
        e.fixed_json = *text;
        authbypass::append_audit_json(out, e, time);
      }
    }
  }

  std::size_t events = 0;  // events recorded (a ready line counts as one)

 private:
  template <class T>
  void put(T v) {
    raw.append(&v, sizeof v);
  }

  ByteBuffer raw;
  std::vector<Table> tables;                   // the tables the records point into
  std::chrono::system_clock::time_point ts{};  // of the last 'T' record, if have_ts
  bool have_ts = false;
};

class Helper {
 public:
  explicit Helper(const Options& o)
      : opts_(o),
        source_(o.policy, std::chrono::milliseconds(o.check_interval_ms)),
        parser_(o.format, o.channel) {
    out_.reserve(kReadChunk);
    audit_.reserve(kReadChunk);
    pending_.reserve(4096);
  }

  ~Helper() {
    if (!writer_.joinable()) return;
    {
      std::lock_guard lock(writer_mutex_);
      writer_stop_ = true;
    }
    writer_cv_.notify_all();
    writer_.join();  // after its batch, if one is still being written
  }
  Helper(const Helper&) = delete;
  Helper& operator=(const Helper&) = delete;

  void start(const std::string& startup_error) {
    startup_error_ = startup_error;
    if (!startup_error_.empty()) {
      say("configuration error: " + startup_error_ +
          "; answering ERR to every request until restarted");
      return;
    }
    if (!opts_.audit_log.empty()) {
      std::string err;
      if (!audit_log_.open_file(opts_.audit_log, &err)) {
        say(err + (opts_.require_audit ? " (--require-audit: no bypass until it works)"
                                       : " (audit events are lost)"));
        audit_failed_ = true;
        ++stats_.audit_errors;
      }
    }
    if (opts_.syslog) audit_log_.enable_syslog("ext_authbypass_acl", opts_.syslog_facility);
    report(source_.reload());
    flush_audit();
  }

  // Serves stdin until EOF. Returns the exit status.
  int run() {
    char buf[kReadChunk];
    for (;;) {
      if (!release_if_idle()) return 1;
      wait_for_input();
      ssize_t n = ::read(0, buf, sizeof buf);
      if (n < 0) {
        if (errno == EINTR) {
          if (!drain()) return 1;
          housekeeping();
          flush_audit();
          continue;
        }
        say(std::string("cannot read stdin: ") + std::strerror(errno));
        return 1;
      }
      if (n == 0) break;
      housekeeping();
      batch_time_ = std::chrono::system_clock::now();               // one clock read per batch:
      today_ = std::chrono::floor<std::chrono::days>(batch_time_);  // the rules' day, UTC
      policy_ = source_.current();
      consume(std::string_view(buf, static_cast<std::size_t>(n)));
      if (!end_batch()) return 1;
      maybe_write_stats(false);
    }
    if (!drain()) return 1;
    if (!pending_.empty() || discarding_) {  // a last line without LF
      if (discarding_) {
        squid::append_error(out_, parser_.channel_of_prefix(prefix_), "line too long");
      } else {
        answer(pending_);
      }
    }
    flush_audit();  // and the answers held back, if any
    write_all(1, out_);
    maybe_write_stats(true);
    return 0;
  }

 private:
  // Counters for --stats-file. Per-rule hits are kept by rule index for the policy in
  // force (no lookup on the hot path) and folded into `by_id` when the policy changes.
  struct Stats {
    std::uint64_t lines = 0, bypass = 0, authenticate = 0, bad_lines = 0, malformed_requests = 0,
                  internal_errors = 0, reloads = 0, reloads_rejected = 0, audit_errors = 0,
                  refused_unaudited = 0;
    std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> by_id;  // bypass, shadow
  };

  void count_decision(const Decision& d) {
    if (!opts_.stats_file.empty() && hits_policy_ != policy_.get()) fold_hits();
    if (d.bypass()) {
      ++stats_.bypass;
    } else {
      ++stats_.authenticate;
    }
    if (opts_.stats_file.empty()) return;
    if (d.bypass() && d.rule) ++hits_[d.rule->index].first;
    for (std::size_t i = 0; i < d.shadow_count; ++i) ++hits_[d.shadow[i]->index].second;
    stats_dirty_ = true;
  }

  void fold_hits() {
    if (hits_owner_) {
      const auto& rules = hits_owner_->rules();
      for (std::size_t i = 0; i < hits_.size() && i < rules.size(); ++i) {
        if (hits_[i].first == 0 && hits_[i].second == 0) continue;
        auto& slot = stats_.by_id[rules[i].id];
        slot.first += hits_[i].first;
        slot.second += hits_[i].second;
      }
    }
    hits_owner_ = policy_;
    hits_policy_ = policy_.get();
    hits_.assign(policy_ ? policy_->rules().size() : 0, {0, 0});
  }

  // Blocks until stdin is readable. While idle it keeps looking at the policy file every
  // check interval (so a valid edit is loaded even when no request comes, and a later
  // broken edit cannot leave an older policy in force), and writes waiting counters.
  void wait_for_input() {
    if (!startup_error_.empty()) return;
    pollfd p{0, POLLIN, 0};
    const long interval = std::max(10L, opts_.check_interval_ms);
    for (;;) {
      int timeout = static_cast<int>(interval);
      if (!opts_.stats_file.empty() && stats_dirty_) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            last_stats_ + std::chrono::seconds(1) - std::chrono::steady_clock::now());
        timeout = static_cast<int>(std::clamp<long long>(left.count(), 0, interval));
      }
      int r = ::poll(&p, 1, timeout);
      if (r != 0) return;    // input, EOF, error or a signal: let read() tell
      if (!drain()) return;  // stdout is gone: the next write says so again
      housekeeping();
      flush_audit();
      maybe_write_stats(false);
    }
  }

  // Writes the counters (with write_output_file: a regular file is replaced atomically) if
  // a second has passed since the last write, or always when `force`. "%p" in FILE is the
  // helper's PID.
  void maybe_write_stats(bool force) {
    if (opts_.stats_file.empty()) return;
    const auto now = std::chrono::steady_clock::now();
    if (!force && (!stats_dirty_ || now - last_stats_ < std::chrono::seconds(1))) return;
    last_stats_ = now;
    stats_dirty_ = false;
    fold_hits();
    std::string path = opts_.stats_file;
    if (auto at = path.find("%p"); at != std::string::npos)
      path.replace(at, 2, std::to_string(::getpid()));
    std::string j = "{\"stats\":\"ext_authbypass_acl\",\"pid\":" + std::to_string(::getpid());
    auto num = [&](const char* k, std::uint64_t v) {
      j += ",\"";
      j += k;
      j += "\":" + std::to_string(v);
    };
    j += ",\"ts\":";
    authbypass::append_json_string(j, iso_now());
    auto p = source_.current();
    j += ",\"policy_sha256\":";
    authbypass::append_json_string(j, p ? p->sha256() : std::string());
    j += ",\"policy_file\":";
    authbypass::append_json_string(j, source_.path());
    num("lines", stats_.bypass + stats_.authenticate + stats_.bad_lines +
                     stats_.malformed_requests + stats_.internal_errors);
    num("bypass", stats_.bypass);
    num("authenticate", stats_.authenticate);
    num("bad_lines", stats_.bad_lines);
    num("malformed_requests", stats_.malformed_requests);
    num("internal_errors", stats_.internal_errors);
    num("reloads", stats_.reloads);
    num("reloads_rejected", stats_.reloads_rejected);
    num("regex_faults", p ? p->regex_faults() : 0);
    num("audit_errors", stats_.audit_errors);
    num("refused_unaudited", stats_.refused_unaudited);
    j += ",\"rules\":{";
    bool first = true;
    for (const auto& [id, h] : stats_.by_id) {
      if (!first) j += ',';
      first = false;
      authbypass::append_json_string(j, id);
      j += ":{\"bypass\":" + std::to_string(h.first) + ",\"shadow\":" + std::to_string(h.second) +
           "}";
    }
    j += "}}\n";
    authbypass::OutputFileOptions o;
    o.create_mode = 0640;
    o.durable = false;  // rewritten every second: no fsync on the answering thread
    if (auto r = authbypass::write_output_file(path, j, o); !r) {
      if (!stats_warned_) say("cannot write the stats file: " + r.message);
      stats_warned_ = true;
    }
  }

  static std::string iso_now() {
    std::string line;
    authbypass::append_audit_json(line, AuditEvent{}, std::chrono::system_clock::now());
    // {"ts":"2026-...Z"}\n -> the timestamp
    auto q = line.find('"', 7);
    return line.substr(7, q - 7);
  }

  void housekeeping() {
    if (g_hup) {
      g_hup = 0;
      drain();  // the writer thread is idle while the log is reopened
      std::string err;
      if (!audit_log_.reopen(&err)) say(err);
      if (startup_error_.empty()) report(source_.reload());
      return;
    }
    if (!startup_error_.empty()) return;
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    auto now = std::chrono::steady_clock::time_point(std::chrono::seconds(ts.tv_sec) +
                                                     std::chrono::nanoseconds(ts.tv_nsec));
    report(source_.check(now));
  }

  void report(const PolicySource::Outcome& o) {
    using Kind = PolicySource::Outcome::Kind;
    if (o.kind == Kind::kUnchanged) return;
    auto p = source_.current();
    AuditEvent e;
    e.component = "helper";
    e.file = source_.path();
    if (o.kind == Kind::kLoaded) {
      ++stats_.reloads;
      e.event = "policy_loaded";
      e.policy_sha256 = p->sha256();
      say("policy " + source_.path() + " loaded (" + std::to_string(p->rules().size()) +
          " rules, sha256 " + p->sha256().substr(0, 12) + ")");
    } else {
      ++stats_.reloads_rejected;
      e.event = "policy_rejected";
      std::string why;
      for (const std::string& err : o.errors) {
        say(err);
        if (!why.empty()) why += "; ";
        why += err;
      }
      say(p ? "policy not reloaded: the last good policy (sha256 " + p->sha256().substr(0, 12) +
                  ") stays in force"
            : "no valid policy: answering ERR to every request");
      e.reason = why;
      if (p) e.policy_sha256 = p->sha256();
      append_audit(e);
    }
    if (o.kind == Kind::kLoaded) append_audit(e);
  }

  // A policy event, stamped now (it may come while no batch is being served).
  void append_audit(const AuditEvent& e) {
    if (!audit_log_.enabled()) return;
    std::string line;
    authbypass::append_audit_json(line, e, std::chrono::system_clock::now());
    audit_.add_line(line);
  }

  // Writes the batch's audit lines. When that fails, the failure is said once on stderr
  // and counted; with --require-audit the batch's OK answers become ERR (a bypass that is
  // not on record does not happen), and so do later ones until a write succeeds.
  void flush_audit() {
    if (audit_.empty()) return;
    audit_text_.clear();
    audit_.format(audit_text_, request_json_);
    const bool ok = audit_log_.write(audit_text_);
    const int err = errno;
    std::vector<std::string> refused;
    if (!ok && opts_.require_audit) refuse_ok_answers(out_, &refused);
    audit_written(ok, err, refused);
    audit_.clear();
  }

  // The bookkeeping of one audit write (here or on the writer thread): said once on
  // stderr, counted, and the refused answers taken off the bypass counters.
  void audit_written(bool ok, int err, const std::vector<std::string>& refused) {
    if (!ok) {
      ++stats_.audit_errors;
      if (!audit_warned_) {
        say(std::string("cannot write the audit log: ") + std::strerror(err) +
            (opts_.require_audit ? " (--require-audit: bypasses refused until it works)" : ""));
      }
      audit_warned_ = true;
    } else if (audit_failed_ || audit_warned_) {
      say("the audit log is written again");
      audit_warned_ = false;
    }
    audit_failed_ = !ok;
    for (const std::string& id : refused) {
      ++stats_.refused_unaudited;
      // The counters said "bypass" for it: it was not one.
      if (stats_.bypass > 0) --stats_.bypass;
      ++stats_.authenticate;
      if (policy_ && hits_policy_ == policy_.get()) {
        if (const authbypass::Rule* r = policy_->find_rule(id); r && hits_[r->index].first > 0)
          --hits_[r->index].first;
      }
    }
  }

  // Rewrites the "[id ]OK ..." answer lines of `out` to "[id ]ERR message=..." and adds
  // the rule id of each to `refused`. Touches nothing else (runs on the writer thread too).
  static void refuse_ok_answers(std::string& out, std::vector<std::string>* refused) {
    std::string rewritten;
    rewritten.reserve(out.size());
    std::string_view rest = out;
    while (!rest.empty()) {
      std::size_t nl = rest.find('\n');
      std::string_view line = rest.substr(0, nl);
      rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
      std::size_t ok = line.starts_with("OK ") ? 0 : line.find(" OK ");
      if (ok == std::string_view::npos) {
        rewritten.append(line).append("\n");
        continue;
      }
      std::string_view channel = ok == 0 ? std::string_view() : line.substr(0, ok);
      squid::append_error(rewritten, channel, "audit log unwritable (--require-audit)");
      std::string_view after = line.substr(ok == 0 ? 0 : ok + 1);  // "OK log=<rule> ..."
      std::string_view id;
      if (after.starts_with("OK log=")) id = after.substr(7, after.find(' ', 7) - 7);
      refused->emplace_back(id);
    }
    out.swap(rewritten);
  }

  // Ends a batch: its audit lines, then its answers (a bypass is on record before Squid
  // acts on it). A big batch with audit lines goes to the writer thread, so that the next
  // batch is parsed while this one's audit lines are formatted and written; a small one
  // (one request in flight: latency matters) is written here, after any batch still being
  // written. Under heavy load (input waiting: see release_if_idle()) a big batch is held
  // back and joined by the next ones while the writer is busy or until kHandOffEvents,
  // so that the writer is woken once for several reads; never past kMaxHeldBytes of
  // answers or kMaxHeldAuditBytes of audit records, so a slow writer makes this thread
  // wait instead of the held batch growing. False when stdout cannot be written.
  bool end_batch() {
    if (audit_.events >= kOffloadAuditEvents && start_writer()) {
      if (out_.size() < kMaxHeldBytes && audit_.bytes() < kMaxHeldAuditBytes) {
        if (audit_.events < kHandOffEvents) return true;
        std::lock_guard lock(writer_mutex_);
        if (job_) return true;  // the writer is still at the last one
      }
      return hand_over();
    }
    return write_inline();
  }

  // Before the helper waits for input: answers held back by end_batch() are released
  // (handed to the writer, or written here) unless more input is waiting already.
  bool release_if_idle() {
    if (out_.empty() && audit_.empty()) return true;
    pollfd p{0, POLLIN, 0};
    if (::poll(&p, 1, 0) > 0) return true;  // more lines at once: they join the held ones
    if (audit_.events >= kOffloadAuditEvents && writer_.joinable()) return hand_over();
    return write_inline();
  }

  // Writes the audit lines and answers here, after the writer thread's last job.
  bool write_inline() {
    if (!drain()) return false;
    flush_audit();
    const bool ok = write_all(1, out_);
    out_.clear();
    return ok;
  }

  // Gives the held audit records and answers to the writer thread (after its last job).
  bool hand_over() {
    if (!drain()) return false;
    {
      std::lock_guard lock(writer_mutex_);
      job_audit_.swap(audit_);
      job_out_.swap(out_);
      audit_.clear();
      out_.clear();
      job_ = true;
    }
    writer_cv_.notify_all();
    return true;
  }

  // Waits for the writer thread's batch, if any, and does its bookkeeping. False when
  // that batch's answers could not be written to stdout.
  bool drain() {
    if (!writer_.joinable()) return true;
    std::unique_lock lock(writer_mutex_);
    writer_cv_.wait(lock, [this] { return !job_; });
    if (!job_done_) return job_out_ok_;
    job_done_ = false;
    const bool audit_ok = job_audit_ok_;
    const int err = job_errno_;
    std::vector<std::string> refused;
    refused.swap(job_refused_);
    lock.unlock();
    audit_written(audit_ok, err, refused);
    return job_out_ok_;
  }

  bool start_writer() {
    if (writer_.joinable()) return true;
    // The writer never takes SIGHUP: a blocked read() in this thread must see it.
    sigset_t hup;
    sigset_t old;
    sigemptyset(&hup);
    sigaddset(&hup, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &hup, &old);
    try {
      writer_ = std::thread([this] { writer_loop(); });
    } catch (const std::system_error& e) {
      say(std::string("no writer thread (") + e.what() + "): writing batches inline");
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    return writer_.joinable();
  }

  void writer_loop() {
    std::unique_lock lock(writer_mutex_);
    for (;;) {
      writer_cv_.wait(lock, [this] { return job_ || writer_stop_; });
      if (!job_) return;
      lock.unlock();
      // The job's buffers and audit_log_ are this thread's until job_ is cleared.
      bool audit_ok = true;
      if (!job_audit_.empty()) {
        job_text_.clear();
        job_audit_.format(job_text_, job_request_json_);
        audit_ok = audit_log_.write(job_text_);
      }
      const int err = errno;
      std::vector<std::string> refused;
      if (!audit_ok && opts_.require_audit) refuse_ok_answers(job_out_, &refused);
      const bool out_ok = write_all(1, job_out_);
      job_audit_.clear();
      job_out_.clear();
      lock.lock();
      job_audit_ok_ = audit_ok;
      job_errno_ = err;
      job_refused_.swap(refused);
      job_out_ok_ = job_out_ok_ && out_ok;
      job_done_ = true;
      job_ = false;
      writer_cv_.notify_all();
    }
  }

  // Splits a chunk into lines; over-long lines are skipped to their LF and answered ERR.
  void consume(std::string_view chunk) {
    while (!chunk.empty()) {
      std::size_t nl = chunk.find('\n');
      std::string_view part = chunk.substr(0, nl);
      if (discarding_) {
        if (nl == std::string_view::npos) return;
        squid::append_error(out_, parser_.channel_of_prefix(prefix_), "line too long");
        if (opts_.debug)
          say("line too long (over " + std::to_string(squid::kMaxLineBytes) + " bytes)");
        discarding_ = false;
      } else if (pending_.size() + part.size() > squid::kMaxLineBytes) {
        prefix_.assign(pending_.empty() ? part.substr(0, kEchoPrefix)
                                        : std::string_view(pending_).substr(0, kEchoPrefix));
        pending_.clear();
        discarding_ = true;
        continue;  // re-examine this part in discarding mode
      } else if (nl == std::string_view::npos) {
        pending_.append(part);
        return;
      } else if (!pending_.empty()) {
        pending_.append(part);
        answer(pending_);
        pending_.clear();
      } else {
        answer(part);
      }
      chunk.remove_prefix(nl + 1);
    }
  }

  void answer(std::string_view line) {
    const squid::ParsedLine* parsed = nullptr;
    try {
      parsed = &parser_.parse(line);
      if (!parsed->error.empty()) {
        squid::append_error(out_, parsed->channel, parsed->error);
        ++stats_.bad_lines;
        if (opts_.debug) say("bad line: " + std::string(parsed->error));
        return;
      }
      if (!startup_error_.empty()) {
        squid::append_error(out_, parsed->channel, "helper misconfigured, see cache.log");
        return;
      }
      if (!policy_) {
        squid::append_error(out_, parsed->channel, "no valid policy, see cache.log");
        return;
      }
      if (!request_.parse(parsed->input)) {
        squid::append_error(out_, parsed->channel, request_.error());
        ++stats_.malformed_requests;
        if (opts_.debug) say("malformed request: " + std::string(request_.error()));
        return;
      }
      Decision d = policy_->decide(request_, today_, eval_);
      if (d.bypass() && opts_.require_audit && audit_failed_ && drain() &&
          !audit_log_.reopen(nullptr)) {
        squid::append_error(out_, parsed->channel, "audit log unwritable (--require-audit)");
        ++stats_.refused_unaudited;
        count_decision(Decision{});
        return;
      }
      squid::append_decision(out_, parsed->channel, d);
      count_decision(d);
      if (audit_log_.enabled() && (d.bypass() || d.shadow_count > 0))
        audit_decision(d, parsed->input.src);
    } catch (const std::exception& e) {
      squid::append_broken(out_, parsed ? parsed->channel : std::string_view(), "internal error");
      ++stats_.internal_errors;
      say(std::string("internal error: ") + e.what());
    }
  }

  // Records the request's bypass and shadow events: its fields are copied as they are,
  // escaping and JSON are left to AuditRecords::format() (on the writer thread for a big
  // batch).
  void audit_decision(const Decision& d, std::string_view src) {
    const std::string* fixed[1 + authbypass::Decision::kMaxShadow];
    std::size_t n = 0;
    if (d.bypass()) fixed[n++] = fixed_fields(*d.rule, false);
    for (std::size_t i = 0; i < d.shadow_count; ++i) fixed[n++] = fixed_fields(*d.shadow[i], true);
    // src as Squid sent it (Request::parse checked it is an IP address)
    audit_.add_request({src, request_.method, request_.url, request_.host, request_.user_agent},
                       std::span(fixed, n), fixed_, batch_time_);
  }

  // The escaped component..policy_sha256 fields of a rule's bypass / shadow events, made
  // once per rule and policy, in fixed_. A new policy gets a new table: records still to be
  // formatted keep the old one alive. A filled entry never changes.
  const std::string* fixed_fields(const authbypass::Rule& r, bool shadow) {
    if (!fixed_ || fixed_policy_ != policy_->generation()) {
      fixed_policy_ = policy_->generation();
      fixed_ = std::make_shared<std::vector<std::string>>(policy_->rules().size() * 2);
    }
    std::string& text = (*fixed_)[r.index * 2 + (shadow ? 1 : 0)];
    if (text.empty()) {
      AuditEvent e;
      e.component = "helper";
      e.event = shadow ? "shadow" : "bypass";
      e.rule = r.id;
      e.owner = r.owner;
      e.ticket = r.ticket;
      e.policy_sha256 = policy_->sha256();
      text = authbypass::audit_fixed_fields(e);
    }
    return &text;
  }

  const Options& opts_;
  PolicySource source_;
  squid::LineParser parser_;
  AuditLog audit_log_;
  AuditRecords audit_;                     // the batch's audit events, not yet formatted
  std::string audit_text_, request_json_;  // flush_audit()'s buffers
  std::string startup_error_;
  std::shared_ptr<const Policy> policy_;
  authbypass::Date today_{};
  Request request_;
  authbypass::EvalContext eval_;  // the process's regex memos (one thread decides)
  std::string out_, pending_, prefix_;
  bool discarding_ = false;
  Stats stats_;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> hits_;
  std::shared_ptr<const Policy> hits_owner_;
  const Policy* hits_policy_ = nullptr;
  bool stats_dirty_ = false;
  bool stats_warned_ = false;
  std::chrono::steady_clock::time_point last_stats_{};
  bool audit_warned_ = false;
  bool audit_failed_ = false;
  std::shared_ptr<std::vector<std::string>> fixed_;     // see fixed_fields()
  std::uint64_t fixed_policy_ = 0;                      // the policy generation fixed_ is for
  std::chrono::system_clock::time_point batch_time_{};  // `ts` of the batch's audit events
  // The writer thread (end_batch): one batch at a time, handed over under writer_mutex_.
  static constexpr std::size_t kOffloadAuditEvents = 32;
  static constexpr std::size_t kHandOffEvents = 1024;                        // see end_batch()
  static constexpr std::size_t kMaxHeldBytes = std::size_t{256} << 10;       // answers held
  static constexpr std::size_t kMaxHeldAuditBytes = std::size_t{256} << 10;  // records held
  std::thread writer_;
  std::mutex writer_mutex_;
  std::condition_variable writer_cv_;
  bool job_ = false, job_done_ = false, writer_stop_ = false;
  bool job_audit_ok_ = true, job_out_ok_ = true;
  int job_errno_ = 0;
  AuditRecords job_audit_;
  std::string job_out_, job_text_, job_request_json_;
  std::vector<std::string> job_refused_;
};

}  // namespace

int main(int argc, char** argv) {
  set_up_signals();  // already done before main(); again in case nothing ran the array
  Options opts;
  std::string error;
  bool done = false;
  if (!parse_args(argc, argv, opts, &error, &done)) {
    // Fall through: serve ERR (an exiting helper makes Squid die).
  } else if (done) {
    return 0;
  }
  Helper helper(opts);
  helper.start(error);
  release_hup();
  return helper.run();
}
