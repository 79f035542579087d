// write_output_file(): regular files replaced atomically, links followed, devices and
// FIFOs written in place, everything else refused. Cases that need root (chown, mknod,
// the machine's /dev/null) are skipped, saying so, without it.
#include "authbypass/output_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <future>
#include <set>
#include <sstream>
#include <string>
#include <thread>

namespace authbypass {
namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void spit(const std::string& path, const std::string& content, mode_t mode = 0644) {
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << content;
  }
  ASSERT_EQ(::chmod(path.c_str(), mode), 0);
}

struct stat lstat_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path << ": " << std::strerror(errno);
  return st;
}

std::string link_target(const std::string& path) {
  char buf[4096];
  ssize_t n = ::readlink(path.c_str(), buf, sizeof buf);
  return n < 0 ? std::string() : std::string(buf, static_cast<std::size_t>(n));
}

std::set<std::string> entries(const std::string& dir) {
  std::set<std::string> names;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.insert(n);
    }
    ::closedir(d);
  }
  return names;
}

bool is_root() {
  return ::geteuid() == 0;
}

class OutputFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ab-output-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    old_umask_ = ::umask(022);
  }
  void TearDown() override {
    ::umask(old_umask_);
    std::string cmd = "rm -rf '" + dir_ + "'";
    EXPECT_EQ(std::system(cmd.c_str()), 0);
  }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  std::string sub(const std::string& name) const {
    std::string d = path(name);
    EXPECT_EQ(::mkdir(d.c_str(), 0755), 0);
    return d;
  }

  std::string dir_;
  mode_t old_umask_ = 022;
};

TEST_F(OutputFileTest, NewFileIsCreatedWithUmaskAppliedAndNoTemporaryLeft) {
  const std::string f = path("policy.yaml");
  auto r = write_output_file(f, "version: 1\n");
  ASSERT_TRUE(r) << r.message;
  EXPECT_EQ(slurp(f), "version: 1\n");
  const struct stat st = lstat_of(f);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0644u);  // 0666 & ~022
  EXPECT_EQ(entries(dir_), std::set<std::string>{"policy.yaml"});
}

TEST_F(OutputFileTest, RegularFileIsReplacedByRenameKeepingItsMode) {
  const std::string f = path("m365.yaml");
  spit(f, "old content that is longer than the new one\n", 0600);
  const struct stat before = lstat_of(f);
  // A reader that opened the old file keeps reading the old file: the new one is another
  // inode renamed over the name, never the old one rewritten.
  std::ifstream reader(f);
  auto r = write_output_file(f, "new\n");
  ASSERT_TRUE(r) << r.message;
  const struct stat after = lstat_of(f);
  EXPECT_EQ(slurp(f), "new\n");
  EXPECT_NE(after.st_ino, before.st_ino);
  EXPECT_EQ(after.st_mode & 07777, 0600u);
  std::string old_line;
  std::getline(reader, old_line);
  EXPECT_EQ(old_line, "old content that is longer than the new one");
  EXPECT_EQ(entries(dir_), std::set<std::string>{"m365.yaml"});
}

TEST_F(OutputFileTest, SetIdBitsOfAReplacedFileAreDropped) {
  const std::string f = path("x");
  spit(f, "old", 0755);
  ASSERT_EQ(::chmod(f.c_str(), 04755), 0);
  ASSERT_TRUE(write_output_file(f, "new"));
  EXPECT_EQ(lstat_of(f).st_mode & 07777, 0755u);
}

TEST_F(OutputFileTest, ForcedModeAppliesToNewAndReplacedFilesWhateverTheUmask) {
  OutputFileOptions o;
  o.force_mode = 0640;
  ::umask(077);
  const std::string f = path("icap-secret");
  ASSERT_TRUE(write_output_file(f, "s1\n", o));
  EXPECT_EQ(lstat_of(f).st_mode & 07777, 0640u);
  ASSERT_EQ(::chmod(f.c_str(), 0644), 0);  // someone widened it: the new secret is 0640 again
  ASSERT_TRUE(write_output_file(f, "s2\n", o));
  EXPECT_EQ(lstat_of(f).st_mode & 07777, 0640u);
  EXPECT_EQ(slurp(f), "s2\n");
}

