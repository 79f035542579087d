// The Squid helper's writer thread: writes a batch's audit lines, then its answers, while
// the main thread reads and decides the next batch.
#pragma once

#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "authbypass/audit.h"
#include "authbypass/audit_batch.h"
#include "helper_answers.h"

namespace authbypass::helper {

// One batch at a time: hand_over() gives it the batch's audit events and answers; the
// thread formats and writes the audit lines to `log`, then (with `withdraw_unaudited`,
// after the audit write failed, every OK answer becoming ERR `why`) the answers to fd 1,
// so no answer precedes its audit lines. `log` is the thread's while a batch is in hand:
// the owner touches it only after drain(). The thread blocks SIGHUP.
class BatchWriter {
 public:
  // What the last batch's write did (see drain()).
  struct Done {
    bool had_batch = false;  // false: nothing was written since the last drain()
    bool audit_ok = true;
    int audit_errno = 0;
    std::vector<WithdrawnBypass> withdrawn;
  };

  BatchWriter(AuditLog& log, bool withdraw_unaudited, std::string_view why)
      : log_(log), withdraw_(withdraw_unaudited), why_(why) {}
  ~BatchWriter();  // after the batch in hand, if any
  BatchWriter(const BatchWriter&) = delete;
  BatchWriter& operator=(const BatchWriter&) = delete;

  // Starts the thread if it is not running; false when it cannot be started.
  bool start();
  bool running() const { return thread_.joinable(); }
  // True while the thread still has a batch in hand.
  bool busy();
  // Waits until the batch in hand (if any) is written; *done says what that write did.
  // False when some batch's answers could not be written to stdout.
  bool drain(Done* done);
  // Takes `audit` and `answers` (leaving them empty) as the batch in hand. Call drain()
  // first.
  void hand_over(AuditBatch& audit, Answers& answers);

 private:
  void loop();

  AuditLog& log_;
  const bool withdraw_;
  const std::string_view why_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool job_ = false, stop_ = false, out_ok_ = true;
  Done done_;
  AuditBatch audit_;
  Answers answers_;
  std::string text_, request_json_;
};

// Writes one batch's audit lines: formats `audit` into `text` (`request_json` is scratch)
// and writes them to `log`; when that fails and `withdraw_unaudited`, every OK answer in
// `answers` becomes ERR `why` (listed in the result). An empty `audit` writes nothing and
// succeeds. The answers themselves are not written.
BatchWriter::Done write_audit_batch(AuditLog& log, const AuditBatch& audit, Answers& answers,
                                    bool withdraw_unaudited, std::string_view why,
                                    std::string& text, std::string& request_json);

}  // namespace authbypass::helper
