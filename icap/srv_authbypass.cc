// srv_authbypass.so: the c-icap service of docs/architecture.md "ICAP service". A thin
// adapter: it reads the ICAP transaction (ICAP headers, the encapsulated HTTP request and
// response) into the facts of an engine icap::Transaction (icap_transaction.h), which
// decides on a PolicySource snapshot what to do and which check the body needs, applies
// the answer (204, 403 page, edited request, body check while it streams), reports what
// the body did, and writes the audit events and counters the transaction's outcome ends in
// (AuditLog, JSON lines).
//
// How a transaction goes (docs/icap-service.md has the long form):
//   * X-Authenticated-User present: 204 at once, no event.
//   * No X-Authenticated-User: Squid let the request through the hole (only bypassed
//     requests are sent here), whatever this service's policy snapshot says now. If that
//     policy would authenticate it (a reload between Squid's cached helper answer, or
//     another child's REQMOD decision, and this transaction), it is never a 204: the
//     response is checked with the marked rule's verify (decision mode) or as `revocation`,
//     a request body must be an OCSP request, a CONNECT is refused; the event says why.
//   * RESPMOD, rule with verify: the body is fed to the checker as it arrives. While the
//     service holds the body (up to kHoldLimit bytes) a rejection becomes a short 403
//     page and a genuine end becomes a 204. Past kHoldLimit it streams the body on,
//     always keeping the last kTail bytes back until the checker's final verdict; a late
//     rejection closes the ICAP connection (Squid aborts the client's transfer), so the
//     client never receives the whole impostor. Verify preview: 204 inside the preview
//     when the preview identifies the object.
//   * REQMOD, bypassed request with a body: the whole body (at most the OCSP cap) is held
//     and must be a DER OCSPRequest sent as application/ocsp-request; else 403.
//   * authbypass.Mode decide|both (decision mode, for fleets): REQMOD sees every request
//     and decides itself. Any client-sent X-Authbypass header is stripped (and audited;
//     such a request is never marked); a bypass gets "X-Authbypass: <secret> <rule-id>"
//     added (ICAP 200 with the edited request, a `bypass` event) after the OCSP body
//     check; anything else is a 204. `both` also verifies RESPMOD as above; `decide`
//     answers RESPMOD with 204. Without a valid authbypass.SharedSecretFile the service
//     refuses to start (post_init fails: c-icap answers 500 for it).
//
// Housekeeping (the policy file, the shared secret file, the audit log's identity) runs at
// most once a second: from transactions, and from one idle-watcher thread per c-icap child
// (started by c-icap's CHILD_START command, stopped by CHILD_STOP), so that a child that
// gets no transaction still loads each valid policy while it is on disk.
//
// c-icap facts this relies on (docs/architecture.md "Squid and c-icap facts"):
// mod_init_request_data also runs for OPTIONS; the preview handler is called with (NULL, 0) when
// there is no preview; service_io must take all of rbuf (it does, up to a hard per-transaction
// bound it never reaches while output is pending); ci_debug_printf is a bare `if`, always braced
// here.
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "authbypass/audit.h"
#include "authbypass/file_identity.h"
#include "authbypass/icap_request.h"
#include "authbypass/icap_transaction.h"
#include "authbypass/policy.h"
#include "authbypass/policy_source.h"
#include "authbypass/request.h"
#include "authbypass/revocation_check.h"
#include "authbypass/stats.h"

extern "C" {
#include "c-icap.h"
#include "commands.h"
#include "debug.h"
#include "header.h"
#include "module.h"
#include "request.h"
#include "service.h"
#include "simple_api.h"
#include "stats.h"
}

namespace {

void count_stat(authbypass::icap::Counter c);  // c-icap statistics

using authbypass::AuditEvent;
using authbypass::AuditLog;
using authbypass::FileIdentity;
using authbypass::Policy;
using authbypass::PolicySource;
using authbypass::RevocationCheck;
using authbypass::RevocationLimits;
using authbypass::icap::Action;
using authbypass::icap::BodyVerdict;
using authbypass::icap::Transaction;
using authbypass::icap::TransactionContext;
using authbypass::icap::TransactionFacts;

// Bytes held (nothing sent yet) before the service starts streaming a response body.
// Below Squid's 64 KB: Squid offers "Allow: 204" outside the preview only for bodies
// under 64 KB, and a service that keeps data locked stalls it on larger bodies (Squid
// bug 5352). Bodies up to this size get a 403 page or a 204, never a cut transfer.
constexpr std::size_t kHoldLimit = 32 * 1024;
// While streaming, the last bytes stay back until the checker's final verdict.
constexpr std::size_t kTail = 16 * 1024;
// Hard bound on the bytes one transaction buffers. Past it, service_io takes less of
// rbuf (only ever while output is pending, so c-icap keeps going).
constexpr std::size_t kMaxBuffered = 256 * 1024;
// Preview size advertised in OPTIONS (Squid: icap_preview_size 1024).
constexpr int kPreviewSize = 1024;

// ---------------------------------------------------------------------------------------
// Logging to c-icap's server log.

void log_msg(int level, const std::string& msg) {
  // ci_debug_printf is a bare `if`: keep the braces.
  if (level <= CI_DEBUG_LEVEL) {
    ci_debug_printf(level, "srv_authbypass: %s\n", msg.c_str());
  }
}

// ---------------------------------------------------------------------------------------
// Configuration (c-icap directives authbypass.*), filled while c-icap reads its config.

using authbypass::icap::ServiceMode;  // authbypass.Mode
using authbypass::icap::VerifyMode;   // authbypass.VerifyMode

const char* mode_name(ServiceMode m) {
  switch (m) {
    case ServiceMode::kDecide:
      return "decide";
    case ServiceMode::kBoth:
      return "both";
    case ServiceMode::kVerify:
      break;
  }
  return "verify";
}

struct Config {
  std::string policy;
  std::string audit_file;
  bool audit_syslog = false;
  int syslog_facility = -1;  // -1: authpriv
  VerifyMode mode = VerifyMode::kFull;
  RevocationLimits limits;
  ServiceMode service_mode = ServiceMode::kVerify;
  std::string secret_file;  // authbypass.SharedSecretFile (decide, both)
  std::string stats_file;   // authbypass.StatsFile ("%p": the child's PID)
};

Config g_config;

// Parses "123", "64K", "100M", "1G" (binary multiples; "KB", "KiB" etc. also accepted).
std::optional<std::uint64_t> parse_size(std::string_view s) {
  std::uint64_t v = 0;
  std::size_t i = 0;
  for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
    if (v > (UINT64_MAX - 9) / 10) return std::nullopt;
    v = v * 10 + static_cast<unsigned>(s[i] - '0');
  }
  if (i == 0) return std::nullopt;
  std::string unit(s.substr(i));
  for (char& c : unit)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  std::uint64_t mul = 0;
  if (unit.empty() || unit == "B") {
    mul = 1;
  } else if (unit == "K" || unit == "KB" || unit == "KIB") {
    mul = 1024;
  } else if (unit == "M" || unit == "MB" || unit == "MIB") {
    mul = 1024 * 1024;
  } else if (unit == "G" || unit == "GB" || unit == "GIB") {
    mul = 1024ull * 1024 * 1024;
  } else {
    return std::nullopt;
  }
  if (v != 0 && mul > UINT64_MAX / v) return std::nullopt;
  return v * mul;
}