TEST_F(OutputFileTest, ReplaceFalseLeavesAnExistingFileAlone) {
  OutputFileOptions o;
  o.replace = false;
  const std::string f = path("icap-secret");
  spit(f, "keep\n");
  auto r = write_output_file(f, "new\n", o);
  EXPECT_FALSE(r);
  EXPECT_EQ(r.error, OutputFileError::exists);
  EXPECT_NE(r.message.find(f + " exists"), std::string::npos) << r.message;
  EXPECT_EQ(slurp(f), "keep\n");
  // ...also when a link leads to it; a new name is fine.
  ASSERT_EQ(::symlink("icap-secret", path("link").c_str()), 0);
  EXPECT_EQ(write_output_file(path("link"), "new\n", o).error, OutputFileError::exists);
  EXPECT_EQ(slurp(f), "keep\n");
  EXPECT_TRUE(write_output_file(path("fresh"), "new\n", o));
  EXPECT_EQ(entries(dir_), (std::set<std::string>{"icap-secret", "link", "fresh"}));
}

TEST_F(OutputFileTest, SymlinkIsFollowedAndItsTargetReplacedInItsOwnDirectory) {
  const std::string conf = sub("etc");
  const std::string store = sub("store");
  spit(store + "/m365.yaml", "old\n", 0640);
  // etc/m365.yaml -> ../store/m365.yaml (relative, as config management writes them)
  ASSERT_EQ(::symlink("../store/m365.yaml", (conf + "/m365.yaml").c_str()), 0);
  auto r = write_output_file(conf + "/m365.yaml", "new\n");
  ASSERT_TRUE(r) << r.message;
  EXPECT_TRUE(S_ISLNK(lstat_of(conf + "/m365.yaml").st_mode));
  EXPECT_EQ(link_target(conf + "/m365.yaml"), "../store/m365.yaml");
  EXPECT_EQ(slurp(store + "/m365.yaml"), "new\n");
  EXPECT_EQ(lstat_of(store + "/m365.yaml").st_mode & 07777, 0640u);
  EXPECT_EQ(entries(conf), std::set<std::string>{"m365.yaml"});
  EXPECT_EQ(entries(store), std::set<std::string>{"m365.yaml"});
}

TEST_F(OutputFileTest, ChainOfAbsoluteAndRelativeLinksIsFollowedToTheEnd) {
  const std::string a = sub("a");
  const std::string b = sub("b");
  spit(b + "/final", "old\n");
  ASSERT_EQ(::symlink((b + "/middle").c_str(), (a + "/first").c_str()), 0);
  ASSERT_EQ(::symlink("final", (b + "/middle").c_str()), 0);
  ASSERT_TRUE(write_output_file(a + "/first", "new\n"));
  EXPECT_EQ(slurp(b + "/final"), "new\n");
  EXPECT_TRUE(S_ISLNK(lstat_of(a + "/first").st_mode));
  EXPECT_TRUE(S_ISLNK(lstat_of(b + "/middle").st_mode));
}

TEST_F(OutputFileTest, DanglingSymlinkCreatesItsTarget) {
  const std::string store = sub("store");
  ASSERT_EQ(::symlink("store/ips.nft", path("ips.nft").c_str()), 0);
  auto r = write_output_file(path("ips.nft"), "table\n");
  ASSERT_TRUE(r) << r.message;
  EXPECT_TRUE(S_ISLNK(lstat_of(path("ips.nft")).st_mode));
  EXPECT_EQ(slurp(store + "/ips.nft"), "table\n");
  EXPECT_EQ(lstat_of(store + "/ips.nft").st_mode & 07777, 0644u);
}

TEST_F(OutputFileTest, DanglingSymlinkIntoAMissingDirectoryFailsAndWritesNothing) {
  ASSERT_EQ(::symlink("nowhere/x", path("x").c_str()), 0);
  auto r = write_output_file(path("x"), "data");
  EXPECT_FALSE(r);
  EXPECT_EQ(r.error, OutputFileError::io);
  EXPECT_NE(r.message.find("cannot create a temporary file in"), std::string::npos) << r.message;
  EXPECT_EQ(entries(dir_), std::set<std::string>{"x"});
}

