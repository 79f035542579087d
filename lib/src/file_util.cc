#include "file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "authbypass/file_identity.h"

namespace authbypass::files {

std::string ReadResult::reason(const ReadOptions& options) const {
  switch (error) {
    case ReadError::kNone:
      return {};
    case ReadError::kOpen:
    case ReadError::kRead:
      return std::strerror(errnum);
    case ReadError::kNotRegular:
      return "not a regular file";
    case ReadError::kTooLarge:
      return "larger than " + std::to_string(options.max_bytes) + " bytes";
  }
  return {};
}

ReadResult read_file(const std::string& path, const ReadOptions& options, std::string& out) {
  ReadResult r;
  out.clear();
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (fd.get() < 0) {
    r.error = ReadError::kOpen;
    r.errnum = errno;
    return r;
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    r.error = ReadError::kOpen;
    r.errnum = errno;
    return r;
  }
  r.mode = st.st_mode;
  if (S_ISDIR(st.st_mode) || (options.regular_only && !S_ISREG(st.st_mode))) {
    r.error = ReadError::kNotRegular;
    return r;
  }
  if (S_ISREG(st.st_mode) && static_cast<std::size_t>(st.st_size) > options.max_bytes) {
    r.error = ReadError::kTooLarge;
    return r;
  }
  // Reads block from here on (a FIFO waits for its writer's data, as a shell read would).
  const int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK) != 0) {
    r.error = ReadError::kRead;
    r.errnum = errno;
    return r;
  }
  char chunk[64 * 1024];
  while (out.size() <= options.max_bytes) {
    const std::size_t want = std::min(sizeof chunk, options.max_bytes + 1 - out.size());
    const ssize_t n = ::read(fd.get(), chunk, want);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      r.error = ReadError::kRead;
      r.errnum = errno;
      out.clear();
      return r;
    }
    if (n == 0) return r;
    out.append(chunk, static_cast<std::size_t>(n));
  }
  r.error = ReadError::kTooLarge;  // grew past the limit while it was read
  out.clear();
  return r;
}

}  // namespace authbypass::files

namespace authbypass {

namespace {

long long nanoseconds(const struct timespec& t) {
  return static_cast<long long>(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
}

}  // namespace

FileIdentity identity_of(const struct stat& st) {
  FileIdentity id;
  id.exists = true;
  id.dev = st.st_dev;
  id.ino = st.st_ino;
  id.size = static_cast<unsigned long long>(st.st_size);
  id.mtime_ns = nanoseconds(st.st_mtim);
  id.ctime_ns = nanoseconds(st.st_ctim);
  return id;
}

FileIdentity file_identity(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  return identity_of(st);
}

}  // namespace authbypass
