#include "authbypass/output_file.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <utility>

#include "authbypass/audit.h"
#include "authbypass/file_identity.h"
#include "file_util.h"

namespace authbypass {
namespace {

constexpr int kMaxLinks = 40;
constexpr mode_t kPermissionBits = 0777;
constexpr std::size_t kMaxBaseInTempName = 200;  // NAME_MAX is 255: room for ".", ".XXXXXX"

OutputFileResult failure(OutputFileError e, std::string message) {
  return {e, std::move(message)};
}

OutputFileResult system_failure(const std::string& what) {
  const int err = errno;
  return {OutputFileError::io, what + ": " + std::strerror(err)};
}

using files::Fd;

struct DirAndName {
  std::string dir;
  std::string name;
};

DirAndName split_path(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return {".", path};
  if (slash == 0) return {"/", path.substr(1)};
  return {path.substr(0, slash), path.substr(slash + 1)};
}

std::string kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "a special file";
}

// The kernel's fs.protected_symlinks rule: a link in a sticky, world-writable directory is
// followed only when it belongs to the follower or to the directory's owner.
bool may_follow(const std::string& link, const struct stat& link_stat) {
  struct stat dir {};
  if (::stat(split_path(link).dir.c_str(), &dir) != 0) return false;
  const bool shared = (dir.st_mode & S_ISVTX) != 0 && (dir.st_mode & S_IWOTH) != 0;
  return !shared || link_stat.st_uid == ::geteuid() || link_stat.st_uid == dir.st_uid;
}

// The kernel's fs.protected_regular/protected_fifos rule, whatever the sysctls say: a file
// in a sticky directory that others may write to (/tmp) that belongs to neither the caller
// nor the directory's owner was put there by someone else. Replacing it would hand the new
// file (a secret) to that user; writing into its FIFO would hand over the content.
OutputFileResult foreign_in_shared_dir(const std::string& path, const std::string& name,
                                       const struct stat& st) {
  const std::string dir = split_path(name).dir;
  struct stat d {};
  if (::stat(dir.c_str(), &d) != 0) return system_failure("cannot look at " + dir);
  const bool shared = (d.st_mode & S_ISVTX) != 0 && (d.st_mode & (S_IWOTH | S_IWGRP)) != 0;
  if (!shared || st.st_uid == ::geteuid() || st.st_uid == d.st_uid) return {};
  return failure(OutputFileError::refused,
                 path + ": " + name + " is in the shared sticky directory " + dir +
                     " and belongs to user " + std::to_string(st.st_uid) +
                     ", neither you nor the directory's owner: nothing written (someone else "
                     "may have put it there; remove it or give another name)");
}

// Follows `path` through symbolic links to the name that is (or will be) the file.
OutputFileResult final_name(const std::string& path, std::string& name) {
  std::string p = path;
  for (int links = 0;; ++links) {
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) {
      if (errno != ENOENT) return system_failure("cannot write " + path + ": " + p);
      name = p;
      return {};
    }
    if (!S_ISLNK(st.st_mode)) {
      name = p;
      return {};
    }
    if (links == kMaxLinks)
      return failure(OutputFileError::io, path + ": more than " + std::to_string(kMaxLinks) +
                                              " symbolic links (a loop?): nothing written");
    if (!may_follow(p, st))
      return failure(OutputFileError::refused,
                     path + ": the symbolic link " + p +
                         " is in a shared sticky directory and belongs to neither you nor the "
                         "directory's owner: not followed, nothing written (give the file's own "
                         "name)");
    std::string target(std::size_t{4096}, '\0');
    const ssize_t n = ::readlink(p.c_str(), target.data(), target.size());
    if (n < 0) return system_failure("cannot read the symbolic link " + p);
    if (n == 0 || static_cast<std::size_t>(n) >= target.size())
      return failure(OutputFileError::io, "cannot follow the symbolic link " + p);
    target.resize(static_cast<std::size_t>(n));
    p = target.front() == '/' ? target : split_path(p).dir + "/" + target;
  }
}