TEST_F(OutputFileTest, SymlinkLoopIsAnErrorNotAHang) {
  ASSERT_EQ(::symlink("b", path("a").c_str()), 0);
  ASSERT_EQ(::symlink("a", path("b").c_str()), 0);
  auto r = write_output_file(path("a"), "data");
  EXPECT_FALSE(r);
  EXPECT_EQ(entries(dir_), (std::set<std::string>{"a", "b"}));
}

TEST_F(OutputFileTest, ForeignSymlinkInASharedStickyDirectoryIsNotFollowed) {
  if (!is_root()) GTEST_SKIP() << "needs root (lchown of the planted link)";
  // /tmp-like: root's, sticky, world-writable; the link belongs to nobody (65534), as if
  // another user had planted it there for root to write through.
  const std::string shared = sub("shared");
  ASSERT_EQ(::chmod(shared.c_str(), 01777), 0);
  const std::string victim = path("victim");
  spit(victim, "precious\n");
  const std::string planted = shared + "/out.yaml";
  ASSERT_EQ(::symlink(victim.c_str(), planted.c_str()), 0);
  ASSERT_EQ(::lchown(planted.c_str(), 65534, 65534), 0);
  auto r = write_output_file(planted, "overwritten\n");
  EXPECT_FALSE(r);
  EXPECT_EQ(r.error, OutputFileError::refused);
  EXPECT_NE(r.message.find("not followed"), std::string::npos) << r.message;
  EXPECT_EQ(slurp(victim), "precious\n");
  // The same link owned by the caller is followed (the kernel's rule too).
  ASSERT_EQ(::lchown(planted.c_str(), 0, 0), 0);
  EXPECT_TRUE(write_output_file(planted, "mine\n"));
  EXPECT_EQ(slurp(victim), "mine\n");
}

// A FIFO with a reader's end open (non-blocking), so that a writer finds a reader.
struct FifoReader {
  explicit FifoReader(const std::string& f) : fd(::open(f.c_str(), O_RDONLY | O_NONBLOCK)) {}
  ~FifoReader() {
    if (fd >= 0) ::close(fd);
  }
  std::string drain() const {
    char buf[4096];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
  }
  int fd;
};

// A /tmp-like directory (root's, sticky, world-writable) where another user (65534) has
// put a file under the name root is about to write a secret to: neither replaced (the new
// file would keep that user as owner, who could then read the secret) nor, for a FIFO,
// written to (that user reads it); a link of that user to a FIFO elsewhere is not
// followed either. Files of the caller or of the directory's owner are written as usual.
TEST_F(OutputFileTest, ForeignFileOrFifoInASharedStickyDirectoryIsNotWritten) {
  if (!is_root()) GTEST_SKIP() << "needs root (chown of the planted files)";
  const std::string shared = sub("shared");
  ASSERT_EQ(::chmod(shared.c_str(), 01777), 0);
  OutputFileOptions secret;
  secret.force_mode = 0640;
  secret.replace = true;

  const std::string file = shared + "/icap.secret";
  spit(file, "planted\n", 0666);
  ASSERT_EQ(::chown(file.c_str(), 65534, 65534), 0);
  auto r = write_output_file(file, "s3cret\n", secret);
  EXPECT_FALSE(r);
  EXPECT_EQ(r.error, OutputFileError::refused);
  EXPECT_NE(r.message.find("belongs to user 65534"), std::string::npos) << r.message;
  EXPECT_EQ(slurp(file), "planted\n");

  const std::string fifo = shared + "/fifo.secret";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0666), 0);
  ASSERT_EQ(::chown(fifo.c_str(), 65534, 65534), 0);
  {
    FifoReader reader(fifo);
    ASSERT_GE(reader.fd, 0);
    r = write_output_file(fifo, "s3cret\n", secret);
    EXPECT_FALSE(r);
    EXPECT_EQ(r.error, OutputFileError::refused);
    EXPECT_EQ(reader.drain(), "");
  }

  const std::string elsewhere = path("fifo");
  ASSERT_EQ(::mkfifo(elsewhere.c_str(), 0600), 0);
  const std::string link = shared + "/link.secret";
  ASSERT_EQ(::symlink(elsewhere.c_str(), link.c_str()), 0);
  ASSERT_EQ(::lchown(link.c_str(), 65534, 65534), 0);
  {
    FifoReader reader(elsewhere);
    ASSERT_GE(reader.fd, 0);
    r = write_output_file(link, "s3cret\n", secret);
    EXPECT_FALSE(r);
    EXPECT_NE(r.message.find("not followed"), std::string::npos) << r.message;
    EXPECT_EQ(reader.drain(), "");
  }

  // The caller's own file and FIFO there are written as usual.
  ASSERT_EQ(::chown(file.c_str(), 0, 0), 0);
  ASSERT_TRUE(write_output_file(file, "s3cret\n", secret));
  EXPECT_EQ(slurp(file), "s3cret\n");
  EXPECT_EQ(lstat_of(file).st_mode & 07777, 0640u);
  ASSERT_EQ(::chown(fifo.c_str(), 0, 0), 0);
  FifoReader reader(fifo);
  ASSERT_TRUE(write_output_file(fifo, "s3cret\n", secret));
  EXPECT_EQ(reader.drain(), "s3cret\n");
}

