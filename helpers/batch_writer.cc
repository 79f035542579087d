#include "batch_writer.h"

#include <pthread.h>
#include <signal.h>

#include <cerrno>
#include <system_error>

namespace authbypass::helper {

BatchWriter::~BatchWriter() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

bool BatchWriter::start() {
  if (thread_.joinable()) return true;
  // The writer never takes SIGHUP: a blocked read() in the main thread must see it.
  sigset_t hup;
  sigset_t old;
  sigemptyset(&hup);
  sigaddset(&hup, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &hup, &old);
  try {
    thread_ = std::thread([this] { loop(); });
  } catch (const std::system_error&) {
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return thread_.joinable();
}

bool BatchWriter::busy() {
  std::lock_guard lock(mutex_);
  return job_;
}

bool BatchWriter::drain(Done* done) {
  if (!thread_.joinable()) return true;
  std::unique_lock lock(mutex_);
  cv_.wait(lock, [this] { return !job_; });
  *done = std::move(done_);
  done_ = Done{};
  return out_ok_;
}

void BatchWriter::hand_over(AuditBatch& audit, Answers& answers) {
  {
    std::lock_guard lock(mutex_);
    audit_.swap(audit);
    answers_.swap(answers);
    audit.clear();
    answers.clear();
    job_ = true;
  }
  cv_.notify_all();
}

BatchWriter::Done write_audit_batch(AuditLog& log, const AuditBatch& audit, Answers& answers,
                                    bool withdraw_unaudited, std::string_view why,
                                    std::string& text, std::string& request_json) {
  BatchWriter::Done done;
  done.had_batch = true;
  if (audit.empty()) return done;
  text.clear();
  audit.format(text, request_json);
  done.audit_ok = log.write(text);
  if (done.audit_ok) return done;
  done.audit_errno = errno;
  if (withdraw_unaudited) answers.withdraw_bypasses(why, done.withdrawn);
  return done;
}

void BatchWriter::loop() {
  std::unique_lock lock(mutex_);
  for (;;) {
    cv_.wait(lock, [this] { return job_ || stop_; });
    if (!job_) return;
    lock.unlock();
    // The batch's buffers and log_ are this thread's until job_ is cleared.
    Done done = write_audit_batch(log_, audit_, answers_, withdraw_, why_, text_, request_json_);
    const bool out_ok = write_all(1, answers_.text());
    audit_.clear();
    answers_.clear();
    lock.lock();
    done_ = std::move(done);
    out_ok_ = out_ok_ && out_ok;
    job_ = false;
    cv_.notify_all();
  }
}

}  // namespace authbypass::helper