// A fresh name for the temporary file beside `name`: ".NAME.XXXXXX".
std::string temp_name(const DirAndName& where, unsigned attempt) {
  static constexpr char kAlphabet[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  unsigned char random[6];
  if (::getrandom(random, sizeof random, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof random)) {
    auto seed = static_cast<unsigned long>(::getpid()) * 2654435761UL ^
                static_cast<unsigned long>(std::time(nullptr)) ^ (attempt * 40503UL);
    for (auto& r : random) {
      r = static_cast<unsigned char>(seed);
      seed = seed * 6364136223846793005UL + 1442695040888963407UL;
      r ^= static_cast<unsigned char>(seed >> 33);
    }
  }
  std::string t = where.dir + "/." + where.name.substr(0, kMaxBaseInTempName) + ".";
  for (unsigned char r : random) t += kAlphabet[r % (sizeof kAlphabet - 1)];
  return t;
}

// The temporary file: removed unless it was renamed into place.
class TempFile {
 public:
  TempFile() = default;
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  bool create(const DirAndName& where, mode_t mode, int& fd) {
    for (unsigned attempt = 0; attempt < 100; ++attempt) {
      std::string t = temp_name(where, attempt);
      fd = ::open(t.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
      if (fd >= 0) {
        path_ = std::move(t);
        return true;
      }
      if (errno != EEXIST) return false;
    }
    errno = EEXIST;
    return false;
  }
  const std::string& path() const { return path_; }
  void committed() { path_.clear(); }

 private:
  std::string path_;
};

bool sync_directory(const std::string& dir) {
  Fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  return d.ok() && ::fsync(d.get()) == 0 && d.close();
}

// A regular file (`old`) or none (`old` null) at `path`: a temporary file renamed over it.
OutputFileResult replace_file(const std::string& path, const struct stat* old,
                              std::string_view content, const OutputFileOptions& o) {
  std::string name;
  if (auto r = final_name(path, name); !r) return r;
  struct stat now {};
  const bool exists = ::lstat(name.c_str(), &now) == 0;
  if (old && (!exists || !S_ISREG(now.st_mode) || !same_file(now, *old)))
    return failure(OutputFileError::io,
                   path +
                       " changed while it was being written, or leads to a file that has no "
                       "name of its own (write to - for standard output): nothing written");
  if (!old && exists)
    return failure(OutputFileError::io,
                   path + " appeared while it was being written: nothing written; try again");
  if (old) {
    if (auto r = foreign_in_shared_dir(path, name, now); !r) return r;
  }
  const DirAndName where = split_path(name);
  if (where.name.empty() || where.name == "." || where.name == "..")
    return failure(OutputFileError::refused, path + ": not a file name: nothing written");

  const uid_t me = ::geteuid();
  if (old && me != 0 && old->st_uid != me)
    return failure(OutputFileError::refused,
                   name + " belongs to user " + std::to_string(old->st_uid) +
                       ": not replaced, since the new file could not keep that owner (run as "
                       "that user or as root)");
  std::optional<mode_t> mode = o.force_mode;
  if (!mode && old) mode = old->st_mode & kPermissionBits;

  TempFile temp;
  int raw_fd = -1;
  // Until its final mode is set, a file that takes over one (or a forced mode) is 0600.
  if (!temp.create(where, mode ? 0600 : o.create_mode, raw_fd))
    return system_failure("cannot create a temporary file in " + where.dir + " to write " + path);
  Fd fd(raw_fd);
  if (!write_all(fd.get(), content)) return system_failure("cannot write " + temp.path());
  struct stat mine {};
  if (::fstat(fd.get(), &mine) != 0) return system_failure("cannot look at " + temp.path());
  const uid_t owner = old && me == 0 ? old->st_uid : mine.st_uid;
  gid_t group_id = mine.st_gid;
  if (o.group) {
    group_id = *o.group;
  } else if (old) {
    group_id = old->st_gid;
  }
  if ((owner != mine.st_uid || group_id != mine.st_gid) && ::fchown(fd.get(), owner, group_id) != 0)
    return system_failure("cannot give " + temp.path() + " the owner " + std::to_string(owner) +
                          " and group " + std::to_string(group_id) + " (" + name +
                          " not replaced)");
  if (mode && ::fchmod(fd.get(), *mode) != 0)
    return system_failure("cannot set the mode of " + temp.path());
  if (o.durable && ::fsync(fd.get()) != 0) return system_failure("cannot sync " + temp.path());
  if (!fd.close()) return system_failure("cannot write " + temp.path());

  int renamed = 0;
  if (!old && !o.replace) {
    renamed = ::renameat2(AT_FDCWD, temp.path().c_str(), AT_FDCWD, name.c_str(), RENAME_NOREPLACE);
    if (renamed != 0 && errno == EEXIST)
      return failure(OutputFileError::exists, path + " exists: not replaced");
  } else {
    renamed = ::rename(temp.path().c_str(), name.c_str());
  }
  if (renamed != 0) return system_failure("cannot rename " + temp.path() + " to " + name);
  temp.committed();
  if (o.durable && !sync_directory(where.dir))
    return system_failure(name + " is written, but its directory " + where.dir +
                          " could not be synced");
  return {};
}

// A character device or a FIFO (`st`, as stat() saw it through any links): written where
// it is, nothing created or truncated. Links are checked as for regular files, then the
// kernel follows them (magic links such as /dev/stdout's included); what was opened must be
// what stat() saw.
OutputFileResult write_in_place(const std::string& path, const struct stat& st,
                                std::string_view content) {
  std::string name;  // the last name on the way (for /proc's magic links, not a path)
  if (auto r = final_name(path, name); !r) return r;
  // O_NONBLOCK: a FIFO without a reader fails (ENXIO) instead of waiting, and a terminal
  // line does not wait for its carrier; cleared before writing.
  Fd fd(::open(path.c_str(), O_WRONLY | O_NOCTTY | O_CLOEXEC | O_NONBLOCK));
  if (!fd.ok()) {
    if (errno == ENXIO && S_ISFIFO(st.st_mode))
      return failure(OutputFileError::io,
                     path + " is a FIFO with no reader: nothing written (start the reader first)");
    return system_failure("cannot open " + path);
  }
  struct stat opened {};
  if (::fstat(fd.get(), &opened) != 0) return system_failure("cannot look at " + path);
  if ((!S_ISCHR(opened.st_mode) && !S_ISFIFO(opened.st_mode)) || !same_file(opened, st))
    return failure(OutputFileError::io,
                   path + " changed while it was being opened: nothing written; try again");
  if (auto r = foreign_in_shared_dir(path, name, opened); !r) return r;
  const int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK) != 0)
    return system_failure("cannot set up " + path);
  if (!write_all(fd.get(), content)) return system_failure("cannot write " + path);
  if (!fd.close()) return system_failure("cannot write " + path);
  return {};
}

}  // namespace

OutputFileResult write_output_file(const std::string& path, std::string_view content,
                                   const OutputFileOptions& options) {
  if (path.empty()) return failure(OutputFileError::refused, "no output file name given");
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) return system_failure("cannot write " + path);
    return replace_file(path, nullptr, content, options);  // new, or a dangling link
  }
  if (S_ISREG(st.st_mode)) {
    if (!options.replace) return failure(OutputFileError::exists, path + " exists: not replaced");
    return replace_file(path, &st, content, options);
  }
  if (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)) return write_in_place(path, st, content);
  std::string advice = S_ISDIR(st.st_mode)
                           ? "give the name of a file (inside it, or elsewhere)"
                           : "authbypass writes to regular files, to character devices such as "
                             "/dev/null and to FIFOs";
  return failure(OutputFileError::refused,
                 path + " is " + kind_of(st.st_mode) + ": nothing written (" + advice + ")");
}

}  // namespace authbypass