TEST_F(OutputFileTest, OwnerAndGroupOfAReplacedFileAreKept) {
  if (!is_root()) GTEST_SKIP() << "needs root (chown to another user)";
  const std::string f = path("policy.yaml");
  spit(f, "old\n", 0640);
  ASSERT_EQ(::chown(f.c_str(), 65534, 65534), 0);
  ASSERT_TRUE(write_output_file(f, "new\n"));
  const struct stat st = lstat_of(f);
  EXPECT_EQ(st.st_uid, 65534u);
  EXPECT_EQ(st.st_gid, 65534u);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  // An explicit group wins over the old one.
  OutputFileOptions o;
  o.group = 0;
  ASSERT_TRUE(write_output_file(f, "newer\n", o));
  EXPECT_EQ(lstat_of(f).st_gid, 0u);
  EXPECT_EQ(lstat_of(f).st_uid, 65534u);
}

TEST_F(OutputFileTest, AFileOfAnotherUserIsNotReplacedByANonRootCaller) {
  if (!is_root()) GTEST_SKIP() << "needs root (to become another user in a child)";
  const std::string f = path("policy.yaml");
  spit(f, "root's\n", 0644);
  ASSERT_EQ(::chmod(dir_.c_str(), 0777), 0);  // the directory lets anyone rename in it
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(10);
    auto r = write_output_file(f, "nobody's\n");
    const bool refused = !r && r.error == OutputFileError::refused &&
                         r.message.find("belongs to user 0") != std::string::npos;
    ::_exit(refused ? 0 : 11);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(slurp(f), "root's\n");
  EXPECT_EQ(lstat_of(f).st_uid, 0u);
  EXPECT_EQ(entries(dir_), std::set<std::string>{"policy.yaml"});
}

TEST_F(OutputFileTest, DirectoryIsRefusedWithAdvice) {
  const std::string d = sub("out");
  auto r = write_output_file(d, "data");
  EXPECT_FALSE(r);
  EXPECT_EQ(r.error, OutputFileError::refused);
  EXPECT_NE(r.message.find(d + " is a directory: nothing written (give the name of a file"),
            std::string::npos)
      << r.message;
  EXPECT_TRUE(entries(d).empty());
  EXPECT_EQ(entries(dir_), std::set<std::string>{"out"});
  // A link to a directory too.
  ASSERT_EQ(::symlink("out", path("link").c_str()), 0);
  EXPECT_EQ(write_output_file(path("link"), "data").error, OutputFileError::refused);
}

