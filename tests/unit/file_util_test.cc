// The shared utilities of the engine and the tools: the bounded file reader, file
// identity, SHA-256 and the error list.
#include "file_util.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "authbypass/file_identity.h"
#include "authbypass/policy.h"
#include "error_list.h"
#include "sha256.h"
#include "text.h"

namespace authbypass {
namespace {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/authbypass-file-util-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf '" + path_ + "'").c_str()); }
  std::string file(const std::string& name, const std::string& content) const {
    const std::string p = path_ + "/" + name;
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(ReadFile, ReadsUpToTheLimitAndRefusesMore) {
  TempDir d;
  std::string out = "old";
  const files::ReadOptions o{.max_bytes = 5, .regular_only = true};
  EXPECT_TRUE(files::read_file(d.file("five", "12345"), o, out));
  EXPECT_EQ(out, "12345");
  const files::ReadResult r = files::read_file(d.file("six", "123456"), o, out);
  EXPECT_EQ(r.error, files::ReadError::kTooLarge);
  EXPECT_EQ(r.reason(o), "larger than 5 bytes");
  EXPECT_TRUE(out.empty());
  EXPECT_TRUE(files::read_file(d.file("empty", ""), o, out));
  EXPECT_TRUE(out.empty());
}

TEST(ReadFile, SaysWhyItCannotRead) {
  TempDir d;
  std::string out;
  const files::ReadOptions regular{.max_bytes = 100, .regular_only = true};
  files::ReadResult r = files::read_file(d.path() + "/none", regular, out);
  EXPECT_EQ(r.error, files::ReadError::kOpen);
  EXPECT_EQ(r.reason(regular), "No such file or directory");
  EXPECT_EQ(files::read_file(d.path(), regular, out).error, files::ReadError::kNotRegular);
  EXPECT_EQ(files::read_file("/dev/null", regular, out).error, files::ReadError::kNotRegular);
  // Without the regular-file rule: devices and FIFOs are read, directories still refused.
  const files::ReadOptions any{.max_bytes = 100, .regular_only = false};
  EXPECT_TRUE(files::read_file("/dev/null", any, out));
  EXPECT_EQ(files::read_file(d.path(), any, out).error, files::ReadError::kNotRegular);
}

TEST(ReadFile, AFifoWithoutWriterDoesNotBlock) {
  TempDir d;
  const std::string fifo = d.path() + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::string out;
  EXPECT_TRUE(files::read_file(fifo, {.max_bytes = 100, .regular_only = false}, out));
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(files::read_file(fifo, {.max_bytes = 100, .regular_only = true}, out).error,
            files::ReadError::kNotRegular);
}

TEST(FileIdentity, TellsEditsAndReplacementsApart) {
  TempDir d;
  const std::string p = d.file("f", "one");
  const FileIdentity first = file_identity(p);
  EXPECT_TRUE(first.exists);
  EXPECT_TRUE(first.same_file(file_identity(p)));
  EXPECT_EQ(first, file_identity(p));

  std::ofstream(p, std::ios::binary | std::ios::app) << "two";  // edited in place
  const FileIdentity edited = file_identity(p);
  EXPECT_TRUE(first.same_file(edited));
  EXPECT_NE(first, edited);

  const std::string other = d.file("g", "three");
  ASSERT_EQ(::rename(other.c_str(), p.c_str()), 0);  // replaced (rotation)
  EXPECT_FALSE(edited.same_file(file_identity(p)));

  const FileIdentity missing = file_identity(d.path() + "/none");
  EXPECT_FALSE(missing.exists);
  EXPECT_FALSE(missing.same_file(missing));
  struct stat a {
  }, b{};
  ASSERT_EQ(::stat(p.c_str(), &a), 0);
  ASSERT_EQ(::stat(p.c_str(), &b), 0);
  EXPECT_TRUE(same_file(a, b));
  EXPECT_EQ(identity_of(a), file_identity(p));
}

TEST(Sha256, HexOfKnownInputs) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

// The one hex encoder (digests, secrets, byte names): two lower-case digits a byte,
// appended.
TEST(Text, AppendHex) {
  const unsigned char bytes[] = {0x00, 0x0f, 0xa5, 0xff, 0x10};
  std::string out = "0x";
  text::append_hex(out, bytes, sizeof bytes);
  EXPECT_EQ(out, "0x000fa5ff10");
  text::append_hex(out, bytes, 0);
  EXPECT_EQ(out, "0x000fa5ff10");
}

TEST(ErrorList, KeepsTheFirstFiftyAndCountsTheRest) {
  std::vector<std::string> out;
  ErrorList<std::string> errors(out);
  EXPECT_FALSE(errors.any());
  for (int i = 0; i < 53; ++i) errors.add("e" + std::to_string(i));
  errors.finish();
  EXPECT_EQ(errors.count(), 53u);
  EXPECT_EQ(errors.dropped(), 3u);
  ASSERT_EQ(out.size(), kMaxKeptErrors + 1);
  EXPECT_EQ(out[49], "e49");
  EXPECT_EQ(out.back(), "... and 3 more errors");
}

// The policy loader through the shared list: errors sorted by place, the rest counted.
TEST(ErrorList, PolicyLoaderReportsEveryErrorOrCountsIt) {
  std::string yaml = "version: 1\nrules:\n";
  for (int i = 0; i < 60; ++i)
    yaml +=
        "  - id: r" + std::to_string(i) + "\n    match:\n      hosts: [a.com]\n      ports: [0]\n";
  const LoadResult r = load_policy_text(yaml, "p.yaml");
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.errors.size(), kMaxKeptErrors + 1);
  EXPECT_EQ(r.errors.front().rfind("p.yaml:6:", 0), 0u) << r.errors.front();
  EXPECT_EQ(r.errors.back(), "p.yaml: ... and 10 more errors");
}

}  // namespace
}  // namespace authbypass
