#include "authbypass/policy_source.h"

#include <sys/stat.h>

namespace authbypass {

PolicySource::PolicySource(std::string path, std::chrono::milliseconds check_interval)
    : path_(std::move(path)), interval_(check_interval) {}

PolicySource::Stamp PolicySource::stamp() const {
  struct stat st {};
  Stamp s;
  if (::stat(path_.c_str(), &st) != 0) return s;
  s.exists = true;
  s.dev = st.st_dev;
  s.ino = st.st_ino;
  s.size = static_cast<unsigned long long>(st.st_size);
  s.mtime_ns = static_cast<long long>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  s.ctime_ns = static_cast<long long>(st.st_ctim.tv_sec) * 1'000'000'000 + st.st_ctim.tv_nsec;
  return s;
}

PolicySource::Outcome PolicySource::reload() {
  last_stamp_ = stamp();
  LoadResult r = load_policy_file(path_);
  Outcome out;
  if (r.ok()) {
    current_.store(std::move(r.policy));
    out.kind = Outcome::Kind::kLoaded;
  } else {
    out.kind = Outcome::Kind::kRejected;
    out.errors = std::move(r.errors);
  }
  return out;
}

PolicySource::Outcome PolicySource::check(std::chrono::steady_clock::time_point now) {
  if (now - last_check_ < interval_) return {};
  last_check_ = now;
  if (stamp() == last_stamp_) return {};
  return reload();
}

}  // namespace authbypass
