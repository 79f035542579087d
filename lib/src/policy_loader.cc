// YAML policy loader, schema version 1 (docs/architecture.md "Policy"). All-or-nothing:
// every error found is collected as "file:line:column: message" and no policy is returned
// if there is any.
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <tuple>
#include <unordered_map>

#include "authbypass/policy.h"
#include "compiled_regex.h"
#include "error_list.h"
#include "file_util.h"
#include "host_matcher.h"
#include "host_name.h"
#include "sha256.h"
#include "text.h"
#include "yaml_tree.h"

namespace authbypass {

namespace {

constexpr std::size_t kMaxListEntries = 1'000'000;  // over all lists of a policy
constexpr std::size_t kMaxIdLength = 64;
constexpr std::size_t kMaxTextLength = 1024;
constexpr std::size_t kMaxIncludeDepth = 8;
constexpr std::size_t kMaxIncludeFiles = 32;
constexpr int kMaxYamlDepth = 64;  // a policy needs 6 levels

bool valid_id(std::string_view id) {
  if (id.empty() || id.size() > kMaxIdLength) return false;
  auto ok_first = [](char c) { return (c >= 'a' && c <= 'z') || text::is_digit(c); };
  if (!ok_first(id[0])) return false;
  for (char c : id)
    if (!(ok_first(c) || c == '.' || c == '_' || c == '-')) return false;
  return true;
}

bool read_policy_bytes(const std::string& path, std::string& text, std::string* error);

}  // namespace

class PolicyLoader {
 public:
  explicit PolicyLoader(std::string file) : file_(std::move(file)) {}
  PolicyLoader(const PolicyLoader&) = delete;  // errors_ refers to kept_errors_
  PolicyLoader& operator=(const PolicyLoader&) = delete;

  LoadResult load(std::string_view text);

 private:
  using Node = yaml::Node;

  SourceLocation where(const Node& n) const {
    yaml::Mark m = n.Mark();
    if (m.is_null()) return {file_, 1, 1};
    return {file_, m.line + 1, m.column + 1};
  }
  void error_at(const SourceLocation& loc, const std::string& msg) { errors_.add({loc, msg}); }
  void error(const Node& n, const std::string& msg) { error_at(where(n), msg); }

  // Checks that `n` is a mapping (false if not) and reports keys that are not unique
  // scalars from `allowed`; the caller goes on with the known keys either way.
  bool check_map(const Node& n, const std::string& what,
                 std::initializer_list<const char*> allowed);
  std::optional<std::string> scalar(const Node& n, const std::string& what);
  std::optional<std::vector<Node>> list(const Node& n, const std::string& what);

  void load_file(std::string_view text, const std::string& file, std::vector<std::string>& chain);
  void load_file_body(std::string_view text, std::vector<std::string>& chain);
  void load_includes(const Node& inc, std::vector<std::string>& chain);
  std::size_t file_order(const std::string& file) const;
  void load_rule(const Node& n, std::uint32_t index);
  bool load_match(const Node& n, Rule& rule);
  void load_test(const Node& n);
  void load_hosts(const Node& n, Rule& rule);
  void load_strings(const Node& n, const std::string& key, std::vector<std::string>& out,
                    bool path_text);
  void load_regexes(const Node& n, const std::string& key, std::vector<RegexPattern>& out);

