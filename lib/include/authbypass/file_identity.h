// Telling whether a file changed or was replaced: the one test behind policy reloads,
// shared-secret and audit-log rotation, and output files written over an existing one.
#pragma once

#include <sys/stat.h>

#include <string>

namespace authbypass {

// What tells a file apart from another, or from its earlier self. The same device and
// inode is the same file (same_file); any other change to it (size, mtime, ctime: an edit,
// a chmod, a truncation) also shows in operator==. A file that stat(2) cannot see has
// exists == false and zeros elsewhere.
struct FileIdentity {
  bool exists = false;
  unsigned long long dev = 0, ino = 0, size = 0;
  long long mtime_ns = 0, ctime_ns = 0;

  bool operator==(const FileIdentity&) const = default;
  // True iff both exist and are the same file (device and inode), edited or not.
  bool same_file(const FileIdentity& other) const {
    return exists && other.exists && dev == other.dev && ino == other.ino;
  }
};

FileIdentity identity_of(const struct stat& st);
// stat(2) of `path` (symbolic links followed).
FileIdentity file_identity(const std::string& path);

// True iff `a` and `b` describe the same file (device and inode).
inline bool same_file(const struct stat& a, const struct stat& b) {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

}  // namespace authbypass
