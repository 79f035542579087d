// Writing the files the tools produce: policies, firewall lists, secrets, counters.
//
// write_output_file() is the only way authbypass writes an output file. What it does
// depends on what the name is when the call is made:
//
// - No file, or a regular file: the content goes to a new temporary file in the same
//   directory (".NAME.XXXXXX", created exclusively, never through a link), which is
//   flushed to disk (fsync), given its mode, owner and group, and renamed over NAME; then
//   the directory is flushed too. A reader sees the old content or the new, never a mix
//   and never a missing file. A replaced file keeps its permission bits (rwx for user,
//   group, others; set-id and sticky bits are dropped), its owner and its group; when
//   they cannot be kept (the caller is not root and the file belongs to someone else, or
//   to a group the caller is not in), the file is not replaced. Hard links to the old
//   file keep the old content; ACLs and extended attributes are not copied.
// - A symbolic link: followed (up to 40 links) to its final name, and that file is
//   written as above, in its own directory; the link stays as it is. A dangling link
//   creates its target. Like the kernel's fs.protected_symlinks, a link in a sticky,
//   world-writable directory (such as /tmp) is followed only when it belongs to the
//   caller or to the directory's owner; otherwise nothing is written.
// - A character device (/dev/null, a terminal) or a FIFO: opened for writing without
//   creating or truncating anything, and written in place. Its mode, owner and group are
//   never touched. A FIFO without a reader fails at once (nothing waits).
// - A directory, a block device, a socket: refused, nothing written.
//
// On failure the destination is untouched (except a FIFO or device that took part of the
// content) and no temporary file is left behind; the message names the file, says what
// happened and what to do.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

namespace authbypass {

struct OutputFileOptions {
  // Permission bits of a new regular file; the process umask applies (0666: the same as a
  // shell redirection).
  mode_t create_mode = 0666;
  // When set, the written regular file (new or replaced) gets exactly these bits, umask
  // not applied, whatever the old file had: for secrets (0640).
  std::optional<mode_t> force_mode;
  // When set, the written regular file (new or replaced) gets this group.
  std::optional<gid_t> group;
  // False: an existing regular file (or the file a link points to) is left alone and the
  // call fails with OutputFileError::exists. Devices and FIFOs are written either way.
  bool replace = true;
  // False skips both fsyncs (still atomic): for counters rewritten every second, where a
  // crash may lose the last version but a reader never sees half of one.
  bool durable = true;
};

enum class OutputFileError {
  none,
  exists,   // a regular file is there and `replace` is false
  refused,  // the name is something authbypass does not write to (directory, socket...)
  io,       // a system call failed (errno in the message)
};

struct OutputFileResult {
  OutputFileError error = OutputFileError::none;
  std::string message;  // empty on success
  explicit operator bool() const { return error == OutputFileError::none; }
};

OutputFileResult write_output_file(const std::string& path, std::string_view content,
                                   const OutputFileOptions& options = {});

}  // namespace authbypass