  std::string file_;
  std::vector<LocatedError> kept_errors_;
  ErrorList<LocatedError> errors_{kept_errors_};
  std::size_t list_entries_ = 0;
  std::unique_ptr<Policy> policy_;
  std::unordered_map<std::string, SourceLocation> ids_;
  std::vector<std::string> file_hashes_;  // per file of policy_->files_
  std::uint32_t next_rule_index_ = 0;
};

bool PolicyLoader::check_map(const Node& n, const std::string& what,
                             std::initializer_list<const char*> allowed) {
  if (!n.IsMap()) {
    error(n, what + " must be a mapping (key: value)");
    return false;
  }
  std::set<std::string> seen;
  for (std::size_t i = 0; i < n.size(); ++i) {
    const Node key = n.key_at(i);
    if (!key.IsScalar()) {
      error(key, "keys in " + what + " must be plain words");
      continue;
    }
    const std::string& k = key.Scalar();
    bool known = false;
    for (const char* a : allowed) known = known || k == a;
    if (!known) {
      std::string list;
      for (const char* a : allowed) list += std::string(list.empty() ? "" : ", ") + a;
      error(key, "unknown key '" + k + "' in " + what + " (allowed: " + list + ")");
    } else if (!seen.insert(k).second) {
      error(key, "duplicate key '" + k + "' in " + what);
    }
  }
  return true;
}

std::optional<std::string> PolicyLoader::scalar(const Node& n, const std::string& what) {
  if (!n.IsScalar()) {
    error(n, what + " must be a single value, not " +
                 (n.IsNull()       ? "empty"
                  : n.IsSequence() ? "a list"
                                   : "a mapping"));
    return std::nullopt;
  }
  if (n.Scalar().size() > kMaxTextLength) {
    error(n, what + " is longer than " + std::to_string(kMaxTextLength) + " characters");
    return std::nullopt;
  }
  return n.Scalar();
}

std::optional<std::vector<yaml::Node>> PolicyLoader::list(const Node& n, const std::string& what) {
  if (!n.IsSequence()) {
    error(n, what + " must be a list, e.g. " + what + ": [a, b]");
    return std::nullopt;
  }
  if (n.size() == 0) {
    error(n, what + " is an empty list: remove the key or list at least one entry");
    return std::nullopt;
  }
  list_entries_ += n.size();
  if (list_entries_ > kMaxListEntries) {
    error(n, "policy has more than " + std::to_string(kMaxListEntries) + " list entries");
    return std::nullopt;
  }
  std::vector<Node> out;
  out.reserve(n.size());
  for (std::size_t i = 0; i < n.size(); ++i) out.push_back(n.at(i));
  return out;
}

void PolicyLoader::load_strings(const Node& n, const std::string& key,
                                std::vector<std::string>& out, bool path_text) {
  auto entries = list(n, key);
  if (!entries) return;
  for (const Node& e : *entries) {
    auto s = scalar(e, key + " entry");
    if (!s) continue;
    if (s->empty()) {
      error(e, key + " entry is empty");
      continue;
    }
    if (path_text) {
      if (key == "path_prefix" && (*s)[0] != '/') {
        error(e, "path_prefix '" + *s + "' must start with '/'");
        continue;
      }
      bool bad = false;
      for (char c : *s) {
        bad = bad || text::is_ctl(static_cast<unsigned char>(c)) || c == '?' || c == '#' ||
              c == ';' || c == '%' || c == '\\';
      }
      if (bad) {
        error(e, key + " '" + *s +
                     "' contains ?, #, ;, %, \\ or a control character: paths are matched "
                     "decoded, without query or ;params");
        continue;
      }
    }
    out.push_back(text::to_lower(*s));
  }
}

void PolicyLoader::load_regexes(const Node& n, const std::string& key,
                                std::vector<RegexPattern>& out) {
  auto entries = list(n, key);
  if (!entries) return;
  for (const Node& e : *entries) {
    auto s = scalar(e, key + " entry");
    if (!s) continue;
    if (s->size() > kMaxRegexLength) {
      error(e, key + " entry is longer than " + std::to_string(kMaxRegexLength) + " characters");
      continue;
    }
    std::string why;
    auto re = Regex::compile(*s, &why);
    if (!re) {
      error(e, "bad regular expression '" + *s + "': " + why);
      continue;
    }
    out.push_back(RegexPattern{*s, std::move(re)});
  }
}

void PolicyLoader::load_hosts(const Node& n, Rule& rule) {
  auto entries = list(n, "hosts");
  if (!entries) return;
  for (const Node& e : *entries) {
    auto s = scalar(e, "hosts entry");
    if (!s) continue;
    std::string_view t = *s;
    HostPattern p;
    p.text = *s;
    if (t.starts_with("*.")) {
      error(e, "hosts entry '" + *s + "': write '" + std::string(t.substr(1)) +
                   "' for a domain and all its subdomains");
      continue;
    }
    if (t.starts_with("[")) {
      error(e, "hosts entry '" + *s + "': write IPv6 addresses without brackets");
      continue;
    }
    if (t.find('/') != std::string_view::npos || IpAddress::parse(t)) {
      std::string why;
      auto c = Cidr::parse(t, &why);
      if (!c) {
        error(e, "bad CIDR in hosts: " + why);
        continue;
      }
      p.kind = HostPattern::Kind::kCidr;
      p.cidr = *c;
    } else {
      if (t.find(':') != std::string_view::npos) {
        error(e,
              "hosts entry '" + *s + "' has a port or is not an IP address; use 'ports' for ports");
        continue;
      }
      p.kind = HostPattern::Kind::kExact;
      if (t.starts_with(".")) {
        p.kind = HostPattern::Kind::kSuffix;
        t.remove_prefix(1);
      }
      std::string why;
      if (!normalize_host_name(t, p.name, &why)) {
        error(e, "bad host name '" + *s + "': " + why);
        continue;
      }
      if (ends_in_number(p.name)) {
        error(e, "hosts entry '" + *s +
                     "' is a numeric form that never matches; write IPv4 addresses as four "
                     "decimal octets (192.0.2.7)");
        continue;
      }
    }
    rule.match.hosts.push_back(std::move(p));
  }
}

bool PolicyLoader::load_match(const Node& n, Rule& rule) {
  if (n.IsNull() || (n.IsMap() && n.size() == 0)) {
    error(n, "rule '" + rule.id +
                 "': empty 'match' would match every request; list at least one criterion");
    return false;
  }
  if (!check_map(n, "match",
                 {"methods", "ports", "hosts", "path_prefix", "path_suffix", "path_regex",
                  "user_agent", "user_agent_regex", "src"}))
    return false;
  Match& m = rule.match;
  bool narrows = false;
  for (std::size_t i = 0; i < n.size(); ++i) {
    if (!n.key_at(i).IsScalar()) continue;
    const std::string& k = n.key_at(i).Scalar();
    const Node v = n.value_at(i);
    if (k == "methods") {
      auto entries = list(v, "methods");
      if (!entries) continue;
      for (const Node& e : *entries) {
        auto s = scalar(e, "methods entry");
        if (!s) continue;
        std::string up;
        bool ok = !s->empty() && s->size() <= kMaxMethodLength;
        for (char c : *s) {
          ok = ok && text::is_alpha(c);
          up += text::upper(c);
        }
        if (!ok) {
          error(e, "bad method '" + *s + "' (expected an HTTP method such as GET)");
          continue;
        }
        m.methods.push_back(up);
      }
    } else if (k == "ports") {
      auto entries = list(v, "ports");
      if (!entries) continue;
      for (const Node& e : *entries) {
        unsigned long port = 0;
        if (!e.IsScalar() || e.Tag() != "?" || !text::parse_decimal(e.Scalar(), 65535, port) ||
            port == 0) {
          error(e, "bad port '" + (e.IsScalar() ? e.Scalar() : std::string("?")) +
                       "' (expected an unquoted number 1-65535)");
          continue;
        }
        m.ports.push_back(static_cast<std::uint16_t>(port));
      }
    } else if (k == "hosts") {
      narrows = true;
      load_hosts(v, rule);
    } else if (k == "path_prefix") {
      narrows = true;
      load_strings(v, k, m.path_prefix, true);
    } else if (k == "path_suffix") {
      narrows = true;
      load_strings(v, k, m.path_suffix, true);
    } else if (k == "path_regex") {
      narrows = true;
      load_regexes(v, k, m.path_regex);
    } else if (k == "user_agent") {
      narrows = true;
      load_strings(v, k, m.user_agent, false);
    } else if (k == "user_agent_regex") {
      narrows = true;
      load_regexes(v, k, m.user_agent_regex);
    } else if (k == "src") {
      narrows = true;
      auto entries = list(v, "src");
      if (!entries) continue;
      for (const Node& e : *entries) {
        auto s = scalar(e, "src entry");
        if (!s) continue;
        std::string why;
        auto c = Cidr::parse(*s, &why);
        if (!c) {
          error(e, "bad CIDR in src: " + why);
          continue;
        }
        m.src.push_back(*c);
      }
    }
  }
  if (!narrows) {
    error(n, "rule '" + rule.id +
                 "': 'match' has only methods/ports, so it would match every host; add hosts, "
                 "path_*, user_agent* or src");
  }
  if (m.methods.empty() && !n["methods"]) {
    m.methods = {"GET", "HEAD"};
    m.methods_defaulted = true;
  }
  if (m.ports.empty() && !n["ports"]) {
    m.ports = {80};
    m.ports_defaulted = true;
  }
  return true;
}

void PolicyLoader::load_rule(const Node& n, std::uint32_t index) {
  if (!check_map(n, "a rule",
                 {"id", "description", "owner", "ticket", "mode", "expires", "match", "verify"}))
    return;
  Rule rule;
  rule.where = where(n);
  rule.index = index;

  if (const Node id = n["id"]; !id) {
    error(n, "rule has no 'id'");
  } else if (auto s = scalar(id, "id")) {
    if (!valid_id(*s)) {
      error(id, "bad rule id '" + *s + "' (use lower-case letters, digits, '.', '_', '-'; " +
                    "start with a letter or digit; at most 64 characters)");
    } else if (auto [it, fresh] = ids_.emplace(*s, where(id)); !fresh) {
      error(id, "duplicate rule id '" + *s + "' (first defined at " + it->second.to_string() + ")");
    }
    rule.id = *s;
  }
  for (const auto& [key, field] :
       {std::pair{"description", &rule.description}, std::pair{"owner", &rule.owner},
        std::pair{"ticket", &rule.ticket}}) {
    if (const Node v = n[key]) {
      if (auto s = scalar(v, key)) *field = *s;
    }
  }
  if (const Node v = n["mode"]) {
    if (auto s = scalar(v, "mode")) {
      if (*s == "enforce") {
        rule.mode = Mode::kEnforce;
      } else if (*s == "shadow") {
        rule.mode = Mode::kShadow;
      } else {
        error(v, "unknown mode '" + *s + "' (expected enforce or shadow)");
      }
    }
  }
  if (const Node v = n["verify"]) {
    if (auto s = scalar(v, "verify")) {
      static const std::pair<const char*, Verify> kVerify[] = {
          {"none", Verify::kNone}, {"crl", Verify::kCrl}, {"ocsp", Verify::kOcsp},
          {"cert", Verify::kCert}, {"ctl", Verify::kCtl}, {"revocation", Verify::kRevocation}};
      bool found = false;
      for (const auto& [name, value] : kVerify) {
        if (*s == name) {
          rule.verify = value;
          found = true;
        }
      }
      if (!found)
        error(v, "unknown verify '" + *s + "' (expected none, crl, ocsp, cert, ctl or revocation)");
    }
  }
  if (const Node v = n["expires"]) {
    if (auto s = scalar(v, "expires")) {
      rule.expires = parse_date(*s);
      if (!rule.expires) error(v, "bad date '" + *s + "' (expected YYYY-MM-DD)");
    }
  }
  if (const Node v = n["match"]; !v) {
    error(n, "rule '" + rule.id + "' has no 'match'");
  } else {
    load_match(v, rule);
  }
  policy_->rules_.push_back(std::move(rule));
}

void PolicyLoader::load_test(const Node& n) {
  if (!check_map(n, "a test", {"name", "request", "expect", "rule", "shadow", "date"})) return;
  PolicyTest t;
  t.where = where(n);
  if (const Node v = n["name"]; !v) {
    error(n, "test has no 'name'");
  } else if (auto s = scalar(v, "name")) {
    t.name = *s;
  }
  if (const Node req = n["request"]; !req) {
    error(n, "test '" + t.name + "' has no 'request'");
  } else if (check_map(req, "request", {"method", "url", "user_agent", "src"})) {
    for (const auto& [key, field] :
         {std::pair{"method", &t.method}, std::pair{"url", &t.url},
          std::pair{"user_agent", &t.user_agent}, std::pair{"src", &t.src}}) {
      if (const Node v = req[key]) {
        if (auto s = scalar(v, key)) *field = *s;
      }
    }
    if (!req["url"]) error(req, "test '" + t.name + "': request has no 'url'");
  }
  if (const Node v = n["expect"]; !v) {
    error(n, "test '" + t.name + "' has no 'expect' (bypass or authenticate)");
  } else if (auto s = scalar(v, "expect")) {
    if (*s == "bypass") {
      t.expect_bypass = true;
    } else if (*s != "authenticate") {
      error(v, "unknown expect '" + *s + "' (expected bypass or authenticate)");
    }
  }
  if (const Node v = n["rule"]) {
    if (auto s = scalar(v, "rule")) {
      t.expect_rule = *s;
      if (!ids_.contains(*s)) error(v, "test '" + t.name + "' names unknown rule '" + *s + "'");
    }
  }
  if (const Node v = n["shadow"]) {
    if (v.IsSequence() && v.size() == 0) {
      t.expect_shadow.emplace();  // "no shadow rule may match"
    } else if (auto entries = list(v, "shadow")) {
      t.expect_shadow.emplace();
      for (const Node& e : *entries) {
        auto s = scalar(e, "shadow entry");
        if (!s) continue;
        if (!ids_.contains(*s)) error(e, "test '" + t.name + "' names unknown rule '" + *s + "'");
        t.expect_shadow->push_back(*s);
      }
    }
  }
  if (const Node v = n["date"]) {
    if (auto s = scalar(v, "date")) {
      t.date = parse_date(*s);
      if (!t.date) error(v, "bad date '" + *s + "' (expected YYYY-MM-DD)");
    }
  }
  policy_->tests_.push_back(std::move(t));
}

namespace {

// One policy file's bytes: a regular file of at most kMaxPolicyFileBytes. False and
// *error ("path: cannot read policy: ...") otherwise.
bool read_policy_bytes(const std::string& path, std::string& text, std::string* error) {
  const files::ReadOptions options{.max_bytes = kMaxPolicyFileBytes, .regular_only = true};
  const files::ReadResult r = files::read_file(path, options, text);
  if (r) return true;
  if (r.error == files::ReadError::kTooLarge) {
    *error = path + ":1:1: policy file is larger than " +
             std::to_string(kMaxPolicyFileBytes >> 20) + " MiB";
  } else {
    *error = path + ": cannot read policy: " + r.reason(options);
  }
  return false;
}

}  // namespace

LoadResult PolicyLoader::load(std::string_view text) {
  LoadResult result;
  policy_.reset(new Policy());  // NOLINT(cppcoreguidelines-owning-memory): private ctor
  policy_->file_ = file_;
  static std::atomic<std::uint64_t> generations{0};
  policy_->generation_ = ++generations;

  char* real = ::realpath(file_.c_str(), nullptr);
  std::vector<std::string> chain{real ? std::string(real) : file_};
  std::free(real);  // NOLINT(cppcoreguidelines-no-malloc): realpath's buffer
  load_file(text, file_, chain);

  // The policy's hash: the file's own for a single file; with includes, a hash over every
  // file's name and hash, in load order.
  if (policy_->files_.size() == 1) {
    policy_->sha256_ = file_hashes_.front();
  } else {
    std::string all;
    for (std::size_t i = 0; i < policy_->files_.size(); ++i)
      all += policy_->files_[i] + '\n' + file_hashes_[i] + '\n';
    policy_->sha256_ = sha256_hex(all);
  }

  if (errors_.any()) {
    std::stable_sort(kept_errors_.begin(), kept_errors_.end(), [&](const auto& a, const auto& b) {
      return std::tuple(file_order(a.where.file), a.where.line, a.where.column) <
             std::tuple(file_order(b.where.file), b.where.line, b.where.column);
    });
    for (const LocatedError& e : kept_errors_) result.errors.push_back(e.to_string());
    if (errors_.dropped() > 0)
      result.errors.push_back(file_ + ": " + more_errors_line(errors_.dropped()));
    return result;
  }

  // Compile the host index and the scan lists.
  Policy& p = *policy_;
  for (Rule& r : p.rules_) {
    for (const std::string& m : r.match.methods) r.match.method_bits |= method_bit(m);
    if (r.match.hosts.empty()) {
      p.hostless_.push_back(r.index);
    } else {
      for (const HostPattern& h : r.match.hosts) p.index_->add(h, r.index);
    }
    if (r.mode == Mode::kShadow) p.last_shadow_ = r.index;
  }
  p.index_->finish();
  result.policy = std::shared_ptr<const Policy>(policy_.release());
  return result;
}

std::size_t PolicyLoader::file_order(const std::string& file) const {
  const auto& f = policy_->files_;
  return static_cast<std::size_t>(std::find(f.begin(), f.end(), file) - f.begin());
}

// Loads one file (the policy or an included one) into policy_. `chain` holds the real
// paths of the files that include this one, for cycle detection.
void PolicyLoader::load_file(std::string_view text, const std::string& file,
                             std::vector<std::string>& chain) {
  const std::string saved = file_;
  file_ = file;
  policy_->files_.push_back(file);
  file_hashes_.push_back(sha256_hex(text));
  load_file_body(text, chain);
  file_ = saved;
}

void PolicyLoader::load_file_body(std::string_view text, std::vector<std::string>& chain) {
  const SourceLocation start{file_, 1, 1};
  if (text.size() > kMaxPolicyFileBytes) {
    error_at(start,
             "policy file is larger than " + std::to_string(kMaxPolicyFileBytes >> 20) + " MiB");
    return;
  }
  if (std::size_t nul = text.find('\0'); nul != std::string_view::npos) {
    int line = 1 + static_cast<int>(std::count(text.begin(), text.begin() + nul, '\n'));
    error_at(SourceLocation{file_, line, 1},
             "policy file contains a NUL byte; it must be a YAML text file");
    return;
  }
  std::optional<yaml::ParseError> parse_error;
  std::unique_ptr<yaml::Tree> tree = yaml::Tree::parse(text, parse_error, kMaxYamlDepth);
  if (!tree) {
    const yaml::ParseError& e = *parse_error;
    SourceLocation loc =
        e.mark.is_null() ? start : SourceLocation{file_, e.mark.line + 1, e.mark.column + 1};
    error_at(loc, (e.too_deep ? "" : "not valid YAML: ") + e.message);
    return;
  }
  const std::vector<Node>& docs = tree->documents();
  if (docs.empty() || docs[0].IsNull()) {
    error_at(start, "policy is empty (expected 'version: 1' and 'rules:')");
    return;
  }
  if (docs.size() > 1) {
    error(docs[1], "policy file holds more than one YAML document");
    return;
  }
  const Node& root = docs[0];
  if (!check_map(root, "the policy", {"version", "rules", "tests", "include"})) return;
  if (const Node v = root["version"]; !v) {
    error_at(start, "missing 'version: 1'");
  } else if (!v.IsScalar() || v.Tag() != "?" || v.Scalar() != "1") {
    error(v, "unsupported version '" + (v.IsScalar() ? v.Scalar() : std::string("?")) +
                 "' (this authbypass reads policy schema version 1)");
  }
  if (const Node rules = root["rules"]; !rules) {
    // An included file may hold only tests or only includes; the top file needs rules.
    if (chain.size() == 1) error_at(start, "missing 'rules:'");
  } else if (!rules.IsSequence()) {
    error(rules, "'rules' must be a list of rules");
  } else {
    for (std::size_t i = 0; i < rules.size(); ++i) load_rule(rules.at(i), next_rule_index_++);
  }
  if (const Node tests = root["tests"]) {
    if (!tests.IsSequence()) {
      error(tests, "'tests' must be a list of test cases");
    } else {
      for (std::size_t i = 0; i < tests.size(); ++i) load_test(tests.at(i));
    }
  }
  if (const Node inc = root["include"]) load_includes(inc, chain);
}

// `include: [a.yaml, parts/b.yaml]`: paths relative to the including file's directory.
// Their rules follow this file's, in the order listed (depth first).
void PolicyLoader::load_includes(const Node& inc, std::vector<std::string>& chain) {
  auto entries = list(inc, "include");
  if (!entries) return;
  const std::size_t slash = file_.rfind('/');
  const std::string dir = slash == std::string::npos ? "" : file_.substr(0, slash + 1);
  for (const Node& e : *entries) {
    auto rel = scalar(e, "include entry");
    if (!rel) continue;
    if (rel->empty() || (*rel)[0] == '/') {
      error(e, "include '" + *rel + "': give a path relative to this file");
      continue;
    }
    if (chain.size() > kMaxIncludeDepth) {
      error(e, "include '" + *rel + "': includes nested deeper than " +
                   std::to_string(kMaxIncludeDepth) + " levels");
      continue;
    }
    if (policy_->files_.size() >= kMaxIncludeFiles) {
      error(e, "include '" + *rel + "': more than " + std::to_string(kMaxIncludeFiles) +
                   " policy files");
      continue;
    }
    const std::string path = dir + *rel;
    char* real = ::realpath(path.c_str(), nullptr);
    const std::string canonical = real ? std::string(real) : path;
    std::free(real);  // NOLINT(cppcoreguidelines-no-malloc): realpath's buffer
    if (std::find(chain.begin(), chain.end(), canonical) != chain.end()) {
      std::string cycle;
      for (const std::string& c : chain) cycle += c + " -> ";
      error(e, "include '" + *rel + "' makes a cycle: " + cycle + canonical);
      continue;
    }
    std::string text, err;
    if (!read_policy_bytes(path, text, &err)) {
      error(e, "include '" + *rel + "': " + err.substr(err.find(": ") + 2));
      continue;
    }
    chain.push_back(canonical);
    load_file(text, path, chain);
    chain.pop_back();
  }
}

LoadResult load_policy_text(std::string_view text, const std::string& name) {
  return PolicyLoader(name).load(text);
}

LoadResult load_policy_file(const std::string& path) {
  std::string text, err;
  if (!read_policy_bytes(path, text, &err)) {
    LoadResult result;
    result.errors.push_back(err);
    return result;
  }
  return load_policy_text(text, path);
}

}  // namespace authbypass
