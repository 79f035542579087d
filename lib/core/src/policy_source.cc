#include "authbypass/policy_source.h"

namespace authbypass {

PolicySource::PolicySource(std::string path, std::chrono::milliseconds check_interval)
    : path_(std::move(path)), interval_(check_interval) {}

std::vector<FileIdentity> PolicySource::stamps() const {
  std::vector<FileIdentity> out{file_identity(path_)};
  if (auto p = current()) {
    for (std::size_t i = 1; i < p->files().size(); ++i) out.push_back(file_identity(p->files()[i]));
  }
  return out;
}

PolicySource::Outcome PolicySource::reload() {
  // The main file's stamp is taken before reading it: a change racing the load makes the
  // next check reload again. (Included files are stamped after: their list comes from the
  // load.)
  const FileIdentity before = file_identity(path_);
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

std::vector<std::string> PolicySource::messages(const Outcome& o,
                                                std::string_view without_policy) const {
  std::vector<std::string> out;
  const auto p = current();
  if (o.kind == Outcome::Kind::kLoaded && p) {
    out.push_back("policy " + path_ + " loaded (" + std::to_string(p->rules().size()) +
                  " rules, sha256 " + p->sha256().substr(0, 12) + ")");
  } else if (o.kind == Outcome::Kind::kRejected) {
    out = o.errors;
    out.push_back(p ? "policy not reloaded: the last good policy (sha256 " +
                          p->sha256().substr(0, 12) + ") stays in force"
                    : std::string(without_policy));
  }
  return out;
}

}  // namespace authbypass