int argc_of(const char** argv) {
  int n = 0;
  while (argv && argv[n]) ++n;
  return n;
}

// A directive that takes one word among `choices`: its value into *out (1), or the
// directive refused with the choices named (0).
template <class T, std::size_t N>
int choose_one(const char* directive, const char** argv,
               const std::pair<std::string_view, T> (&choices)[N], T* out) {
  const std::string_view v = argc_of(argv) == 1 ? argv[0] : "";
  std::string names;
  for (std::size_t i = 0; i < N; ++i) {
    if (v == choices[i].first) {
      *out = choices[i].second;
      return 1;
    }
    names += i == 0 ? "'" : i + 1 == N ? " or '" : ", '";
    names.append(choices[i].first) += '\'';
  }
  log_msg(1, std::string(directive) + " must be " + names);
  return 0;
}

// A directive whose one argument is a file name: into *out. 0 (and a log line naming
// `what`) for no argument, more than one, or an empty one.
int one_file(const char* directive, const char** argv, const char* what, std::string* out) {
  if (argc_of(argv) != 1 || !*argv[0]) {
    log_msg(1, std::string(directive) + " needs one argument: " + what);
    return 0;
  }
  *out = argv[0];
  return 1;
}

extern "C" int cfg_policy(const char* directive, const char** argv, void*) {
  if (argc_of(argv) != 1) {
    log_msg(1, std::string(directive) + " needs one argument: the policy file");
    return 0;
  }
  g_config.policy = argv[0];
  return 1;
}

extern "C" int cfg_audit_log(const char* directive, const char** argv, void*) {
  if (argc_of(argv) != 1) {
    log_msg(1, std::string(directive) + " needs one argument: a file or 'syslog'");
    return 0;
  }
  if (std::string_view(argv[0]) == "syslog") {
    g_config.audit_syslog = true;
  } else {
    g_config.audit_file = argv[0];
  }
  return 1;
}

// authbypass.Syslog [FACILITY]: audit events to syslog too (default facility authpriv).
extern "C" int cfg_syslog(const char* directive, const char** argv, void*) {
  const int n = argc_of(argv);
  if (n > 1) {
    log_msg(1, std::string(directive) + " takes at most one argument: a syslog facility");
    return 0;
  }
  if (n == 1) {
    auto f = authbypass::syslog_facility(argv[0]);
    if (!f) {
      log_msg(1, std::string(directive) + ": unknown facility '" + argv[0] +
                     "' (auth, authpriv, daemon, user, local0..local7)");
      return 0;
    }
    g_config.syslog_facility = *f;
  }
  g_config.audit_syslog = true;
  return 1;
}

extern "C" int cfg_verify(const char* directive, const char** argv, void*) {
  static constexpr std::pair<std::string_view, VerifyMode> kModes[] = {
      {"full", VerifyMode::kFull}, {"preview", VerifyMode::kPreview}};
  return choose_one(directive, argv, kModes, &g_config.mode);
}

// authbypass.MaxBodySize SIZE          every kind's cap (OCSP, certificates, CRLs, CTLs)
// authbypass.MaxBodySize KIND SIZE     one kind: crl, ocsp, cert (also PKCS#7), ctl
extern "C" int cfg_max_body_size(const char* directive, const char** argv, void*) {
  int n = argc_of(argv);
  if (n != 1 && n != 2) {
    log_msg(1, std::string(directive) + " needs [crl|ocsp|cert|ctl] SIZE");
    return 0;
  }
  auto size = parse_size(argv[n - 1]);
  if (!size || *size == 0) {
    log_msg(1, std::string(directive) + ": bad size '" + argv[n - 1] + "' (e.g. 64K, 100M)");
    return 0;
  }
  RevocationLimits& l = g_config.limits;
  if (n == 1) {
    l.ocsp = l.cert = l.crl = l.ctl = *size;
    return 1;
  }
  std::string_view kind = argv[0];
  if (kind == "crl") {
    l.crl = *size;
  } else if (kind == "ocsp") {
    l.ocsp = *size;
  } else if (kind == "cert" || kind == "pkcs7") {
    l.cert = *size;
  } else if (kind == "ctl") {
    l.ctl = *size;
  } else {
    log_msg(1, std::string(directive) + ": unknown kind '" + argv[0] + "' (crl, ocsp, cert, ctl)");
    return 0;
  }
  return 1;
}

// authbypass.Mode verify|decide|both
extern "C" int cfg_mode(const char* directive, const char** argv, void*) {
  static constexpr std::pair<std::string_view, ServiceMode> kModes[] = {
      {"verify", ServiceMode::kVerify},
      {"decide", ServiceMode::kDecide},
      {"both", ServiceMode::kBoth}};
  return choose_one(directive, argv, kModes, &g_config.service_mode);
}

// authbypass.SharedSecretFile FILE: read (and checked) in post_init, as c-icap's User.
extern "C" int cfg_secret_file(const char* directive, const char** argv, void*) {
  return one_file(directive, argv, "the shared secret file", &g_config.secret_file);
}

// authbypass.StatsFile FILE: each child's counters (stats.h), "%p" replaced by its PID.
extern "C" int cfg_stats_file(const char* directive, const char** argv, void*) {
  return one_file(directive, argv, "the stats file (%p: the PID)", &g_config.stats_file);
}

