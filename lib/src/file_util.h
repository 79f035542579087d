// Reading a whole input file (a policy, an endpoint list): the one bounded reader of the
// engine and the tools. POSIX only: no zlib, no JSON. File identity (changed, replaced) is
// authbypass/file_identity.h.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <cstddef>
#include <string>
#include <utility>

namespace authbypass::files {

// Owns a file descriptor: closed when it goes out of scope (or by close()).
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  bool ok() const { return fd_ >= 0; }
  // Closes now and reports close()'s result (a delayed write error shows here).
  bool close() {
    const int fd = std::exchange(fd_, -1);
    return ::close(fd) == 0;
  }

 private:
  int fd_;
};

struct ReadOptions {
  // A file holding more is refused (kTooLarge); at most max_bytes + 1 bytes are read, so
  // memory and time follow the file's size, never a file that grows while it is read.
  std::size_t max_bytes = 0;
  // False also reads FIFOs and character devices (/dev/stdin); directories never.
  bool regular_only = true;
};

enum class ReadError { kNone, kOpen, kNotRegular, kTooLarge, kRead };

struct ReadResult {
  ReadError error = ReadError::kNone;
  int errnum = 0;   // errno of kOpen and kRead
  mode_t mode = 0;  // st_mode of the opened file (0 when it could not be opened)
  explicit operator bool() const { return error == ReadError::kNone; }
  // Why, in words: strerror for kOpen/kRead, "not a regular file", "larger than N bytes".
  std::string reason(const ReadOptions& options) const;
};

// Reads the whole file at `path` into `out` (replaced). Opening never blocks (a FIFO
// without a writer, a terminal) and never makes a terminal the controlling one.
ReadResult read_file(const std::string& path, const ReadOptions& options, std::string& out);

}  // namespace authbypass::files