TEST_F(OutputFileTest, SocketIsRefused) {
  const std::string s = path("sock");
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  ASSERT_LT(s.size(), sizeof addr.sun_path);
  std::memcpy(addr.sun_path, s.c_str(), s.size() + 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  auto r = write_output_file(s, "data");
  ::close(fd);
  EXPECT_EQ(r.error, OutputFileError::refused);
  EXPECT_NE(r.message.find("is a socket"), std::string::npos) << r.message;
  EXPECT_TRUE(S_ISSOCK(lstat_of(s).st_mode));
}

TEST_F(OutputFileTest, BlockDeviceIsRefusedAndNeverOpened) {
  if (!is_root()) GTEST_SKIP() << "needs root (mknod)";
  // A loop device number that need not exist: the name is refused before any open().
  const std::string dev = path("disk");
  if (::mknod(dev.c_str(), S_IFBLK | 0600, makedev(7, 250)) != 0)
    GTEST_SKIP() << "mknod refused: " << std::strerror(errno);
  auto r = write_output_file(dev, "data");
  EXPECT_EQ(r.error, OutputFileError::refused);
  EXPECT_NE(r.message.find(dev + " is a block device: nothing written"), std::string::npos)
      << r.message;
  EXPECT_TRUE(S_ISBLK(lstat_of(dev).st_mode));
}

TEST_F(OutputFileTest, FifoWithAReaderIsWrittenInPlace) {
  const std::string f = path("fifo");
  ASSERT_EQ(::mkfifo(f.c_str(), 0600), 0);
  auto reader = std::async(std::launch::async, [&] { return slurp(f); });
  // The reader's open() may not have happened yet: the write fails (no reader) until it has.
  OutputFileResult r;
  for (int i = 0; i < 500; ++i) {
    r = write_output_file(f, "line 1\nline 2\n");
    if (r || r.message.find("no reader") == std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(r) << r.message;
  EXPECT_EQ(reader.get(), "line 1\nline 2\n");
  EXPECT_TRUE(S_ISFIFO(lstat_of(f).st_mode));
  EXPECT_EQ(entries(dir_), std::set<std::string>{"fifo"});
}

TEST_F(OutputFileTest, FifoWithoutAReaderFailsAtOnce) {
  const std::string f = path("fifo");
  ASSERT_EQ(::mkfifo(f.c_str(), 0600), 0);
  const auto start = std::chrono::steady_clock::now();
  auto r = write_output_file(f, "data");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_FALSE(r);
  EXPECT_NE(r.message.find("is a FIFO with no reader"), std::string::npos) << r.message;
  EXPECT_TRUE(S_ISFIFO(lstat_of(f).st_mode));
}

TEST_F(OutputFileTest, FifoIsNeverChmoddedEvenForASecret) {
  const std::string f = path("fifo");
  ASSERT_EQ(::mkfifo(f.c_str(), 0666 & ~022), 0);
  auto reader = std::async(std::launch::async, [&] { return slurp(f); });
  OutputFileOptions o;
  o.force_mode = 0640;
  o.replace = false;  // a FIFO holds nothing to overwrite
  OutputFileResult r;
  for (int i = 0; i < 500; ++i) {
    r = write_output_file(f, "secret\n", o);
    if (r || r.message.find("no reader") == std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(r) << r.message;
  EXPECT_EQ(reader.get(), "secret\n");
  EXPECT_EQ(lstat_of(f).st_mode & 07777, 0644u);
}

// A private character device made with mknod: the same device as /dev/null (1,3), so a
// regression that renames over it breaks nothing outside this directory.
TEST_F(OutputFileTest, PrivateNullDeviceIsWrittenInPlace) {
  if (!is_root()) GTEST_SKIP() << "needs root (mknod)";
  const std::string dev = path("null");
  if (::mknod(dev.c_str(), S_IFCHR | 0666, makedev(1, 3)) != 0)
    GTEST_SKIP() << "mknod refused: " << std::strerror(errno);
  int probe = ::open(dev.c_str(), O_WRONLY);
  if (probe < 0) GTEST_SKIP() << dir_ << " does not allow devices: " << std::strerror(errno);
  ::close(probe);
  const struct stat before = lstat_of(dev);
  OutputFileOptions secret;
  secret.force_mode = 0640;
  secret.group = 65534;
  for (const OutputFileOptions& o : {OutputFileOptions{}, secret}) {
    auto r = write_output_file(dev, "data\n", o);
    ASSERT_TRUE(r) << r.message;
    const struct stat after = lstat_of(dev);
    EXPECT_TRUE(S_ISCHR(after.st_mode));
    EXPECT_EQ(after.st_rdev, before.st_rdev);
    EXPECT_EQ(after.st_ino, before.st_ino);
    EXPECT_EQ(after.st_mode, before.st_mode);  // never chmodded
    EXPECT_EQ(after.st_gid, before.st_gid);    // never chowned
  }
  // Through a link: the device is written, the link stays.
  ASSERT_EQ(::symlink("null", path("out").c_str()), 0);
  ASSERT_TRUE(write_output_file(path("out"), "data\n"));
  EXPECT_TRUE(S_ISLNK(lstat_of(path("out")).st_mode));
  EXPECT_EQ(lstat_of(dev).st_ino, before.st_ino);
  EXPECT_EQ(entries(dir_), (std::set<std::string>{"null", "out"}));
}

// The machine's own /dev/null, as root: still the same character device afterwards (and
// nothing left in /dev). Runs only when the private device above behaves, so a regression
// shows there first and never reaches the real one.
TEST_F(OutputFileTest, RealDevNullAsRootStaysACharacterDevice) {
  if (!is_root()) GTEST_SKIP() << "needs root (the case that broke /dev/null)";
  const std::string dev = path("null");
  if (::mknod(dev.c_str(), S_IFCHR | 0666, makedev(1, 3)) != 0)
    GTEST_SKIP() << "mknod refused: no private device to try first";
  ASSERT_TRUE(write_output_file(dev, "probe\n"));
  ASSERT_TRUE(S_ISCHR(lstat_of(dev).st_mode)) << "the private device was replaced: not trying "
                                                 "the real /dev/null";
  const struct stat before = lstat_of("/dev/null");
  ASSERT_TRUE(S_ISCHR(before.st_mode));
  auto r = write_output_file("/dev/null", "version: 1\n");
  const struct stat after = lstat_of("/dev/null");
  const bool intact = S_ISCHR(after.st_mode) && after.st_rdev == before.st_rdev;
  if (!intact) {  // put it back before failing, whatever happened
    ::unlink("/dev/null");
    ::mknod("/dev/null", S_IFCHR | 0666, makedev(1, 3));
    ::chmod("/dev/null", 0666);
  }
  ASSERT_TRUE(r) << r.message;
  EXPECT_TRUE(intact) << "/dev/null was replaced (and has been recreated)";
  EXPECT_EQ(after.st_ino, before.st_ino);
  EXPECT_EQ(after.st_mode, before.st_mode);
  for (const std::string& name : entries("/dev"))
    EXPECT_NE(name.rfind(".null.", 0), 0u) << "temporary file left in /dev: " << name;
}

TEST_F(OutputFileTest, NamesThatAreNotFilesAreRefused) {
  EXPECT_EQ(write_output_file("", "x").error, OutputFileError::refused);
  auto r = write_output_file(path("missing-dir/x"), "x");
  EXPECT_FALSE(r);
  EXPECT_NE(r.message.find("missing-dir"), std::string::npos) << r.message;
}

TEST_F(OutputFileTest, NotDurableStillReplacesAtomically) {
  OutputFileOptions o;
  o.durable = false;
  o.create_mode = 0640;
  const std::string f = path("stats.json");
  ASSERT_TRUE(write_output_file(f, "{\"a\":1}\n", o));
  EXPECT_EQ(lstat_of(f).st_mode & 07777, 0640u);
  const ino_t first = lstat_of(f).st_ino;
  ASSERT_TRUE(write_output_file(f, "{\"a\":2}\n", o));
  EXPECT_EQ(slurp(f), "{\"a\":2}\n");
  EXPECT_NE(lstat_of(f).st_ino, first);
  EXPECT_EQ(entries(dir_), std::set<std::string>{"stats.json"});
}

}  // namespace
}  // namespace authbypass