ci_conf_entry g_conf_table[] = {
    {"Policy", nullptr, cfg_policy, "The authbypass policy file (reloaded when it changes)"},
    {"AuditLog", nullptr, cfg_audit_log, "Audit log file (JSON lines), or 'syslog'"},
    {"Syslog", nullptr, cfg_syslog, "[FACILITY]: audit events to syslog too (authpriv)"},
    {"Verify", nullptr, cfg_verify, "full (check every byte) or preview (decide on the preview)"},
    {"MaxBodySize", nullptr, cfg_max_body_size, "[crl|ocsp|cert|ctl] SIZE: size caps"},
    {"Mode", nullptr, cfg_mode, "verify (default), decide or both: who decides the bypass"},
    {"SharedSecretFile", nullptr, cfg_secret_file,
     "FILE: the secret of the X-Authbypass mark (Mode decide, both)"},
    {"StatsFile", nullptr, cfg_stats_file, "FILE: each child's counters, JSON (%p: its PID)"},
    {nullptr, nullptr, nullptr, nullptr}};

// ---------------------------------------------------------------------------------------
// Service state: built after c-icap switched to its run user (post_init), shared by every
// thread of the process (and copied into each child by fork). Transactions hold a
// shared_ptr, so a reconfigure never frees it under a running transaction.

class State {
 public:
  explicit State(const Config& c) : config_(c), source_(c.policy) {}

  bool decides() const { return config_.service_mode != ServiceMode::kVerify; }

  // Decision mode: the shared secret must be there before anything else. False (and
  // *error) when the service must refuse to start.
  bool load_secret(std::string* error) {
    if (!decides()) {
      if (!config_.secret_file.empty())
        log_msg(1, "authbypass.SharedSecretFile is ignored in authbypass.Mode verify");
      return true;
    }
    if (config_.secret_file.empty()) {
      *error = std::string("authbypass.Mode ") + mode_name(config_.service_mode) +
               " needs authbypass.SharedSecretFile (make one with `authbypass secret`)";
      return false;
    }
    auto secret = authbypass::icap::read_shared_secret_file(config_.secret_file, error);
    if (!secret) return false;
    secret_.store(std::make_shared<const std::string>(std::move(*secret)));
    secret_id_ = authbypass::file_identity(config_.secret_file);
    return true;
  }

  // The secret in force (null only before load_secret succeeded).
  std::shared_ptr<const std::string> secret() const { return secret_.load(); }

  void start() {
    if (!config_.audit_file.empty()) {
      std::string err;
      if (!audit_.open_file(config_.audit_file, &err)) {
        log_msg(1, err + " (audit events are lost until it can be opened)");
      }
      remember_audit_identity();
    }
    if (config_.audit_syslog) audit_.enable_syslog("srv_authbypass", config_.syslog_facility);
    if (config_.policy.empty()) {
      log_msg(1, "authbypass.Policy is not set: every bypassed request is blocked");
    } else {
      report(source_.reload());
    }
    next_check_ns_.store(now_ns() + kCheckIntervalNs, std::memory_order_relaxed);
  }

