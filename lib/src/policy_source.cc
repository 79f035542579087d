#include "authbypass/policy_source.h"

#include <sys/stat.h>

namespace authbypass {

PolicySource::PolicySource(std::string path, std::chrono::milliseconds check_interval)
    : path_(std::move(path)), interval_(check_interval) {}

PolicySource::Stamp PolicySource::stamp_of(const std::string& path) {
  struct stat st {};
  Stamp s;
  if (::stat(path.c_str(), &st) != 0) return s;
  s.exists = true;
  s.dev = st.st_dev;
  s.ino = st.st_ino;
  s.size = static_cast<unsigned long long>(st.st_size);
  s.mtime_ns = static_cast<long long>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  s.ctime_ns = static_cast<long long>(st.st_ctim.tv_sec) * 1'000'000'000 + st.st_ctim.tv_nsec;
  return s;
}

std::vector<PolicySource::Stamp> PolicySource::stamps() const {
  std::vector<Stamp> out{stamp_of(path_)};
  if (auto p = current()) {
    for (std::size_t i = 1; i < p->files().size(); ++i) out.push_back(stamp_of(p->files()[i]));
  }
  return out;
}

PolicySource::Outcome PolicySource::reload() {
  // The main file's stamp is taken before reading it: a change racing the load makes the
  // next check reload again. (Included files are stamped after: their list comes from the
  // load.)
  const Stamp before = stamp_of(path_);
  LoadResult r = load_policy_file(path_);
  Outcome out;
  if (r.ok()) {
    current_.store(std::move(r.policy));
    out.kind = Outcome::Kind::kLoaded;
    last_stamps_ = stamps();
    last_stamps_.front() = before;
  } else {
    out.kind = Outcome::Kind::kRejected;
    out.errors = std::move(r.errors);
    last_stamps_ = stamps();
    last_stamps_.front() = before;
  }
  return out;
}

PolicySource::Outcome PolicySource::check(std::chrono::steady_clock::time_point now) {
  if (now - last_check_ < interval_) return {};
  last_check_ = now;
  if (stamps() == last_stamps_) return {};
  return reload();
}

}  // namespace authbypass
