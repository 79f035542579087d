// ext_authbypass_acl: Squid external ACL helper (docs/architecture.md "Helper"). Reads request
// lines on stdin, asks the engine, answers OK/ERR on stdout, writes audit events. Never exits on
// its own except at end of input: a helper that exits makes Squid die.
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
#include "authbypass/audit_batch.h"
#include "authbypass/policy.h"
#include "authbypass/policy_source.h"
#include "authbypass/request.h"
#include "authbypass/squid_helper.h"
#include "batch_writer.h"
#include "helper_answers.h"
#include "helper_stats.h"
#include "line_framer.h"

namespace {

using authbypass::AuditEvent;
using authbypass::AuditLog;
using authbypass::Decision;
using authbypass::HelperCounter;
using authbypass::Policy;
using authbypass::PolicySource;
using authbypass::Request;
using authbypass::write_all;
namespace squid = authbypass::squid;
namespace helper = authbypass::helper;

constexpr std::string_view kUnaudited = "audit log unwritable (--require-audit)";

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

class Helper {
 public:
  explicit Helper(const Options& o)
      : opts_(o),
        source_(o.policy, std::chrono::milliseconds(o.check_interval_ms)),
        parser_(o.format, o.channel),
        stats_(o.stats_file),
        writer_(audit_log_, o.require_audit, kUnaudited) {
    out_.reserve(kReadChunk);
    audit_.reserve(kReadChunk);
    framer_.reserve(4096);
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
        ++stats_.counters[HelperCounter::kAuditErrors];
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
      framer_.consume(
          std::string_view(buf, static_cast<std::size_t>(n)),
          [this](std::string_view line) { answer(line); },
          [this](std::string_view prefix) { too_long(prefix); });
      if (!end_batch()) return 1;
      maybe_write_stats(false);
    }
    if (!drain()) return 1;
    framer_.finish([this](std::string_view line) { answer(line); },
                   [this](std::string_view prefix) { too_long(prefix); });
    flush_audit();  // and the answers held back, if any
    write_all(1, out_.text());
    maybe_write_stats(true);
    return 0;
  }

 private:
  // Blocks until stdin is readable. While idle it keeps looking at the policy file every
  // check interval (so a valid edit is loaded even when no request comes, and a later
  // broken edit cannot leave an older policy in force), and writes waiting counters.
  void wait_for_input() {
    if (!startup_error_.empty()) return;
    pollfd p{0, POLLIN, 0};
    const long interval = std::max(10L, opts_.check_interval_ms);
    for (;;) {
      int timeout = static_cast<int>(interval);
      if (const auto due = stats_.write_due_in())
        timeout = static_cast<int>(std::min<long long>(due->count(), interval));
      int r = ::poll(&p, 1, timeout);
      if (r != 0) return;    // input, EOF, error or a signal: let read() tell
      if (!drain()) return;  // stdout is gone: the next write says so again
      housekeeping();
      flush_audit();
      maybe_write_stats(false);
    }
  }

  // Writes the counters when a write is due (always when `force`); see helper::Stats.
  void maybe_write_stats(bool force) {
    stats_.write_if_due(force, policy_, source_.current().get(), source_.path(), say);
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
    const bool loaded = o.kind == Kind::kLoaded;
    ++stats_.counters[loaded ? HelperCounter::kReloads : HelperCounter::kReloadsRejected];
    for (const std::string& m :
         source_.messages(o, "no valid policy: answering ERR to every request"))
      say(m);
    std::string why;
    append_audit(authbypass::policy_event("helper", loaded, source_.path(),
                                          p ? std::string_view(p->sha256()) : "", o.errors, why));
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
    const auto done = helper::write_audit_batch(audit_log_, audit_, out_, opts_.require_audit,
                                                kUnaudited, audit_text_, request_json_);
    audit_written(done.audit_ok, done.audit_errno, done.withdrawn);
    audit_.clear();
  }