  // At most once a second, from whichever thread gets there first (a transaction or the
  // child's idle watcher): the policy file (reloaded when it changed), the shared secret
  // file and the audit log (reopened when logrotate moved it).
  void housekeeping() {
    std::int64_t now = now_ns();
    if (now < next_check_ns_.load(std::memory_order_relaxed)) return;
    std::unique_lock<std::mutex> lk(check_mu_, std::try_to_lock);
    if (!lk.owns_lock()) return;
    if (now < next_check_ns_.load(std::memory_order_relaxed)) return;
    next_check_ns_.store(now + kCheckIntervalNs, std::memory_order_relaxed);
    if (!config_.policy.empty()) {
      // The same instant as next_check_ns_: PolicySource keeps its own 1 s interval, and a
      // later reading of the clock could put this look a few microseconds short of it,
      // which would skip it (and the next look would come a second later).
      report(source_.check(std::chrono::steady_clock::time_point(
          std::chrono::duration_cast<std::chrono::steady_clock::duration>(
              std::chrono::nanoseconds(now)))));
    }
    if (decides()) check_secret();
    if (!config_.audit_file.empty()) {
      const bool moved = !authbypass::file_identity(config_.audit_file).same_file(audit_id_);
      if (moved) {
        std::lock_guard<std::mutex> alk(audit_mu_);
        std::string err;
        if (!audit_.reopen(&err)) {
          if (!audit_reopen_warned_) log_msg(1, err);
          audit_reopen_warned_ = true;
        } else {
          audit_reopen_warned_ = false;
        }
        remember_audit_identity();
      }
    }
    write_stats(false, std::chrono::steady_clock::time_point(
                           std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                               std::chrono::nanoseconds(now))));
  }

  // How long until housekeeping() next has something to do (the idle watcher's timeout):
  // at least 1 ms, at most the check interval.
  std::chrono::nanoseconds until_next_check() const {
    std::int64_t left = next_check_ns_.load(std::memory_order_relaxed) - now_ns();
    return std::chrono::nanoseconds(std::clamp<std::int64_t>(left, 1'000'000, kCheckIntervalNs));
  }

  std::shared_ptr<const Policy> policy() const { return source_.current(); }
  const Config& config() const { return config_; }

  void audit(const AuditEvent& e) { audit(&e, 1); }

  // Counts an audited outcome: c-icap's statistic and this process's snapshot.
  void count(authbypass::icap::Counter c) {
    count_stat(c);
    counts_[static_cast<std::size_t>(c)].fetch_add(1, std::memory_order_relaxed);
    counted_in_.store(::getpid(), std::memory_order_relaxed);
    stats_dirty_.store(true, std::memory_order_release);
  }

  // A c-icap child started (CHILD_START): it writes its snapshot from now on, even before
  // its first transaction.
  void arm_stats() { counted_in_.store(::getpid(), std::memory_order_relaxed); }

  // authbypass.StatsFile: this process's snapshot, when it changed (or was never written).
  // From housekeeping() (at most once a second) and when the child stops (`last`). Only
  // in a process that serves transactions (a child), never in c-icap's main process.
  void write_stats(bool last, authbypass::StatsFileWriter::Clock::time_point now =
                                  authbypass::StatsFileWriter::Clock::now()) {
    if (!stats_writer_.enabled() || counted_in_.load(std::memory_order_relaxed) != ::getpid())
      return;
    std::lock_guard<std::mutex> lk(stats_mu_);
    const bool changed = stats_dirty_.load(std::memory_order_acquire) || !stats_writer_.written();
    if (!stats_writer_.due(changed, last && changed, now)) return;
    stats_dirty_.exchange(false, std::memory_order_acq_rel);
    const auto p = source_.current();
    auto st = authbypass::StatsFileWriter::header(authbypass::StatsSource::kIcap,
                                                  p ? p->sha256() : "", config_.policy);
    for (std::size_t i = 0; i < counts_.size(); ++i)
      st.icap[i] = counts_[i].load(std::memory_order_relaxed);
    if (auto failed = stats_writer_.write(st, now)) log_msg(1, *failed);
    if (last) log_msg(3, "stats written on exit");
  }

  // Several events, one write.
  void audit(const AuditEvent* events, std::size_t n) {
    if (!audit_.enabled() || n == 0) return;
    std::string line;
    const auto now = std::chrono::system_clock::now();
    for (std::size_t i = 0; i < n; ++i) authbypass::append_audit_json(line, events[i], now);
    std::lock_guard<std::mutex> lk(audit_mu_);
    if (!audit_.write(line)) {
      if (!audit_write_warned_) {
        log_msg(1, std::string("cannot write the audit log: ") + std::strerror(errno));
      }
      audit_write_warned_ = true;
    } else {
      audit_write_warned_ = false;
    }
  }

 private:
  static constexpr std::int64_t kCheckIntervalNs = 1'000'000'000;

  // Rotation: a changed secret file is read again; a bad one is logged and the secret in
  // force stays (never a moment without one). The secret itself is never logged.
  void check_secret() {
    const FileIdentity id = authbypass::file_identity(config_.secret_file);
    if (id == secret_id_) return;
    secret_id_ = id;
    std::string err;
    auto secret = authbypass::icap::read_shared_secret_file(config_.secret_file, &err);
    if (!secret) {
      log_msg(1, err + ": the shared secret in force stays");
      return;
    }
    auto cur = secret_.load();
    if (cur && *cur == *secret) return;
    secret_.store(std::make_shared<const std::string>(std::move(*secret)));
    log_msg(1, "shared secret reloaded from " + config_.secret_file);
  }

  static std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }

  void remember_audit_identity() { audit_id_ = authbypass::file_identity(config_.audit_file); }

  void report(const PolicySource::Outcome& o) {
    using Kind = PolicySource::Outcome::Kind;
    if (o.kind == Kind::kUnchanged) return;
    auto p = source_.current();
    const bool loaded = o.kind == Kind::kLoaded;
    if (loaded)
      stats_dirty_.store(true, std::memory_order_release);  // the snapshot names the policy
    for (const std::string& m :
         source_.messages(o, "no valid policy: every bypassed request is blocked"))
      log_msg(1, m);
    std::string why;
    audit(authbypass::policy_event("icap", loaded, source_.path(),
                                   p ? std::string_view(p->sha256()) : "", o.errors, why));
  }

  Config config_;
  PolicySource source_;
  std::atomic<std::shared_ptr<const std::string>> secret_;
  FileIdentity secret_id_;  // guarded by check_mu_ (after start)
  std::mutex check_mu_;
  std::atomic<std::int64_t> next_check_ns_{0};
  std::mutex audit_mu_;
  AuditLog audit_;
  FileIdentity audit_id_;  // of the audit log as last opened
  bool audit_write_warned_ = false;
  bool audit_reopen_warned_ = false;
  std::array<std::atomic<std::uint64_t>, authbypass::icap::kCounterCount> counts_{};
  std::atomic<pid_t> counted_in_{0};  // the process whose counts_ these are (a child)
  std::atomic<bool> stats_dirty_{false};
  std::mutex stats_mu_;
  authbypass::StatsFileWriter stats_writer_{config_.stats_file};  // guarded by stats_mu_
};

std::atomic<std::shared_ptr<State>> g_state;

// ---------------------------------------------------------------------------------------
// The idle watcher: housekeeping() also while no transaction comes.
//
// Transactions alone are not enough: a child that got none while a valid policy B was on
// disk never loaded it, and after a broken edit C it kept the OLDER policy A in force, not
// the last good one (docs/reliability.md; tests/icap/icap_idle_reload_test.py). So each
// c-icap child runs one thread that sleeps until the next check is due (a condition
// variable with that timeout, so that stop() wakes it at once) and calls housekeeping().
//
// Which process: c-icap builds the State in the main process (post_init) and forks the
// children from it. fork() copies only the calling thread, so a thread started in
// post_init would run in the main process only, which serves no transaction. c-icap's
// commands API runs CI_CMD_CHILD_START actions in each child after the fork (child_main:
// worker threads created, the listener not yet accepting; also for every child started
// later) and CI_CMD_CHILD_STOP actions when a child goes down (after its worker threads
// ended, before the services are closed and the modules unloaded). The thread is started
// and joined there; svc_close_service stops it too (idempotent).
class IdleWatcher {
 public:
  // In a child (CHILD_START). Does nothing if this process runs one already.
  void start(std::shared_ptr<State> state) {
    std::lock_guard<std::mutex> lk(mu_);
    if (running_here()) return;
    forget_foreign_thread();
    stopping_ = false;
    // The thread takes no signal: c-icap's handlers (SIGTERM, SIGHUP, SIGPIPE) stay with
    // its own threads, as before. A new thread inherits the creator's mask.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    try {
      thread_ = std::make_unique<std::thread>([this, s = std::move(state)] { run(*s); });
      owner_ = ::getpid();
    } catch (const std::system_error& e) {
      log_msg(1, std::string("cannot start the idle watcher (the policy is looked at on "
                             "transactions only): ") +
                     e.what());
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (owner_ == ::getpid()) log_msg(3, "idle watcher started");
  }

