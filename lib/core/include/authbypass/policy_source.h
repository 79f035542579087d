// A policy file kept in force: loaded at start, reloaded when it changes or on demand.
// The policy in force is an immutable snapshot swapped atomically; a file that fails to
// load never replaces the last good one (docs/architecture.md "Helper", "ICAP service").
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "authbypass/file_identity.h"
#include "authbypass/policy.h"

namespace authbypass {

class PolicySource {
 public:
  // What a (re)load attempt did.
  struct Outcome {
    enum class Kind { kUnchanged, kLoaded, kRejected } kind = Kind::kUnchanged;
    std::vector<std::string> errors;  // kRejected: why ("file:line:column: message")
  };

  // Nothing is loaded until reload() or check() is called.
  explicit PolicySource(std::string path,
                        std::chrono::milliseconds check_interval = std::chrono::seconds(1));

  // Loads the file now, whatever its state.
  Outcome reload();
  // Looks at the file and the files it includes (one stat each) if `check_interval` has
  // passed since the last look, and reloads if any identity, size or times changed. A file that
  // stays broken is reported once, not at every look.
  Outcome check(std::chrono::steady_clock::time_point now);

  // The policy in force; nullptr until a load succeeded. Thread-safe.
  std::shared_ptr<const Policy> current() const { return current_.load(); }
  const std::string& path() const { return path_; }

  // What an operator is told of `o` (the Outcome of the latest reload() or check()):
  // "policy FILE loaded (N rules, sha256 PREFIX)", or each error followed by what stays in
  // force (`without_policy` when no policy is). Empty for kUnchanged.
  std::vector<std::string> messages(const Outcome& o, std::string_view without_policy) const;

 private:
  std::vector<FileIdentity> stamps() const;  // of path_ and of the last good policy's other files

  std::string path_;
  std::chrono::milliseconds interval_;
  std::chrono::steady_clock::time_point last_check_{};
  std::vector<FileIdentity> last_stamps_;
  std::atomic<std::shared_ptr<const Policy>> current_;
};

}  // namespace authbypass