  // The bookkeeping of one audit write (here or on the writer thread): said once on
  // stderr, counted, and the refused answers taken off the bypass counters.
  void audit_written(bool ok, int err, const std::vector<helper::WithdrawnBypass>& refused) {
    if (!ok) {
      ++stats_.counters[HelperCounter::kAuditErrors];
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
    for (const helper::WithdrawnBypass& w : refused) stats_.withdrawn(w);
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
    if (audit_.events() >= kOffloadAuditEvents && start_writer()) {
      if (out_.size() < kMaxHeldBytes && audit_.bytes() < kMaxHeldAuditBytes) {
        if (audit_.events() < kHandOffEvents) return true;
        if (writer_.busy()) return true;  // the writer is still at the last one
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
    if (audit_.events() >= kOffloadAuditEvents && writer_.running()) return hand_over();
    return write_inline();
  }

  // Writes the audit lines and answers here, after the writer thread's last job.
  bool write_inline() {
    if (!drain()) return false;
    flush_audit();
    const bool ok = write_all(1, out_.text());
    out_.clear();
    return ok;
  }

  // Gives the held audit records and answers to the writer thread (after its last batch).
  bool hand_over() {
    if (!drain()) return false;
    writer_.hand_over(audit_, out_);
    return true;
  }

  // Waits for the writer thread's batch, if any, and does its bookkeeping. False when
  // that batch's answers could not be written to stdout.
  bool drain() {
    helper::BatchWriter::Done done;
    const bool out_ok = writer_.drain(&done);
    if (done.had_batch) audit_written(done.audit_ok, done.audit_errno, done.withdrawn);
    return out_ok;
  }

  bool start_writer() {
    if (writer_.running()) return true;
    if (writer_.start()) return true;
    if (!writer_warned_) say("no writer thread: writing batches inline");
    writer_warned_ = true;
    return false;
  }

  // An over-long line (see LineFramer), answered ERR.
  void too_long(std::string_view prefix) {
    out_.error(parser_.channel_of_prefix(prefix), "line too long");
    if (opts_.debug) say("line too long (over " + std::to_string(squid::kMaxLineBytes) + " bytes)");
  }

  void answer(std::string_view line) {
    const squid::ParsedLine* parsed = nullptr;
    try {
      parsed = &parser_.parse(line);
      if (!parsed->error.empty()) {
        out_.error(parsed->channel, parsed->error);
        ++stats_.counters[HelperCounter::kBadLines];
        if (opts_.debug) say("bad line: " + std::string(parsed->error));
        return;
      }
      if (!startup_error_.empty()) {
        out_.error(parsed->channel, "helper misconfigured, see cache.log");
        return;
      }
      if (!policy_) {
        out_.error(parsed->channel, "no valid policy, see cache.log");
        return;
      }
      if (!request_.parse(parsed->input)) {
        out_.error(parsed->channel, request_.error());
        ++stats_.counters[HelperCounter::kMalformedRequests];
        if (opts_.debug) say("malformed request: " + std::string(request_.error()));
        return;
      }
      Decision d = policy_->decide(request_, today_, eval_);
      if (d.bypass() && opts_.require_audit && audit_failed_ && drain() &&
          !audit_log_.reopen(nullptr)) {
        out_.error(parsed->channel, kUnaudited);
        ++stats_.counters[HelperCounter::kRefusedUnaudited];
        stats_.count(Decision{}, policy_);
        return;
      }
      out_.decision(parsed->channel, d, policy_->generation());
      stats_.count(d, policy_);
      if (audit_log_.enabled() && (d.bypass() || d.shadow_count > 0)) {
        // src as Squid sent it (Request::parse checked it is an IP address); escaping and
        // JSON are left to AuditBatch::format() (on the writer thread for a big batch)
        audit_.add_decision(
            rule_json_, *policy_, d,
            {parsed->input.src, request_.method, request_.url, request_.host, request_.user_agent},
            batch_time_);
      }
    } catch (const std::exception& e) {
      out_.broken(parsed ? parsed->channel : std::string_view(), "internal error");
      ++stats_.counters[HelperCounter::kInternalErrors];
      say(std::string("internal error: ") + e.what());
    }
  }

  const Options& opts_;
  PolicySource source_;
  squid::LineParser parser_;
  AuditLog audit_log_;
  authbypass::AuditBatch audit_;  // the batch's audit events, not yet formatted
  authbypass::RuleEventJson rule_json_{"helper"};
  std::string audit_text_, request_json_;  // flush_audit()'s buffers
  std::string startup_error_;
  std::shared_ptr<const Policy> policy_;
  authbypass::Date today_{};
  Request request_;
  authbypass::EvalContext eval_;  // the process's regex memos (one thread decides)
  helper::LineFramer framer_;
  helper::Answers out_;  // the batch's answers
  helper::Stats stats_;
  bool audit_warned_ = false;
  bool audit_failed_ = false;
  std::chrono::system_clock::time_point batch_time_{};  // `ts` of the batch's audit events
  // The writer thread (end_batch): one batch at a time.
  static constexpr std::size_t kOffloadAuditEvents = 32;
  static constexpr std::size_t kHandOffEvents = 1024;                        // see end_batch()
  static constexpr std::size_t kMaxHeldBytes = std::size_t{256} << 10;       // answers held
  static constexpr std::size_t kMaxHeldAuditBytes = std::size_t{256} << 10;  // records held
  helper::BatchWriter writer_;  // last: stopped before the buffers and the log it uses
  bool writer_warned_ = false;
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