  // CHILD_STOP and svc_close_service: wakes the thread and joins it. Idempotent; in a
  // process that runs none (the main process), nothing.
  void stop() {
    std::unique_ptr<std::thread> t;
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (!running_here()) {
        forget_foreign_thread();
        return;
      }
      stopping_ = true;
      t = std::move(thread_);
      owner_ = 0;
    }
    cv_.notify_all();
    if (t->get_id() == std::this_thread::get_id()) {
      t->detach();  // never: housekeeping() does not stop the watcher
    } else {
      t->join();
    }
    log_msg(3, "idle watcher stopped");
  }

 private:
  bool running_here() const { return thread_ && owner_ == ::getpid(); }

  // A std::thread copied by a fork: its thread does not exist in this process, so it can
  // be neither joined nor destroyed (a joinable std::thread's destructor calls
  // std::terminate). c-icap does not fork from a child, but should it, the object is
  // left as it is (a few bytes).
  void forget_foreign_thread() {
    if (thread_ && owner_ != ::getpid()) (void)thread_.release();
    if (!thread_) owner_ = 0;
  }

  // The thread. Touches only this object (never destroyed) and its own reference to the
  // State (kept alive by it until the thread ends).
  void run(State& s) {
    std::unique_lock<std::mutex> lk(mu_);
    while (!stopping_) {
      if (cv_.wait_for(lk, s.until_next_check(), [this] { return stopping_; })) break;
      lk.unlock();
      try {
        s.housekeeping();
      } catch (...) {  // never out of the thread (std::terminate); the next look retries
        log_msg(1, "internal error in the idle watcher's housekeeping");
      }
      lk.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;                // guarded by mu_
  std::unique_ptr<std::thread> thread_;  // guarded by mu_
  pid_t owner_ = 0;                      // the process thread_ runs in (guarded by mu_)
};

// Never destroyed: no static destructor can run under a thread still waiting on it (a child
// that would exit without CHILD_STOP), and no joinable std::thread is ever destroyed.
IdleWatcher& idle_watcher() {
  static IdleWatcher* const w = new IdleWatcher;
  return *w;
}

extern "C" void child_start_action(const char*, int, void*) {
  if (auto s = g_state.load()) {
    s->arm_stats();
    idle_watcher().start(std::move(s));
  }
}

extern "C" void child_stop_action(const char*, int, void*) {
  idle_watcher().stop();
  if (auto s = g_state.load()) s->write_stats(true);
}

// Registers the child start/stop actions. ci_command_register_action is defined in the
// c-icap executable, not in libicapapi (0.5.10), and this module links with -z defs: it is
// looked up at run time. c-icap drops its command table on reconfigure before it closes
// and initializes the services again, so post_init registers afresh each time.
bool register_child_actions() {
  using RegisterAction = decltype(&ci_command_register_action);
  void* sym = ::dlsym(RTLD_DEFAULT, "ci_command_register_action");
  if (!sym) return false;
  auto reg = reinterpret_cast<RegisterAction>(sym);
  reg("authbypass_idle_watcher_start", CI_CMD_CHILD_START, nullptr, child_start_action);
  reg("authbypass_idle_watcher_stop", CI_CMD_CHILD_STOP, nullptr, child_stop_action);
  return true;
}

// ---------------------------------------------------------------------------------------
// Wire helpers.

using authbypass::icap::status_of;
using authbypass::icap::trim;

// The value of a header (first occurrence), trimmed; nullopt when absent.
std::optional<std::string> header(ci_headers_list_t* h, const char* name) {
  if (!h) return std::nullopt;
  const char* v = ci_headers_value(h, name);
  if (!v) return std::nullopt;
  return std::string(trim(v));
}

std::string first_line(ci_headers_list_t* h) {
  if (!h) return {};
  std::size_t n = 0;
  const char* l = ci_headers_first_line2(h, &n);
  if (!l) return {};
  std::string_view s(l, n);
  std::size_t eol = s.find_first_of("\r\n");
  if (eol != std::string_view::npos) s = s.substr(0, eol);
  return std::string(s);
}

// ---------------------------------------------------------------------------------------
// One ICAP transaction: the engine's Transaction decides; the adapter holds the body.

enum class Phase : std::uint8_t {
  kHold,       // buffering the body, nothing sent
  kStream,     // streaming the origin's response, holding back the tail
  kRelease,    // verdict genuine: send everything that is left
  kBlockPage,  // sending the 403 page; input is read and dropped
  kDone,       // 204 answered, or aborted
  kPass,       // Action::kModify: the body goes on as it arrives
};

struct Txn {
  std::shared_ptr<State> state;
  Transaction tx;
  Phase phase = Phase::kHold;
  bool edited = false;  // apply_edits() ran

  // Body bytes not yet sent: buf[off..].
  std::string buf;
  std::size_t off = 0;
  std::uint64_t seen = 0;  // body bytes received from Squid

  std::string page;  // the 403 page
  std::size_t page_off = 0;

  std::size_t buffered() const { return buf.size() - off; }

  void append(const char* p, std::size_t n) {
    if (off > 0 && off >= buf.size() / 2) {
      buf.erase(0, off);
      off = 0;
    }
    buf.append(p, n);
  }

  std::size_t take(char* out, std::size_t max) {
    std::size_t n = std::min(max, buffered());
    std::memcpy(out, buf.data() + off, n);
    off += n;
    if (off == buf.size()) {
      buf.clear();
      off = 0;
    }
    return n;
  }

  void drop_buffer() {
    std::string().swap(buf);
    off = 0;
  }

  // Writes the transaction's audit events in one go (one write(2)), once: the outcome's
  // event with the body bytes seen so far, and the decision-mode shadow events. Called
  // when the verdict is given, BEFORE c-icap delivers it (the 204, the edited request, the
  // released body's last chunk, the 403 page, the cut): a child that dies after the
  // delivery has already recorded what it let through. Called again when the transaction
  // ends, where it writes only what no verdict wrote (an incomplete transaction).
  void write_events() {
    if (!state) return;
    std::vector<AuditEvent> evs;
    if (auto counter = tx.end(seen, evs)) state->count(*counter);
    if (!evs.empty()) state->audit(evs.data(), evs.size());
  }
};

Txn* txn_of(ci_request_t* req) {
  return static_cast<Txn*>(ci_service_data(req));
}

// The header lines of an (unpacked) c-icap header list, the first line excluded.
template <typename F>
void for_each_header_line(ci_headers_list_t* h, F&& f) {
  if (!h || h->packed || !h->headers || !h->buf) return;
  const char* end = h->buf + h->bufused;
  for (int i = 1; i < h->used; ++i) {
    const char* p = h->headers[i];
    if (!p || p < h->buf || p >= end) continue;
    std::string_view line(p, strnlen(p, static_cast<std::size_t>(end - p)));
    if (std::size_t eol = line.find_first_of("\r\n"); eol != std::string_view::npos)
      line = line.substr(0, eol);
    if (!f(line)) return;
  }
}

bool has_mark_header(ci_headers_list_t* h) {
  bool found = false;
  for_each_header_line(h, [&](std::string_view line) {
    found = authbypass::icap::is_mark_header(line);
    return !found;
  });
  return found;
}

// Decision mode: strips every client-sent X-Authbypass line and adds the mark, once,
// before c-icap sends the edited request. False if an edit failed (the caller blocks:
// never a request that still carries a client's mark, never a half-edited one).
bool apply_edits(ci_request_t* req, Txn& t) {
  if (t.edited) return true;
  t.edited = true;
  ci_headers_list_t* h = ci_http_request_headers(req);
  if (!h) return false;
  if (t.tx.strip_marks()) {
    for (int round = 0; round < 256; ++round) {
      std::string name;
      for_each_header_line(h, [&](std::string_view line) {
        if (!authbypass::icap::is_mark_header(line)) return true;
        name = std::string(authbypass::icap::header_name(line));
        return false;
      });
      if (name.empty()) break;
      // c-icap matches the name case-insensitively, followed directly by ':'
      if (!ci_headers_remove(h, name.c_str())) return false;
    }
    if (has_mark_header(h)) return false;
  }
  const std::string& mark = t.tx.mark();
  if (!mark.empty() && !ci_http_request_add_header(req, mark.c_str())) return false;
  return true;
}

std::atomic<bool> g_warned_respmod_decide{false};
std::atomic<bool> g_warned_no_client_ip{false};

std::optional<std::string_view> view(const std::optional<std::string>& v) {
  return v ? std::optional<std::string_view>(*v) : std::nullopt;
}

// Reads the ICAP and HTTP headers into the engine's facts and lets it decide.
void classify(ci_request_t* req, Txn& t) {
  using authbypass::icap::FactsNeeded;
  TransactionFacts f;
  TransactionContext c;
  f.respmod = ci_req_type(req) == ICAP_RESPMOD;
  f.has_body = ci_req_hasbody(req) != 0;
  c.initialized = t.state != nullptr;
  if (t.state) {
    const Config& cfg = t.state->config();
    c.mode = cfg.service_mode;
    c.limits = cfg.limits;
    c.verify_mode = cfg.mode;
  }
  ci_headers_list_t* icap = req->request_header;
  f.authenticated = header(icap, "X-Authenticated-User").has_value();
  // Only what the transaction reads is read (and only the snapshots it uses loaded).
  const FactsNeeded need = Transaction::needs(c.initialized, c.mode, f.respmod, f.authenticated);
  if (need.policy) c.policy = t.state->policy();
  if (need.secret) c.secret = t.state->secret();
  if (!need.http_headers) {
    t.tx.classify(f, c);
    return;
  }
  const auto client_ip = header(icap, "X-Client-IP");
  ci_headers_list_t* hreq = ci_http_request_headers(req);
  ci_headers_list_t* hres = f.respmod ? ci_http_response_headers(req) : nullptr;
  ci_headers_list_t* body_headers = f.respmod ? hres : hreq;
  const std::string line = first_line(hreq);
  const auto host = header(hreq, "Host");
  const auto ua = header(hreq, "User-Agent");
  const auto ct = header(body_headers, "Content-Type");
  const auto cl = header(body_headers, "Content-Length");
  const auto ce = header(body_headers, "Content-Encoding");
  std::optional<std::string> mark_value;
  f.has_request = hreq != nullptr;
  f.request = {line, view(host), view(ua), view(client_ip)};
  if (hreq && need.client_sent_mark) f.client_sent_mark = has_mark_header(hreq);
  if (hreq && need.mark_value) {
    mark_value = header(hreq, "X-Authbypass");
    f.mark_value = view(mark_value);
  }
  f.has_response = hres != nullptr;
  if (hres) f.status = status_of(first_line(hres));
  f.content_type = view(ct);
  f.content_length = view(cl);
  f.content_encoding = view(ce);
  c.today = authbypass::today_utc();
  t.tx.classify(f, c);
}

void log_warning(authbypass::icap::Warning w) {
  using authbypass::icap::Warning;
  if (w == Warning::kRespmodInDecide && !g_warned_respmod_decide.exchange(true)) {
    log_msg(1,
            "RESPMOD request in authbypass.Mode decide: answered 204, not verified "
            "(use authbypass.Mode both to verify responses)");
  } else if (w == Warning::kNoClientIp && !g_warned_no_client_ip.exchange(true)) {
    log_msg(1,
            "no X-Client-IP from Squid (icap_send_client_ip on): rules with src never "
            "bypass");
  }
}

std::string html_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// Replaces the HTTP message with a short 403 page (nothing has been sent yet).
void start_block_page(ci_request_t* req, Txn& t) {
  t.phase = Phase::kBlockPage;
  t.drop_buffer();
  t.page =
      "<!DOCTYPE html>\n<html><head><title>403 Forbidden</title></head><body>\n"
      "<h1>Forbidden</h1>\n<p>This request was allowed without proxy authentication "
      "(authbypass rule <code>" +
      html_escape(t.tx.rule_id().empty() ? "-" : t.tx.rule_id()) +
      (t.tx.respmod() ? "</code>), but what came back is not the certificate or revocation data "
                        "that rule allows."
                      : "</code>), but what it sends is not an OCSP request, the only request "
                        "body allowed without authentication.") +
      " The event is in the proxy's audit log.</p>\n</body></html>\n";
  t.page_off = 0;
  ci_http_response_create(req, 1, 1);
  ci_http_response_reset_headers(req);
  ci_http_response_add_header(req, "HTTP/1.1 403 Forbidden");
  ci_http_response_add_header(req, "Content-Type: text/html; charset=utf-8");
  std::string cl = "Content-Length: " + std::to_string(t.page.size());
  ci_http_response_add_header(req, cl.c_str());
  ci_http_response_add_header(req, "Cache-Control: no-store");
  ci_http_response_add_header(req, "X-Authbypass: blocked");
  ci_req_unlock_data(req);
  t.tx.block_page_sent();
  t.write_events();
}

// Decision mode: an edit of the request's headers failed. Never pass it on half-edited or
// still carrying a client's mark: a 403 page instead.
void edit_failed(ci_request_t* req, Txn& t) {
  log_msg(1, "could not edit the request headers of " + t.tx.url().substr(0, 200));
  t.tx.edit_failed();
  t.phase = Phase::kHold;
  start_block_page(req, t);
}

// Feeds body bytes to the checker and buffers them (unless the body is being dropped).
void consume(Txn& t, const char* p, std::size_t n) {
  t.seen += n;
  if (t.phase == Phase::kBlockPage || t.phase == Phase::kDone) return;
  if (RevocationCheck* check = t.tx.check(); check && !t.tx.rejected())
    check->feed(std::string_view(p, n));
  t.append(p, n);
}

// The body is bigger than the service may hold: send the headers and stream on.
void start_streaming(ci_request_t* req, Txn& t) {
  t.phase = Phase::kStream;
  ci_req_unlock_data(req);
}

// ---------------------------------------------------------------------------------------
// c-icap statistics (shown by c-icap's `info` service, group "Service authbypass"): the
// engine's counters, one c-icap entry each.

std::array<int, authbypass::icap::kCounterCount> g_stat_ids = [] {
  std::array<int, authbypass::icap::kCounterCount> ids{};
  ids.fill(-1);
  return ids;
}();

void register_stats() {
  static char group[] = "Service authbypass";
  for (std::size_t i = 0; i < g_stat_ids.size(); ++i) {
    std::string label =
        "authbypass " +
        std::string(authbypass::icap::counter_label(static_cast<authbypass::icap::Counter>(i)));
    g_stat_ids[i] = ci_stat_entry_register(label.data(), STAT_INT64_T, group);
  }
}

void count_stat(authbypass::icap::Counter c) {
  const int id = g_stat_ids[static_cast<std::size_t>(c)];
  if (id >= 0) ci_stat_uint64_inc(id, 1);
}

// ---------------------------------------------------------------------------------------
// c-icap callbacks.

extern "C" int svc_init_service(ci_service_xdata_t* srv_xdata, struct ci_server_conf*) {
  g_config = Config{};
  ci_service_set_preview(srv_xdata, kPreviewSize);
  ci_service_enable_204(srv_xdata);
  ci_service_set_transfer_preview(srv_xdata, "*");
  ci_service_set_xopts(srv_xdata, CI_XCLIENTIP | CI_XAUTHENTICATEDUSER);
  register_stats();
  return CI_OK;
}

extern "C" int svc_post_init_service(ci_service_xdata_t*, struct ci_server_conf*) {
  try {
    auto s = std::make_shared<State>(g_config);
    std::string err;
    if (!s->load_secret(&err)) {
      // c-icap marks the service failed and answers 500 for it: Squid never gets a mark
      // (bypass=0: an ICAP error; bypass=1: no adaptation, so authentication).
      log_msg(1, "NOT STARTED (authbypass.Mode " + std::string(mode_name(g_config.service_mode)) +
                     "): " + err +
                     ". The service answers every request with an ICAP error "
                     "until this is fixed and c-icap restarted.");
      return CI_ERROR;
    }
    s->start();
    g_state.store(std::move(s));
    if (!register_child_actions()) {
      log_msg(1,
              "c-icap's ci_command_register_action not found: no idle watcher, the "
              "policy file is looked at on transactions only");
    }
    log_msg(g_config.service_mode == ServiceMode::kVerify ? 2 : 1,
            std::string("ready (mode ") + mode_name(g_config.service_mode) + ", verify " +
                (g_config.mode == VerifyMode::kFull ? "full" : "preview") + ")");
    return CI_OK;
  } catch (const std::exception& e) {
    log_msg(1, std::string("initialization failed: ") + e.what());
    return CI_ERROR;
  }
}

extern "C" void svc_close_service() {
  idle_watcher().stop();  // before the module can be unloaded (a child: CHILD_STOP did it)
  if (auto s = g_state.load()) s->write_stats(true);
  g_state.store(nullptr);
}

extern "C" void* svc_init_request_data(ci_request_t* req) {
  int type = ci_req_type(req);
  if (type != ICAP_REQMOD && type != ICAP_RESPMOD) return nullptr;  // OPTIONS
  Txn* t = nullptr;
  try {
    t = new Txn;
    t->state = g_state.load();
    if (t->state) t->state->housekeeping();
    classify(req, *t);
    log_warning(t->tx.warning());
  } catch (const std::exception& e) {
    log_msg(1, std::string("internal error: ") + e.what());
    if (t) t->tx.block("internal error");
  }
  return t;
}

extern "C" void svc_release_request_data(void* data) {
  Txn* t = static_cast<Txn*>(data);
  if (!t) return;
  try {
    t->write_events();
  } catch (const std::exception& e) {
    log_msg(1, std::string("internal error writing the audit event: ") + e.what());
  }
  delete t;
}

extern "C" int svc_check_preview(char* data, int len, ci_request_t* req) {
  Txn* t = txn_of(req);
  if (!t) return CI_ERROR;  // c-icap answers 500: Squid (bypass=0) fails closed
  try {
    if (t->tx.action() == Action::kAllow) {
      t->phase = Phase::kDone;
      t->write_events();
      return CI_MOD_ALLOW204;
    }
    if (t->tx.action() == Action::kBlock) {
      start_block_page(req, *t);
      return CI_MOD_CONTINUE;
    }
    if (t->tx.action() == Action::kModify) {  // decision mode: the edited request goes on
      if (!apply_edits(req, *t)) {
        edit_failed(req, *t);
        return CI_MOD_CONTINUE;
      }
      ci_req_unlock_data(req);
      t->phase = Phase::kPass;
      if (data && len > 0) consume(*t, data, static_cast<std::size_t>(len));
      t->write_events();
      return CI_MOD_CONTINUE;
    }
    if (data && len > 0) consume(*t, data, static_cast<std::size_t>(len));
    const std::size_t preview = len > 0 ? static_cast<std::size_t>(len) : 0;
    switch (t->tx.preview_seen(preview, ci_req_hasalldata(req))) {
      case BodyVerdict::kRejected:
        start_block_page(req, *t);
        return CI_MOD_CONTINUE;
      case BodyVerdict::kGenuine:
        if (t->tx.decides()) {  // the marked request goes on, with the body it came with
          if (!apply_edits(req, *t)) {
            edit_failed(req, *t);
            return CI_MOD_CONTINUE;
          }
          ci_req_unlock_data(req);
          t->phase = Phase::kRelease;
          t->write_events();
          return CI_MOD_CONTINUE;
        }
        t->phase = Phase::kDone;
        t->drop_buffer();
        t->write_events();
        return CI_MOD_ALLOW204;
      case BodyVerdict::kMore:
        break;
    }
    // Full check (or a preview that did not identify the object): keep the data locked
    // and read on; service_io decides when to stream.
    return CI_MOD_CONTINUE;
  } catch (const std::exception& e) {
    log_msg(1, std::string("internal error: ") + e.what());
    return CI_ERROR;
  }
}

extern "C" int svc_end_of_data(ci_request_t* req) {
  Txn* t = txn_of(req);
  if (!t) return CI_ERROR;
  try {
    if (t->phase == Phase::kBlockPage) return CI_MOD_DONE;
    if (t->tx.action() == Action::kModify) {
      if (t->phase == Phase::kPass) t->phase = Phase::kRelease;  // send what is left
      return CI_MOD_DONE;
    }
    if (t->tx.action() != Action::kCheck || t->phase == Phase::kDone) return CI_MOD_DONE;
    if (t->tx.body_finished() == BodyVerdict::kGenuine) {
      if (t->phase == Phase::kHold && t->tx.decides()) {  // send the marked request and its body
        if (!apply_edits(req, *t)) {
          edit_failed(req, *t);
          return CI_MOD_DONE;
        }
        ci_req_unlock_data(req);
      } else if (t->phase == Phase::kHold) {
        if (ci_req_allow204(req) && !ci_req_sent_data(req)) {
          t->phase = Phase::kDone;
          t->drop_buffer();
          t->write_events();
          return CI_MOD_ALLOW204;
        }
        ci_req_unlock_data(req);
      }
      t->phase = Phase::kRelease;
      t->write_events();
      return CI_MOD_DONE;
    }
    if (t->phase == Phase::kHold) {
      start_block_page(req, *t);
      return CI_MOD_DONE;
    }
    // Late failure while streaming: close the ICAP connection without the last chunk.
    // Squid aborts the client's transfer; the held-back tail is never sent.
    t->tx.aborted(t->seen - t->buffered());
    t->phase = Phase::kDone;
    t->drop_buffer();
    t->write_events();
    return CI_ERROR;
  } catch (const std::exception& e) {
    log_msg(1, std::string("internal error: ") + e.what());
    return CI_ERROR;
  }
}

extern "C" int svc_io(char* wbuf, int* wlen, char* rbuf, int* rlen, int iseof, ci_request_t* req) {
  (void)iseof;
  Txn* t = txn_of(req);
  if (!t) return CI_ERROR;
  try {
    if (rbuf && rlen && *rlen > 0) {
      std::size_t n = static_cast<std::size_t>(*rlen);
      if (t->tx.action() == Action::kModify && t->phase == Phase::kPass) {
        // passed on unchanged; bounded while Squid is slow to read (back-pressure)
        std::size_t room = kMaxBuffered > t->buffered() ? kMaxBuffered - t->buffered() : 0;
        n = std::min(n, room);
        *rlen = static_cast<int>(n);
        consume(*t, rbuf, n);
      } else if (t->phase == Phase::kBlockPage || t->phase == Phase::kDone ||
                 t->tx.action() != Action::kCheck) {
        consume(*t, rbuf, n);  // dropped
      } else {
        std::size_t room = kMaxBuffered > t->buffered() ? kMaxBuffered - t->buffered() : 0;
        if (t->phase == Phase::kHold) room = n;  // bounded by kHoldLimit / the caps below
        n = std::min(n, room);
        *rlen = static_cast<int>(n);
        consume(*t, rbuf, n);
        if (t->tx.over_body_cap(t->buffered())) {
          // Belt and braces: an upload never grows past the OCSP cap here.
          t->phase = Phase::kHold;
          t->drop_buffer();
          start_block_page(req, *t);
        } else if (t->tx.rejected()) {
          t->tx.reject();
          if (t->phase == Phase::kHold) {
            start_block_page(req, *t);
          } else {
            t->tx.aborted(t->seen - t->buffered());
            t->phase = Phase::kDone;
            t->drop_buffer();
            t->write_events();
            return CI_ERROR;  // closes the ICAP connection: Squid aborts the transfer
          }
        } else if (t->phase == Phase::kHold && t->tx.respmod() && t->buffered() >= kHoldLimit) {
          start_streaming(req, *t);
        }
      }
    }
    if (wbuf && wlen) {
      int max = *wlen;
      int out = 0;
      switch (t->phase) {
        case Phase::kBlockPage: {
          std::size_t n =
              std::min<std::size_t>(static_cast<std::size_t>(max), t->page.size() - t->page_off);
          std::memcpy(wbuf, t->page.data() + t->page_off, n);
          t->page_off += n;
          out = n > 0 ? static_cast<int>(n) : CI_EOF;
          break;
        }
        case Phase::kStream: {
          std::size_t avail = t->buffered() > kTail ? t->buffered() - kTail : 0;
          out = static_cast<int>(t->take(wbuf, std::min<std::size_t>(avail, max)));
          break;
        }
        case Phase::kRelease: {
          std::size_t n = t->take(wbuf, static_cast<std::size_t>(max));
          out = n > 0 ? static_cast<int>(n) : CI_EOF;
          break;
        }
        case Phase::kPass:
          out = static_cast<int>(t->take(wbuf, static_cast<std::size_t>(max)));
          break;
        case Phase::kHold:
          out = 0;
          break;
        case Phase::kDone:
          out = CI_EOF;
          break;
      }
      *wlen = out;
    }
    return CI_OK;
  } catch (const std::exception& e) {
    log_msg(1, std::string("internal error: ") + e.what());
    return CI_ERROR;
  }
}

}  // namespace

extern "C" {

CI_MOD_DISABLE_FORCE_UNLOAD();

CI_DECLARE_MOD_DATA ci_service_module_t service = {
    "authbypass",
    "authbypass: checks what passes through the proxy-authentication bypass",
    ICAP_RESPMOD | ICAP_REQMOD,
    svc_init_service,
    svc_post_init_service,
    svc_close_service,
    svc_init_request_data,
    svc_release_request_data,
    svc_check_preview,
    svc_end_of_data,
    svc_io,
    g_conf_table,
    nullptr};

}  // extern "C"
