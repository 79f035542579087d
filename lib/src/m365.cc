// Microsoft 365 endpoint lists: parsing (nlohmann-json), selection, import into a policy,
// firewall lists and change reports. See authbypass/m365.h and docs/m365.md.
#include "authbypass/m365.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "authbypass/customer_hosting.h"
#include "authbypass/policy_check.h"
#include "cidr_set.h"
#include "error_list.h"
#include "file_util.h"
#include "sha256.h"
#include "text.h"

namespace authbypass::m365 {

namespace {

using json = nlohmann::json;
using ordered_json = nlohmann::ordered_json;

constexpr std::size_t kMaxUrlLength = 255;
constexpr std::size_t kMaxTextLength = 4096;  // notes, display names
constexpr std::size_t kMaxOptionLength = 256;  // owner, ticket

// ---------------------------------------------------------------------------------------
// Small helpers

bool contains(const std::vector<int>& v, int x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

std::string join(const std::vector<std::string>& v, std::string_view sep) {
  std::string out;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) out += sep;
    out += v[i];
  }
  return out;
}

std::string join_ids(const std::vector<int>& v, std::string_view sep = ", ") {
  std::vector<std::string> s;
  for (int i : v) s.push_back(std::to_string(i));
  return join(s, sep);
}

// Printable ASCII only, on one line, at most `max` characters: for YAML comments and
// messages built from published text.
std::string sanitize(std::string_view s, std::size_t max = 200) {
  std::string out;
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (out.size() >= max) {
      out += "...";
      break;
    }
    out += (u < 0x20 || u >= 0x7f) ? ' ' : c;
  }
  return out;
}

// A YAML double-quoted scalar (printable ASCII; anything else replaced).
std::string yaml_quote(std::string_view s) {
  std::string out = "\"";
  for (char c : sanitize(s, kMaxTextLength)) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
  return out;
}

bool read_whole_file(const std::string& path, std::string* out, std::string* error) {
  const files::ReadOptions options{.max_bytes = kMaxFileBytes, .regular_only = false};
  const files::ReadResult r = files::read_file(path, options, *out);
  if (r) return true;
  if (r.error == files::ReadError::kTooLarge) {
    *error = path + ": file too large (over " + std::to_string(kMaxFileBytes >> 20) + " MiB)";
  } else {
    *error = path + ": cannot read: " + r.reason(options);
  }
  return false;
}

using Errors = ErrorList<std::string>;

// ---------------------------------------------------------------------------------------
// JSON documents: nlohmann-json, strict where nlohmann is lenient (duplicate keys, depth).

struct JsonLimit {
  std::string message;
};

std::optional<json> parse_json(std::string_view text, const std::string& name, Errors& errors) {
  if (text.size() > kMaxFileBytes) {
    errors.add(name + ": file too large (over " + std::to_string(kMaxFileBytes >> 20) + " MiB)");
    return std::nullopt;
  }
  bool blank = true;
  for (char c : text)
    if (!(c == ' ' || c == '\t' || c == '\r' || c == '\n')) blank = false;
  if (blank) {
    errors.add(name + ": empty file (expected a JSON document from the web service)");
    return std::nullopt;
  }
  std::vector<std::set<std::string>> keys;  // one per open object
  json::parser_callback_t cb = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth > kMaxJsonDepth)
      throw JsonLimit{"nested deeper than " + std::to_string(kMaxJsonDepth) + " levels"};
    switch (event) {
      case json::parse_event_t::object_start:
        keys.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!keys.empty()) keys.pop_back();
        break;
      case json::parse_event_t::key: {
        const auto& k = parsed.get_ref<const std::string&>();
        if (!keys.empty() && !keys.back().insert(k).second)
          throw JsonLimit{"duplicate key \"" + sanitize(k, 64) + "\" in an object"};
        break;
      }
      default:
        break;
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), cb, /*allow_exceptions=*/true,
                       /*ignore_comments=*/false);
  } catch (const JsonLimit& e) {
    errors.add(name + ": invalid JSON: " + e.message);
  } catch (const json::exception& e) {
    std::string what = e.what();
    // "[json.exception.parse_error.101] parse error at line 1, column 5: ..." -> the message.
    if (auto close = what.find("] "); what.starts_with("[json.") && close != std::string::npos)
      what = what.substr(close + 2);
    errors.add(name + ": invalid JSON: " + sanitize(what, 300));
  }
  return std::nullopt;
}

std::string type_name(const json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "a list";
  return "an object";
}

// Reads the known fields of one JSON object, reporting each problem once.
class Fields {
 public:
  Fields(const json& obj, std::string where, Errors& errors)
      : obj_(obj), where_(std::move(where)), errors_(errors) {}

  const std::string& where() const { return where_; }
  void set_where(std::string w) { where_ = std::move(w); }
  void error(const std::string& msg) {
    errors_.add(where_ + ": " + msg);
    failed_ = true;
  }
  bool failed() const { return failed_; }
  void mark_failed() { failed_ = true; }

  const json* get(const char* key) const {
    auto it = obj_.find(key);
    if (it == obj_.end() || it->is_null()) return nullptr;
    return &*it;
  }
  bool has(const char* key) const { return get(key) != nullptr; }

  std::optional<int> integer(const char* key, bool required) {
    const json* v = get(key);
    if (!v) return missing<int>(key, required);
    if (v->is_number_unsigned() && v->get<std::uint64_t>() <= INT_MAX)
      return static_cast<int>(v->get<std::uint64_t>());
    if (v->is_number_integer() && !v->is_number_unsigned()) {
      error("'" + std::string(key) + "' must not be negative");
      return std::nullopt;
    }
    error("'" + std::string(key) + "' must be a whole number, not " +
          (v->is_number() ? "'" + v->dump() + "'" : type_name(*v)));
    return std::nullopt;
  }

  std::optional<std::string> string(const char* key, bool required, bool non_empty = true) {
    const json* v = get(key);
    if (!v) return missing<std::string>(key, required);
    if (!v->is_string()) {
      error("'" + std::string(key) + "' must be a string, not " + type_name(*v));
      return std::nullopt;
    }
    const auto& s = v->get_ref<const std::string&>();
    if (non_empty && s.empty()) {
      error("'" + std::string(key) + "' is empty");
      return std::nullopt;
    }
    if (s.size() > kMaxTextLength) {
      error("'" + std::string(key) + "' is longer than " + std::to_string(kMaxTextLength) +
            " characters");
      return std::nullopt;
    }
    return s;
  }

  std::optional<bool> boolean(const char* key, bool required) {
    const json* v = get(key);
    if (!v) return missing<bool>(key, required);
    if (!v->is_boolean()) {
      error("'" + std::string(key) + "' must be true or false, not " + type_name(*v));
      return std::nullopt;
    }
    return v->get<bool>();
  }

  // A list of strings (absent: empty list).
  std::vector<std::string> strings(const char* key) {
    std::vector<std::string> out;
    const json* v = get(key);
    if (!v) return out;
    if (!v->is_array()) {
      error("'" + std::string(key) + "' must be a list of strings, not " + type_name(*v));
      return out;
    }
    if (v->size() > kMaxEntriesPerSet) {
      error("'" + std::string(key) + "' has more than " + std::to_string(kMaxEntriesPerSet) +
            " entries");
      return out;
    }
    for (std::size_t i = 0; i < v->size(); ++i) {
      const json& e = (*v)[i];
      if (!e.is_string()) {
        error("'" + std::string(key) + "' entry " + std::to_string(i + 1) + " must be a string, not " +
              type_name(e));
        continue;
      }
      out.push_back(e.get<std::string>());
    }
    return out;
  }

 private:
  template <typename T>
  std::optional<T> missing(const char* key, bool required) {
    if (required) error("missing field '" + std::string(key) + "'");
    return std::nullopt;
  }

  const json& obj_;
  std::string where_;
  Errors& errors_;
  bool failed_ = false;
};

// A `urls` entry as published: non-empty, no spaces or control bytes. Lower-cased.
bool check_url_entry(const std::string& u, Fields& f) {
  if (u.empty() || u.size() > kMaxUrlLength || text::has_space_or_control(u)) {
    f.error("urls entry '" + sanitize(u, 80) + "' is not a host name pattern");
    return false;
  }
  return true;
}

std::vector<std::string> parse_url_list(Fields& f, const char* key) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const std::string& u : f.strings(key)) {
    if (!check_url_entry(u, f)) continue;
    std::string l = text::to_lower(u);
    if (seen.insert(l).second) out.push_back(std::move(l));
  }
  return out;
}

std::vector<Cidr> parse_ip_list(Fields& f, const char* key) {
  std::vector<Cidr> out;
  for (const std::string& s : f.strings(key)) {
    std::string err;
    auto c = parse_published_block(s, &err);
    if (!c) {
      f.error("'" + std::string(key) + "' entry '" + sanitize(s, 80) + "': " + err);
      continue;
    }
    out.push_back(*c);
  }
  return out;
}

// Special-purpose address space (RFC 6890 and friends) that no cloud service publishes.
struct Reserved {
  const char* block;
  const char* what;
};
constexpr Reserved kReserved[] = {
    {"0.0.0.0/8", "'this network'"},
    {"10.0.0.0/8", "private"},
    {"100.64.0.0/10", "carrier-grade NAT"},
    {"127.0.0.0/8", "loopback"},
    {"169.254.0.0/16", "link-local"},
    {"172.16.0.0/12", "private"},
    {"192.0.0.0/24", "IETF protocol assignments"},
    {"192.0.2.0/24", "documentation"},
    {"192.168.0.0/16", "private"},
    {"198.18.0.0/15", "benchmarking"},
    {"198.51.100.0/24", "documentation"},
    {"203.0.113.0/24", "documentation"},
    {"224.0.0.0/4", "multicast"},
    {"240.0.0.0/4", "reserved"},
    {"::/8", "loopback, unspecified, IPv4-mapped or reserved"},
    {"100::/64", "discard-only"},
    {"2001:db8::/32", "documentation"},
    {"fc00::/7", "unique local (private)"},
    {"fe80::/10", "link-local"},
    {"ff00::/8", "multicast"},
};

bool overlaps(const Cidr& a, const Cidr& b) {
  if (a.base.v6 != b.base.v6) return false;
  return a.contains(b.base) || b.contains(a.base);
}

// ---------------------------------------------------------------------------------------
// Host names

bool valid_label(std::string_view l) {
  if (l.empty() || l.size() > 63 || l.front() == '-' || l.back() == '-') return false;
  for (char c : l)
    if (!((c >= 'a' && c <= 'z') || text::is_digit(c) || c == '-')) return false;
  return true;
}

std::vector<std::string_view> labels_of(std::string_view host) {
  std::vector<std::string_view> out;
  if (!host.empty() && host.front() == '.') host.remove_prefix(1);
  std::size_t start = 0;
  for (;;) {
    std::size_t dot = host.find('.', start);
    out.push_back(host.substr(start, dot == std::string_view::npos ? dot : dot - start));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return out;
}

bool is_www_host(std::string_view host) {
  return host.starts_with("www.");
}

// ---------------------------------------------------------------------------------------
// Import: the generated policy

struct RuleOut {
  std::string id;
  std::string comment;  // one line, above the rule
  std::string description;
  std::vector<std::string> methods;
  int port = 80;
  std::vector<std::string> hosts;
  std::string verify;
  // tests
  std::string test_method;
  std::string test_url;
  std::string negative_method;  // empty: no negative test
  std::string negative_url;
  std::string negative_name;
};

std::string test_host(const std::vector<std::string>& hosts) {
  for (const auto& h : hosts)
    if (h.front() != '.') return h;
  return "test" + hosts.front();
}

std::string set_summary(const EndpointSet& s) {
  return s.service_area + ", " + s.category + (s.required ? ", required" : ", optional");
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Parsing

const EndpointSet* EndpointList::find(int id) const {
  for (const auto& s : sets)
    if (s.id == id) return &s;
  return nullptr;
}

std::optional<std::vector<PortRange>> parse_ports(std::string_view text, std::string* error) {
  auto fail = [&](std::string msg) -> std::optional<std::vector<PortRange>> {
    if (error) *error = std::move(msg);
    return std::nullopt;
  };
  std::vector<PortRange> out;
  auto number = [](std::string_view s, unsigned long& v) {
    return !s.empty() && s.size() <= 5 && text::parse_decimal(s, 65535, v) && v >= 1;
  };
  std::size_t start = 0;
  for (;;) {
    std::size_t comma = text.find(',', start);
    std::string_view item =
        text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item.empty()) return fail("'" + sanitize(text, 80) + "' has an empty item");
    std::size_t dash = item.find('-');
    unsigned long a = 0, b = 0;
    if (dash == std::string_view::npos) {
      if (!number(item, a))
        return fail("'" + sanitize(item, 40) + "' is not a port (1-65535)");
      b = a;
    } else {
      if (!number(item.substr(0, dash), a) || !number(item.substr(dash + 1), b))
        return fail("'" + sanitize(item, 40) + "' is not a port range (1-65535)");
      if (b < a) return fail("port range '" + sanitize(item, 40) + "' is reversed");
    }
    out.push_back(PortRange{static_cast<std::uint16_t>(a), static_cast<std::uint16_t>(b)});
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

std::optional<Cidr> parse_published_block(std::string_view text, std::string* error) {
  auto fail = [&](std::string msg) -> std::optional<Cidr> {
    if (error) *error = std::move(msg);
    return std::nullopt;
  };
  std::string err;
  auto c = Cidr::parse(text, &err);
  if (!c) return fail(err);
  const unsigned min = c->base.v6 ? kMinPrefixV6 : kMinPrefixV4;
  if (c->prefix < min)
    return fail("a /" + std::to_string(c->prefix) + " block is absurdly wide for a service (at least /" +
                std::to_string(min) + " expected): refusing it");
  for (const Reserved& r : kReserved) {
    auto block = Cidr::parse(r.block);
    if (block && overlaps(*c, *block))
      return fail("overlaps " + std::string(r.what) + " address space " + r.block +
                  ", not a public service range: refusing it");
  }
  return c;
}

// A top-level JSON list of records (an endpoint list, a /changes answer): parsed, and
// refused (the errors added and finished, nullopt) when it is no list, holds more than
// `max` records, or `wrong_kind` names what else it is ("" when it is the right kind).
struct RecordList {
  std::string_view must_be;  // "the endpoint list must be a JSON list of endpoint sets"
  std::string_view records;  // "endpoint sets"
  std::size_t max = 0;
};
template <typename Hint, typename WrongKind>
std::optional<json> parse_record_list(std::string_view text, const std::string& name,
                                      Errors& errors, const RecordList& shape, Hint not_a_list_hint,
                                      WrongKind wrong_kind) {
  auto doc = parse_json(text, name, errors);
  if (doc && !doc->is_array()) {
    errors.add(name + ": " + std::string(shape.must_be) + ", not " + type_name(*doc) +
               not_a_list_hint(*doc));
    doc.reset();
  } else if (doc && doc->size() > shape.max) {
    errors.add(name + ": more than " + std::to_string(shape.max) + " " +
               std::string(shape.records));
    doc.reset();
  } else if (doc && !doc->empty()) {
    if (std::string kind = wrong_kind((*doc)[0]); !kind.empty()) {
      errors.add(name + ": " + kind);
      doc.reset();
    }
  }
  if (!doc) errors.finish();
  return doc;
}

// True iff `rec` (the record at `where`) is a JSON object; otherwise the error is added:
// "WHERE: must be an object{object_is}, not TYPE".
bool object_record(const json& rec, const std::string& where, std::string_view object_is,
                   Errors& errors) {
  if (rec.is_object()) return true;
  errors.add(where + ": must be an object" + std::string(object_is) + ", not " + type_name(rec));
  return false;
}

EndpointsResult parse_endpoints(std::string_view text, const std::string& name) {
  EndpointsResult result;
  Errors errors(result.errors);
  const auto doc = parse_record_list(
      text, name, errors,
      {"the endpoint list must be a JSON list of endpoint sets", "endpoint sets", kMaxSets},
      [](const json& d) {
        return std::string(
            d.is_object() && d.contains("latest") ? " (this looks like a /version answer)" : "");
      },
      [](const json& first) {
        return std::string(first.is_object() && first.contains("endpointSetId") &&
                                   first.contains("disposition")
                               ? "this is a /changes answer, not an endpoint list (read it with "
                                 "'authbypass m365 diff CHANGES.json')"
                               : "");
      });
  if (!doc) return result;
  EndpointList list;
  list.file = name;
  list.sha256 = sha256_hex(text);
  std::map<int, std::size_t> seen;  // id -> record index
  for (std::size_t i = 0; i < doc->size(); ++i) {
    const json& rec = (*doc)[i];
    const std::string where = name + ": record " + std::to_string(i + 1);
    if (!object_record(rec, where, " (an endpoint set)", errors)) continue;
    Fields f(rec, where, errors);
    EndpointSet s;
    s.index = i + 1;
    auto id = f.integer("id", true);
    if (id) {
      s.id = *id;
      f.set_where(where + " (id " + std::to_string(*id) + ")");
      if (auto [it, fresh] = seen.emplace(*id, i + 1); !fresh)
        f.error("duplicate id " + std::to_string(*id) + " (also record " +
                std::to_string(it->second) + ")");
    }
    if (auto v = f.string("serviceArea", true)) s.service_area = sanitize(*v, 64);
    if (auto v = f.string("serviceAreaDisplayName", false, false)) s.service_area_display_name = *v;
    if (auto v = f.string("category", true)) s.category = sanitize(*v, 64);
    if (auto v = f.boolean("required", true)) s.required = *v;
    if (auto v = f.boolean("expressRoute", true)) s.express_route = *v;
    if (auto v = f.string("notes", false, false)) s.notes = *v;
    s.urls = parse_url_list(f, "urls");
    s.ips = parse_ip_list(f, "ips");
    for (auto [key, text_field, ranges] :
         {std::tuple{"tcpPorts", &s.tcp_ports_text, &s.tcp_ports},
          std::tuple{"udpPorts", &s.udp_ports_text, &s.udp_ports}}) {
      auto v = f.string(key, false);
      if (!v) continue;
      std::string err;
      auto p = parse_ports(*v, &err);
      if (!p) {
        f.error("'" + std::string(key) + "': " + err);
        continue;
      }
      *text_field = *v;
      *ranges = std::move(*p);
    }
    if (!f.failed()) list.sets.push_back(std::move(s));
  }
  if (errors.any()) {
    errors.finish();
    return result;
  }
  result.list = std::move(list);
  return result;
}

EndpointsResult load_endpoints_file(const std::string& path) {
  EndpointsResult r;
  std::string text, err;
  if (!read_whole_file(path, &text, &err)) {
    r.errors.push_back(err);
    return r;
  }
  return parse_endpoints(text, path);
}

bool valid_version(std::string_view v) {
  if (v.empty() || v.size() > 32) return false;
  for (char c : v)
    if (!(text::is_alpha(c) || text::is_digit(c) || c == '.' || c == '_' || c == '-')) return false;
  return true;
}

std::optional<std::string> canonical_instance(std::string_view name) {
  for (std::string_view i : kInstances)
    if (text::iequals(i, name)) return std::string(i);
  return std::nullopt;
}

std::optional<std::string> parse_version_answer(std::string_view text, const std::string& name,
                                                std::string* error, std::string_view instance) {
  auto fail = [&](std::string msg) -> std::optional<std::string> {
    if (error) *error = name + ": " + std::move(msg);
    return std::nullopt;
  };
  const std::string fetch = "; fetch https://endpoints.office.com/version/" +
                            std::string(instance) + "?clientrequestid=...";
  // A bare version (e.g. written by a script) names no instance, so it cannot be checked.
  std::string_view t = text;
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.remove_suffix(1);
  while (!t.empty() && (t.front() == ' ' || t.front() == '\n')) t.remove_prefix(1);
  if (valid_version(t))
    return fail("a bare version, not the web service's /version answer: give it with --version " +
                std::string(t) + ", or give the /version answer, which names its instance" + fetch);

  std::vector<std::string> errs;
  Errors errors(errs);
  auto doc = parse_json(text, name, errors);
  if (!doc) {
    if (error) *error = errs.empty() ? name + ": invalid" : errs.front();
    return std::nullopt;
  }
  const json* entry = nullptr;
  std::vector<std::string> instances;  // named in the answer
  auto instance_of = [](const json& e) -> std::optional<std::string> {
    auto it = e.find("instance");
    if (it == e.end() || !it->is_string()) return std::nullopt;
    return sanitize(it->get_ref<const std::string&>(), 40);
  };
  if (doc->is_object()) {
    if (!doc->contains("latest")) {
      if (doc->contains("id") && doc->contains("serviceArea"))
        return fail("an endpoint set, not a /version answer" + fetch);
      return fail("missing field 'latest': not a /version answer" + fetch);
    }
    auto i = instance_of(*doc);
    if (!i)
      return fail("the /version answer names no instance (no string 'instance' field)" + fetch);
    instances.push_back(*i);
    if (text::iequals(*i, instance)) entry = &*doc;
  } else if (doc->is_array()) {
    for (const json& e : *doc) {
      if (!e.is_object())
        return fail("not a /version answer (a list that holds no objects)" + fetch);
      if (e.contains("endpointSetId"))
        return fail("a /changes answer, not a /version answer" + fetch);
      if (e.contains("serviceArea") || e.contains("urls"))
        return fail("an endpoint list, not a /version answer" + fetch);
      auto i = instance_of(e);
      if (!i) return fail("an entry of the /version answer names no instance" + fetch);
      instances.push_back(*i);
      if (text::iequals(*i, instance)) entry = &e;
    }
  } else {
    return fail("not a /version answer (expected {\"instance\": ..., \"latest\": ...})");
  }
  if (!entry)
    return fail("the /version answer is for instance " + join(instances, ", ") +
                ", but the endpoint list is " + std::string(instance) + "'s (--instance)" + fetch);
  auto it = entry->find("latest");
  if (it == entry->end()) return fail("missing field 'latest' (expected the /version answer)");
  if (!it->is_string()) return fail("'latest' must be a string, not " + type_name(*it));
  const auto& v = it->get_ref<const std::string&>();
  if (!valid_version(v)) return fail("'latest' is not a version: '" + sanitize(v, 40) + "'");
  return v;
}

std::optional<std::string> load_version_file(const std::string& path, std::string* error,
                                             std::string_view instance) {
  std::string text;
  if (!read_whole_file(path, &text, error)) return std::nullopt;
  return parse_version_answer(text, path, error, instance);
}

namespace {

// Microsoft domains that only one family of instances uses.
struct CloudFamily {
  std::string_view name;                    // for messages
  std::vector<std::string_view> instances;  // the instances of the family
  std::vector<std::string_view> domains;
};

const std::vector<CloudFamily>& cloud_families() {
  static const std::vector<CloudFamily> kFamilies = {
      {"Worldwide",
       {"Worldwide"},
       {"office.com", "office365.com", "office.net", "outlook.com", "sharepoint.com", "lync.com",
        "microsoftonline.com", "teams.microsoft.com", "skype.com", "onmicrosoft.com"}},
      {"US Government",
       {"USGovDoD", "USGovGCCHigh"},
       {"office365.us", "microsoft.us", "microsoftonline.us", "skypeforbusiness.us",
        "sharepoint.us", "sharepoint-mil.us", "onmicrosoft.us", "office.us"}},
      {"China (21Vianet)",
       {"China"},
       {"outlook.cn", "microsoftonline.cn", "chinacloudapi.cn", "sharepoint.cn", "onmschina.cn",
        "office365.cn", "partner.office365.cn"}},
  };
  return kFamilies;
}

bool under_domain(std::string_view host, std::string_view domain) {
  if (host.starts_with("*.")) host.remove_prefix(2);
  return host == domain || (host.size() > domain.size() && host.ends_with(domain) &&
                            host[host.size() - domain.size() - 1] == '.');
}

}  // namespace

std::string check_list_instance(const EndpointList& list, std::string_view instance) {
  const auto& families = cloud_families();
  std::vector<std::size_t> count(families.size());
  std::vector<std::string> example(families.size());
  for (const auto& s : list.sets)
    for (const auto& u : s.urls)
      for (std::size_t f = 0; f < families.size(); ++f)
        for (std::string_view d : families[f].domains)
          if (under_domain(u, d)) {
            if (count[f]++ == 0) example[f] = sanitize(u, 80);
            break;
          }
  std::size_t best = 0;  // Worldwide when nothing says otherwise
  for (std::size_t f = 1; f < families.size(); ++f)
    if (count[f] > count[best]) best = f;
  const CloudFamily& got = families[best];
  if (std::find(got.instances.begin(), got.instances.end(), instance) != got.instances.end())
    return {};
  const std::string evidence =
      count[best] == 0 ? "none of its hosts is in a Microsoft 365 domain of another instance"
                       : std::to_string(count[best]) + " of its hosts are in " +
                             std::string(got.name) + " domains, e.g. " + example[best];
  std::vector<std::string> names(got.instances.begin(), got.instances.end());
  return list.file + ": this endpoint list is not one of the " + std::string(instance) +
         " instance: it looks like a " + std::string(got.name) + " list (" + evidence +
         "); give its instance with --instance " + join(names, " or ") +
         " and that instance's /version answer";
}

RevocationContent revocation_content(const EndpointSet& set) {
  RevocationContent c;
  c.common = text::iequals(set.service_area, "Common");
  for (const auto& u : set.urls) {
    auto h = policy_host(u, nullptr);
    if (!h || h->front() == '.' || is_www_host(*h)) continue;
    (looks_like_revocation_host(*h) ? c.revocation_hosts : c.other_hosts).push_back(*h);
  }
  return c;
}

std::string RevocationContent::describe() const {
  auto some = [](const std::vector<std::string>& v) {
    std::vector<std::string> first(
        v.begin(), v.begin() + static_cast<std::ptrdiff_t>(std::min<std::size_t>(v.size(), 3)));
    return join(first, ", ") + (v.size() > 3 ? ", ..." : "");
  };
  const std::size_t n = revocation_hosts.size() + other_hosts.size();
  const bool one = revocation_hosts.size() == 1;
  std::string out = std::to_string(revocation_hosts.size()) + " of " + std::to_string(n) +
                    " named hosts " + (one ? "is a" : "are") + " CRL/OCSP/CA-certificate host" +
                    (one ? "" : "s");
  if (!revocation_hosts.empty()) out += " (" + some(revocation_hosts) + ")";
  if (!other_hosts.empty()) out += ", beside " + some(other_hosts);
  return out;
}

// ---------------------------------------------------------------------------------------
// Selection

std::vector<const EndpointSet*> select_sets(const EndpointList& list, const Selection& sel,
                                            std::vector<std::string>* errors) {
  std::vector<std::string> local;
  std::vector<std::string>& errs = errors ? *errors : local;
  std::set<std::string> areas_present;
  for (const auto& s : list.sets) areas_present.insert(s.service_area);
  for (const auto& a : sel.service_areas) {
    bool found = false;
    for (const auto& p : areas_present) found = found || text::iequals(a, p);
    if (!found) {
      errs.push_back(list.file + ": no endpoint set has serviceArea '" + sanitize(a, 64) +
                     "' (the list has: " +
                     join(std::vector<std::string>(areas_present.begin(), areas_present.end()), ", ") +
                     ")");
    }
  }
  for (int id : sel.ids)
    if (!list.find(id)) errs.push_back(list.file + ": no endpoint set has id " + std::to_string(id));
  for (const auto& c : sel.categories) {
    if (!(text::iequals(c, "Optimize") || text::iequals(c, "Allow") || text::iequals(c, "Default")))
      errs.push_back("unknown category '" + sanitize(c, 64) + "' (Optimize, Allow or Default)");
  }
  std::vector<const EndpointSet*> out;
  for (const auto& s : list.sets) {
    if (!sel.service_areas.empty() &&
        std::none_of(sel.service_areas.begin(), sel.service_areas.end(),
                     [&](const std::string& a) { return text::iequals(a, s.service_area); }))
      continue;
    if (!sel.ids.empty() && !contains(sel.ids, s.id)) continue;
    if (!sel.categories.empty() &&
        std::none_of(sel.categories.begin(), sel.categories.end(),
                     [&](const std::string& c) { return text::iequals(c, s.category); }))
      continue;
    if (sel.required_only && !s.required) continue;
    out.push_back(&s);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Hosts

std::optional<std::string> policy_host(std::string_view url, std::string* reason) {
  auto fail = [&](std::string msg) -> std::optional<std::string> {
    if (reason) *reason = std::move(msg);
    return std::nullopt;
  };
  std::string s = text::to_lower(url);
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return fail("not an ASCII host name");
  bool suffix = false;
  if (s.starts_with("*.")) {
    suffix = true;
    s.erase(0, 2);
  }
  if (s.find('*') != std::string::npos) {
    if (s == "*" || (!suffix && s.front() == '*' && s.find('*', 1) == std::string::npos &&
                     s.size() > 1 && s[1] == '.'))
      return fail("matches every host");
    return fail("a wildcard inside a name (a tenant or region part) cannot be written as a "
                "policy host; add the real host by hand if it is needed");
  }
  if (!s.empty() && s.back() == '.') s.pop_back();
  if (s.empty() || s.size() > 253) return fail("not a host name");
  auto labels = labels_of(s);
  for (auto l : labels)
    if (!valid_label(l)) return fail("not a host name");
  const auto last = labels.back();
  if (std::all_of(last.begin(), last.end(), [](char c) { return text::is_digit(c); }))
    return fail("an IP address, not a host name");
  if (labels.size() < 2) {
    return fail(suffix ? "covers a whole top-level domain" : "not a fully qualified host name");
  }
  return suffix ? "." + s : s;
}

bool looks_like_revocation_host(std::string_view host) {
  for (auto l : labels_of(host))
    if (l.find("crl") != std::string_view::npos || l.find("ocsp") != std::string_view::npos ||
        l == "cacerts")
      return true;
  return false;
}

bool looks_like_ocsp_host(std::string_view host) {
  for (auto l : labels_of(host))
    if (l.find("ocsp") != std::string_view::npos) return true;
  return false;
}

// ---------------------------------------------------------------------------------------
// Import

namespace {

// The revocation set ids in force: the caller's, or the instance's known ones.
std::vector<int> revocation_ids_of(const ImportOptions& o) {
  if (o.revocation_ids) return *o.revocation_ids;
  return o.instance == kWorldwide ? kRevocationSetIds : std::vector<int>{};
}

// The sets of the list (other than `skip`) that list revocation hosts, by their content:
// those that are revocation sets and those that only mention such hosts.
std::string revocation_candidates(const EndpointList& list, const std::vector<int>& skip) {
  std::vector<std::string> yes, no;
  for (const auto& s : list.sets) {
    if (contains(skip, s.id)) continue;
    RevocationContent c = revocation_content(s);
    if (c.revocation_hosts.empty()) continue;
    (c.revocation_set() ? yes : no)
        .push_back(std::to_string(s.id) + " (" + s.service_area + ": " + c.describe() + ")");
  }
  std::string out = yes.empty() ? "no set of the list is a revocation set by its hosts"
                                : "revocation sets by their hosts: " + join(yes, "; ");
  if (!no.empty())
    out +=
        "; not revocation sets (never bypassed over plain HTTP), though they list such "
        "hosts: " +
        join(no, "; ");
  return out;
}

// True if the list names `host` (a policy host entry) as one of its URLs.
bool list_names(const EndpointList& list, const std::string& host) {
  for (const EndpointSet& s : list.sets) {
    for (const std::string& u : s.urls) {
      if (auto h = policy_host(u, nullptr); h && *h == host) return true;
    }
  }
  return false;
}

// Normalizes the allow_customer_domains entries; errors for entries that are not host
// entries, reach no customer-hosting domain, or are above one (".windows.net": every
// customer host of several services at once) without being a wildcard the list names.
std::vector<std::string> allowed_customer_hosts(const ImportOptions& o, const EndpointList& list,
                                                std::vector<std::string>& errors) {
  std::vector<std::string> out;
  for (const std::string& a : o.allow_customer_domains) {
    std::string why;
    auto h = policy_host(a, &why);
    if (!h) {
      errors.push_back("--allow-customer-domain '" + sanitize(a, 80) + "': " + why);
      continue;
    }
    const bool wildcard = h->front() == '.';
    const std::string name = wildcard ? h->substr(1) : *h;
    const auto zones = customer_hosting_zones(name, wildcard);
    if (zones.empty()) {
      errors.push_back("--allow-customer-domain '" + sanitize(a, 80) +
                       "' is in no customer-hosting domain: nothing to allow (the list is in "
                       "docs/m365.md)");
      continue;
    }
    std::vector<std::string> below;  // zones strictly under the entry
    for (const auto* z : zones) {
      const std::string_view d = z->domain;
      if (d.size() > name.size() && d.ends_with("." + name)) below.push_back("." + std::string(d));
    }
    if (!below.empty() && !list_names(list, *h)) {
      errors.push_back("--allow-customer-domain '" + sanitize(a, 80) +
                       "' is above the customer-hosting domain " + below.front() +
                       (below.size() > 1 ? " and " + std::to_string(below.size() - 1) + " more"
                                         : std::string()) +
                       " and the list names no such wildcard: it would allow every customer "
                       "host under them; name the hosts (or " +
                       below.front() + ")");
      continue;
    }
    out.push_back(*h);
  }
  return out;
}

// `allow` (a policy host entry) covers `host` (one too): equal, or ".d" above it.
bool allow_covers(std::string_view allow, std::string_view host) {
  if (allow == host) return true;
  if (allow.front() != '.') return false;
  std::string_view name = host.front() == '.' ? host.substr(1) : host;
  return name == allow.substr(1) || name.ends_with(allow);
}

// Empty when `host` may be imported; else why not. Records the allow entries used.
std::string customer_hosting_refusal(const std::string& host, const std::vector<std::string>& allow,
                                     std::set<std::string>& used) {
  const bool wildcard = host.front() == '.';
  const std::string_view name = wildcard ? std::string_view(host).substr(1) : host;
  auto zones = customer_hosting_zones(name, wildcard);
  if (zones.empty()) return {};
  for (const auto& a : allow) {
    if (allow_covers(a, host)) {
      used.insert(a);
      return {};
    }
  }
  std::string where =
      "." + std::string(zones.front()->domain) + " (" + std::string(zones.front()->service) + ")";
  if (zones.size() > 1) where += " and " + std::to_string(zones.size() - 1) + " more";
  const bool above = zones.front()->domain.size() > name.size();  // ".windows.net"
  return std::string(above ? "covers" : "is in") + " the customer-hosting domain " + where +
         ", where any customer of that service can host what it likes; "
         "--allow-customer-domain " +
         host + " imports it all the same";
}

}  // namespace

ImportResult import_policy(const EndpointList& list, const ImportOptions& o) {
  ImportResult r;
  auto& notes = r.notes;
  if (!valid_version(o.version))
    r.errors.push_back(o.version.empty()
                           ? "the endpoint-list version is required (the list itself carries none)"
                           : "'" + sanitize(o.version, 40) + "' is not an endpoint-list version");
  for (auto [what, value] : {std::pair{"owner", &o.owner}, std::pair{"ticket", &o.ticket}}) {
    if (value->size() > kMaxOptionLength || sanitize(*value, kMaxOptionLength) != *value)
      r.errors.push_back(std::string(what) + " must be printable text of at most " +
                         std::to_string(kMaxOptionLength) + " characters");
  }
  if (o.expires && *o.expires <= o.today)
    r.errors.push_back("expires " + format_date(*o.expires) + " is not after today (" +
                       format_date(o.today) + ")");
  const std::vector<std::string> allow = allowed_customer_hosts(o, list, r.errors);
  if (!r.errors.empty()) return r;
  if (std::string e = check_list_instance(list, o.instance); !e.empty()) {
    r.errors.push_back(e);
    return r;
  }
  const std::vector<int> revocation_ids = revocation_ids_of(o);

  std::vector<const EndpointSet*> sets;
  if (o.selection.empty()) {
    if (revocation_ids.empty()) {
      r.errors.push_back(list.file + ": the revocation sets of the " + o.instance +
                         " list are not known (84 and 125 are the Worldwide list's): name them "
                         "with --revocation-ids after reading the list; " +
                         revocation_candidates(list, {}));
      return r;
    }
    for (const auto& s : list.sets)
      if (contains(revocation_ids, s.id)) sets.push_back(&s);
    if (sets.empty()) {
      r.errors.push_back(list.file + ": the list has none of the revocation sets " +
                         join_ids(revocation_ids) +
                         " (has Microsoft renumbered them? name them with --revocation-ids; " +
                         revocation_candidates(list, {}) + ")");
      return r;
    }
  } else {
    sets = select_sets(list, o.selection, &r.errors);
    if (!r.errors.empty()) return r;
    if (sets.empty()) {
      r.errors.push_back(list.file + ": no endpoint set matches the selection");
      return r;
    }
  }

  std::vector<RuleOut> rules;
  std::vector<int> chosen_ids;
  std::set<std::string> allow_used;
  for (const EndpointSet* s : sets) {
    chosen_ids.push_back(s->id);
    const std::string set = "set " + std::to_string(s->id);
    const bool revocation = contains(revocation_ids, s->id);
    const RevocationContent content = revocation_content(*s);
    if (revocation && !content.revocation_set()) {
      r.errors.push_back(
          list.file + ": " + set + " is taken as a revocation set (--revocation-ids " +
          join_ids(revocation_ids, ",") + ") but is not one by its hosts (" +
          (content.common ? content.describe()
                          : "serviceArea '" + s->service_area + "', not Common") +
          "): a revocation set holds CRL/OCSP/CA-certificate hosts only, and nothing else is "
          "bypassed over plain HTTP. Has Microsoft renumbered its sets? " +
          revocation_candidates(list, revocation_ids));
      continue;
    }
    if (!revocation && content.revocation_set())
      notes.push_back(
          set + " (" + s->service_area + ") is a revocation set by its hosts (" +
          content.describe() + ") but not among the revocation sets " +
          (revocation_ids.empty() ? std::string("(none named)") : join_ids(revocation_ids)) +
          ": if Microsoft moved the revocation hosts there, name it with "
          "--revocation-ids");
    else if (!revocation && !content.revocation_hosts.empty())
      notes.push_back(set + " (" + s->service_area +
                      ") lists CRL/OCSP/CA-certificate hosts but "
                      "is not a revocation set (" +
                      content.describe() +
                      "): nothing of it is bypassed over plain HTTP; write a rule by hand for "
                      "a revocation host it needs");

    // Hosts.
    std::set<std::string> host_set;
    for (const auto& u : s->urls) {
      std::string why;
      auto h = policy_host(u, &why);
      if (!h) {
        notes.push_back(set + ": '" + sanitize(u, 80) + "' not imported: " + why);
        continue;
      }
      if (is_www_host(*h)) {
        notes.push_back(set + ": '" + *h + "' not imported: a general web site (all of it would "
                        "bypass), not a revocation endpoint; write a rule with path_prefix by "
                        "hand (see microsoft-pki-paths in config/policy.yaml)");
        continue;
      }
      if (std::string refusal = customer_hosting_refusal(*h, allow, allow_used); !refusal.empty()) {
        notes.push_back(set + ": '" + *h + "' not imported: it " + refusal);
        continue;
      }
      host_set.insert(*h);
    }
    // In a revocation set, "*.digicert.com" beside crl3.digicert.com, cacerts.digicert.com,
    // ... adds nothing the listed hosts need, and would bypass the CA's whole domain (its
    // web site too): narrowed to the listed hosts unless --keep-wildcards.
    if (revocation && !o.keep_wildcards) {
      std::vector<std::string> narrowed;
      for (const auto& suffix : host_set) {
        if (suffix.front() != '.') continue;
        std::vector<std::string> under;
        for (const auto& h : host_set)
          if (h.front() != '.' && h.ends_with(suffix)) under.push_back(h);
        if (under.empty()) continue;
        narrowed.push_back(suffix);
        notes.push_back(set + ": '*" + suffix + "' narrowed to the hosts the set lists under it (" +
                        join(under, ", ") + "): the wildcard would bypass the whole domain, its "
                        "web site included; --keep-wildcards keeps it as published");
      }
      for (const auto& n : narrowed) host_set.erase(n);
    }
    std::vector<std::string> hosts(host_set.begin(), host_set.end());
    for (const auto& u : s->urls) {
      auto h = policy_host(u, nullptr);
      if (!h || !is_www_host(*h)) continue;
      for (const auto& suffix : hosts)
        if (suffix.front() == '.' && h->ends_with(suffix))
          notes.push_back(set + ": '" + suffix + "' still covers " + *h +
                          " (Microsoft lists the whole domain): verify: revocation, checked by "
                          "the ICAP service, is what keeps its web pages out");
    }

    // Ports.
    bool has80 = false, has443 = false;
    for (const PortRange& p : s->tcp_ports) {
      if (!p.single()) {
        notes.push_back(set + ": TCP port range " + std::to_string(p.first) + "-" +
                        std::to_string(p.last) + " not imported: a policy lists single ports");
      } else if (p.first == 80) {
        has80 = true;
      } else if (p.first == 443) {
        has443 = true;
      } else {
        notes.push_back(set + ": TCP port " + std::to_string(p.first) +
                        " not imported: only 80 (plain HTTP" +
                        (revocation ? ", revocation data" : ", never for this set") +
                        ") and 443 (CONNECT, with --connect) go through the proxy");
      }
    }
    if (!s->udp_ports.empty())
      notes.push_back(set + ": UDP ports " + s->udp_ports_text +
                      " not imported: a proxy carries TCP only (see 'authbypass m365 ips')");
    if (hosts.empty()) {
      notes.push_back(
          set + " (" + s->service_area + "): no rule: " +
          (s->urls.empty()
               ? std::string("it lists no urls") +
                     (s->ips.empty() ? "" : ", only IP ranges (see 'authbypass m365 ips')")
               : std::string("none of its urls can be imported (see the notes)")));
      continue;
    }

    const std::string version_text = "endpoint list version " + o.version;
    const std::string comment =
        "Endpoint set " + std::to_string(s->id) + " (" + s->service_area +
        (s->service_area_display_name.empty() ? "" : ": " + s->service_area_display_name) + "), " +
        s->category + (s->required ? ", required" : ", optional") +
        (s->tcp_ports_text.empty() ? "" : ", TCP " + s->tcp_ports_text);
    const std::string base = "Microsoft 365 endpoint set " + std::to_string(s->id) + " (" +
                             set_summary(*s) + "), " + version_text;
    const std::string rid = "m365-" + std::to_string(s->id);

    if (revocation) {
      if (has80) {
        // OCSP responders by name: GET, HEAD and POST (verify: ocsp). Other named hosts and
        // the wildcards: GET and HEAD (verify: revocation, which takes OCSP answers too).
        // The wildcards' OCSP responders are not named (sr.symcd.com under *.symcd.com):
        // POST to them gets a rule of its own (verify: ocsp), so no request matches two.
        std::vector<std::string> ocsp, other, wildcards;
        for (const auto& h : hosts) {
          (h.front() != '.' && looks_like_ocsp_host(h) ? ocsp : other).push_back(h);
          if (h.front() == '.') wildcards.push_back(h);
        }
        if (!ocsp.empty()) {
          RuleOut ru;
          ru.id = rid + "-ocsp";
          ru.comment = comment;
          ru.description = base + ": OCSP requests (GET and POST) to its OCSP responders";
          ru.methods = {"GET", "HEAD", "POST"};
          ru.hosts = ocsp;
          ru.verify = "ocsp";
          ru.test_method = "POST";
          ru.test_url = "http://" + ocsp.front() + "/";
          rules.push_back(std::move(ru));
        }
        if (!other.empty()) {
          RuleOut ru;
          ru.id = rid;
          ru.comment = comment;
          ru.description = base + ": CRL and CA certificate downloads over HTTP";
          ru.methods = {"GET", "HEAD"};
          ru.hosts = other;
          ru.verify = "revocation";
          const std::string th = test_host(other);
          ru.test_method = "GET";
          ru.test_url = "http://" + th + "/authbypass-m365-test.crl";
          ru.negative_method = "GET";
          ru.negative_url = "http://" + th + ".evil.test/setup.exe";
          ru.negative_name = "a look-alike of " + th + " authenticates";
          rules.push_back(std::move(ru));
        }
        if (!wildcards.empty()) {
          RuleOut ru;
          ru.id = rid + "-ocsp-post";
          ru.comment = comment;
          ru.description = base +
                           ": OCSP requests (POST) to the OCSP responders under its "
                           "wildcard domains, which the set does not name";
          ru.methods = {"POST"};
          ru.hosts = wildcards;
          ru.verify = "ocsp";
          ru.test_method = "POST";
          ru.test_url = "http://" + test_host(wildcards) + "/";
          rules.push_back(std::move(ru));
        }
      } else {
        notes.push_back(set + " lists no TCP port 80: no plain-HTTP rule");
      }
      if (has443 && !o.connect)
        notes.push_back(set + ": TCP 443 not imported: a CONNECT tunnel is opaque (nothing can be "
                        "verified) and revocation data comes over HTTP; --connect adds CONNECT rules");
    } else {
      if (has80)
        notes.push_back(set + " (" + s->service_area + "): TCP 80 not imported: plain HTTP to an "
                        "endpoint that does not serve revocation data cannot be verified, so it "
                        "is never bypassed");
      if (has443 && !o.connect)
        notes.push_back(set + " (" + s->service_area + "): no rule: not a revocation set, and its "
                        "HTTPS traffic (TCP 443) would need a CONNECT rule: pass --connect to add one");
      if (!has80 && !has443)
        notes.push_back(set + " (" + s->service_area + "): no rule: no TCP port 80 or 443");
    }
    const bool connect_allowed = s->required || contains(o.selection.ids, s->id);
    if (has443 && o.connect && !connect_allowed)
      notes.push_back(set + " (" + s->service_area +
                      ", optional): no CONNECT rule: --connect "
                      "takes required sets only; name the set with --ids to add it");
    if (has443 && o.connect && connect_allowed) {
      RuleOut ru;
      ru.id = rid + "-connect";
      ru.comment = comment;
      ru.description = base + ": HTTPS (CONNECT tunnels, not verifiable) to its hosts";
      ru.methods = {"CONNECT"};
      ru.port = 443;
      ru.hosts = hosts;
      ru.verify = "none";
      ru.test_method = "CONNECT";
      ru.test_url = test_host(hosts) + ":443";
      rules.push_back(std::move(ru));
    }
  }
  if (!r.errors.empty()) return r;
  for (const auto& a : allow)
    if (!allow_used.contains(a))
      notes.push_back("--allow-customer-domain " + a + ": no host of the chosen sets is under it");
  if (rules.empty()) {
    r.errors.push_back(list.file + ": nothing to import from set" + (chosen_ids.size() == 1 ? " " : "s ") +
                       join_ids(chosen_ids) + " (see the notes)");
    return r;
  }

  // The YAML text.
  std::ostringstream y;
  y << "# Generated by `authbypass m365 import`: do not edit by hand, re-run the import.\n"
       "# Review the change (`authbypass m365 diff`, `git diff`), run `authbypass check`, then\n"
       "# install it beside the hand-edited policy (docs/m365.md).\n"
       "#\n"
       "# Source: Microsoft 365 endpoint list version "
    << o.version << "\n#   file " << sanitize(list.file, 200) << "\n#   sha256 " << list.sha256
    << "\n#   instance " << o.instance << ", endpoint sets " << join_ids(chosen_ids)
    << " (revocation sets: " << (revocation_ids.empty() ? "none" : join_ids(revocation_ids))
    << ")\n"
    << "# Options: owner " << (o.owner.empty() ? "-" : sanitize(o.owner)) << ", ticket "
    << (o.ticket.empty() ? "-" : sanitize(o.ticket)) << ", mode "
    << (o.shadow ? "shadow" : "enforce") << ", CONNECT " << (o.connect ? "yes" : "no")
    << ", expires " << (o.expires ? format_date(*o.expires) : "never")
    << ", customer-hosting domains allowed " << (allow.empty() ? "none" : join(allow, " ")) << "\n";
  if (!notes.empty()) {
    y << "#\n# Notes: what was not imported, and why (review these):\n";
    for (const auto& n : notes) y << "#   " << sanitize(n, 400) << "\n";
  }
  y << "\nversion: 1\n\nrules:\n";
  for (std::size_t i = 0; i < rules.size(); ++i) {
    const RuleOut& ru = rules[i];
    if (i) y << "\n";
    y << "  # " << sanitize(ru.comment, 300) << "\n";
    y << "  - id: " << ru.id << "\n";
    y << "    description: " << yaml_quote(ru.description) << "\n";
    if (!o.owner.empty()) y << "    owner: " << yaml_quote(o.owner) << "\n";
    if (!o.ticket.empty()) y << "    ticket: " << yaml_quote(o.ticket) << "\n";
    if (o.shadow) y << "    mode: shadow\n";
    if (o.expires) y << "    expires: " << format_date(*o.expires) << "\n";
    y << "    match:\n      methods: [" << join(ru.methods, ", ") << "]\n";
    y << "      ports: [" << ru.port << "]\n      hosts:\n";
    for (const auto& h : ru.hosts) y << "        - " << h << "\n";
    y << "    verify: " << ru.verify << "\n";
  }
  if (!o.shadow) {
    // Tests that hold in this file alone and beside a hand-edited policy: bypass for each
    // rule (without naming the rule: an earlier hand-written rule may decide), and
    // authenticate for look-alikes and for the CONNECT this file does not allow.
    y << "\ntests:\n";
    for (const RuleOut& ru : rules) {
      y << "  - name: " << yaml_quote(ru.id + ": " + ru.test_method + " " + ru.test_url + " bypasses")
        << "\n    request: {method: " << ru.test_method << ", url: " << yaml_quote(ru.test_url)
        << "}\n    expect: bypass\n";
      if (!ru.negative_method.empty()) {
        y << "  - name: " << yaml_quote(ru.id + ": " + ru.negative_name) << "\n    request: {method: "
          << ru.negative_method << ", url: " << yaml_quote(ru.negative_url)
          << "}\n    expect: authenticate\n";
      }
    }
    if (!o.connect) {
      const std::string th = test_host(rules.front().hosts);
      y << "  - name: " << yaml_quote("no CONNECT tunnel to " + th + " without authentication")
        << "\n    request: {method: CONNECT, url: " << yaml_quote(th + ":443")
        << "}\n    expect: authenticate\n";
    }
  }
  std::string policy = y.str();

  // Self-check: the file must load, and its tests must pass, or nothing is returned.
  LoadResult loaded = load_policy_text(policy, o.output_name);
  if (!loaded.ok()) {
    for (const auto& e : loaded.errors)
      r.errors.push_back("generated policy does not load (a bug, please report it): " + e);
    return r;
  }
  TestReport tests = run_policy_tests(*loaded.policy, o.today);
  for (const auto& t : tests.results)
    if (!t.passed)
      r.errors.push_back("generated policy fails its own test (a bug, please report it): " +
                         t.test->name + ": " + t.failure);
  if (!r.errors.empty()) return r;
  for (const RuleOut& ru : rules) r.rule_ids.push_back(ru.id);
  r.policy = std::move(policy);
  return r;
}

// ---------------------------------------------------------------------------------------
// Firewall lists

std::optional<IpFormat> parse_ip_format(std::string_view name) {
  if (name == "plain") return IpFormat::kPlain;
  if (name == "nft") return IpFormat::kNft;
  if (name == "iptables-restore") return IpFormat::kIptablesRestore;
  if (name == "squid-acl") return IpFormat::kSquidAcl;
  return std::nullopt;
}

bool valid_list_name(std::string_view name) {
  if (name.empty() || name.size() > 28 || !text::is_alpha(name.front())) return false;
  for (char c : name)
    if (!(text::is_alpha(c) || text::is_digit(c) || c == '_' || c == '-')) return false;
  return true;
}

IpsResult firewall_list(const EndpointList& list, const IpsOptions& o) {
  IpsResult r;
  if (!o.ipv4 && !o.ipv6) r.errors.push_back("neither IPv4 nor IPv6 chosen");
  if (o.format == IpFormat::kIptablesRestore && o.ipv4 && o.ipv6)
    r.errors.push_back("iptables-restore takes one address family: choose --ipv4 (iptables-restore) "
                       "or --ipv6 (ip6tables-restore)");
  if (!o.name.empty() && !valid_list_name(o.name))
    r.errors.push_back("bad name '" + sanitize(o.name, 40) +
                       "' (a letter, then letters, digits, _ or -, at most 28)");
  if (!o.version.empty() && !valid_version(o.version))
    r.errors.push_back("'" + sanitize(o.version, 40) + "' is not an endpoint-list version");
  if (!r.errors.empty()) return r;

  std::vector<const EndpointSet*> sets;
  if (o.selection.empty()) {
    for (const auto& s : list.sets) sets.push_back(&s);
  } else {
    sets = select_sets(list, o.selection, &r.errors);
    if (!r.errors.empty()) return r;
  }
  std::vector<Cidr> blocks;
  std::vector<int> ids;
  for (const EndpointSet* s : sets) {
    bool any = false;
    for (const Cidr& c : s->ips) {
      if (c.base.v6 ? !o.ipv6 : !o.ipv4) continue;
      blocks.push_back(c);
      any = true;
    }
    if (any) ids.push_back(s->id);
  }
  if (blocks.empty()) {
    r.errors.push_back(list.file + ": the chosen endpoint sets list no " +
                       std::string(o.ipv4 && o.ipv6 ? "IP" : o.ipv4 ? "IPv4" : "IPv6") +
                       " ranges");
    return r;
  }
  r.input_blocks = blocks.size();
  r.blocks = aggregate_cidrs(blocks);
  std::size_t n4 = 0, n6 = 0;
  for (const Cidr& c : r.blocks) (c.base.v6 ? n6 : n4)++;

  std::ostringstream out;
  auto header = [&](std::string_view prefix) {
    out << prefix << "Generated by `authbypass m365 ips`: Microsoft 365 endpoint list"
        << (o.version.empty() ? "" : " version " + o.version) << "\n"
        << prefix << "  file " << sanitize(list.file, 200) << ", sha256 " << list.sha256 << "\n"
        << prefix << "  endpoint sets " << join_ids(ids) << "\n"
        << prefix << "  " << r.blocks.size() << " ranges (" << n4 << " IPv4, " << n6
        << " IPv6) aggregated from " << r.input_blocks << " published\n";
  };
  switch (o.format) {
    case IpFormat::kPlain:
      for (const Cidr& c : r.blocks) out << c.to_string() << "\n";
      break;
    case IpFormat::kNft: {
      header("# ");
      out << "# A set definition: include it inside a table, e.g.\n"
             "#   table inet filter { include \"/etc/nftables.d/m365.nft\"\n"
             "#     chain forward { ... ip daddr @m365_v4 accept ... } }\n";
      const std::string name = o.name.empty() ? "m365" : o.name;
      for (bool v6 : {false, true}) {
        if (v6 ? !o.ipv6 : !o.ipv4) continue;
        out << "set " << name << (v6 ? "_v6" : "_v4") << " {\n"
            << "\ttype " << (v6 ? "ipv6_addr" : "ipv4_addr") << "\n\tflags interval\n";
        std::vector<std::string> elems;
        for (const Cidr& c : r.blocks)
          if (c.base.v6 == v6) elems.push_back(c.to_string());
        if (!elems.empty()) {
          out << "\telements = {\n";
          for (std::size_t i = 0; i < elems.size(); ++i)
            out << "\t\t" << elems[i] << (i + 1 < elems.size() ? ",\n" : "\n");
          out << "\t}\n";
        }
        out << "}\n";
      }
      break;
    }
    case IpFormat::kIptablesRestore: {
      const std::string chain = o.name.empty() ? "M365" : o.name;
      header("# ");
      out << "# Load with " << (o.ipv6 ? "ip6tables-restore" : "iptables-restore")
          << " --noflush; jump to the chain, e.g. -A FORWARD -j " << chain << "\n"
          << "*filter\n:" << chain << " - [0:0]\n";
      for (const Cidr& c : r.blocks) out << "-A " << chain << " -d " << c.to_string() << " -j ACCEPT\n";
      out << "COMMIT\n";
      break;
    }
    case IpFormat::kSquidAcl: {
      const std::string name = o.name.empty() ? "m365" : o.name;
      header("# ");
      for (const Cidr& c : r.blocks) out << "acl " << name << " dst " << c.to_string() << "\n";
      break;
    }
  }
  r.text = out.str();
  return r;
}

// ---------------------------------------------------------------------------------------
// Diff and /changes

namespace {

std::vector<std::string> minus(const std::set<std::string>& a, const std::set<std::string>& b) {
  std::vector<std::string> out;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

std::set<std::string> ip_texts(const EndpointSet& s) {
  std::set<std::string> out;
  for (const Cidr& c : s.ips) out.insert(c.to_string());
  return out;
}

std::string computed_impact(const SetChange& c) {
  std::vector<std::string> parts;
  const bool au = !c.added_urls.empty(), ai = !c.added_ips.empty();
  if (au && ai) parts.push_back("AddedIpAndUrl");
  else if (au) parts.push_back("AddedUrl");
  else if (ai) parts.push_back("AddedIp");
  if (!c.removed_urls.empty() || !c.removed_ips.empty()) parts.push_back("RemovedIpOrUrl");
  for (const auto& a : c.attributes)
    if (a.name == "expressRoute") parts.push_back("ChangedIsExpressRoute");
  if (parts.empty()) parts.push_back("OtherNonPriorityChanges");
  return join(parts, ",");
}

void sort_changes(std::vector<SetChange>& v) {
  std::stable_sort(v.begin(), v.end(), [](const SetChange& a, const SetChange& b) {
    const std::string la = text::to_lower(a.service_area), lb = text::to_lower(b.service_area);
    // Unknown service areas last.
    if (a.service_area.empty() != b.service_area.empty()) return b.service_area.empty();
    return std::tie(la, a.endpoint_set_id, a.version, a.change_id) <
           std::tie(lb, b.endpoint_set_id, b.version, b.change_id);
  });
}

std::string scalar_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  return v.dump();
}

}  // namespace

Patch diff_endpoints(const EndpointList& old_list, const EndpointList& new_list) {
  Patch p;
  p.from = old_list.file;
  p.to = new_list.file;
  std::set<int> ids;
  for (const auto& s : old_list.sets) ids.insert(s.id);
  for (const auto& s : new_list.sets) ids.insert(s.id);
  for (int id : ids) {
    const EndpointSet* a = old_list.find(id);
    const EndpointSet* b = new_list.find(id);
    SetChange c;
    c.endpoint_set_id = id;
    c.service_area = (b ? b : a)->service_area;
    const std::set<std::string> ua = a ? std::set<std::string>(a->urls.begin(), a->urls.end())
                                       : std::set<std::string>{};
    const std::set<std::string> ub = b ? std::set<std::string>(b->urls.begin(), b->urls.end())
                                       : std::set<std::string>{};
    const std::set<std::string> ia = a ? ip_texts(*a) : std::set<std::string>{};
    const std::set<std::string> ib = b ? ip_texts(*b) : std::set<std::string>{};
    c.added_urls = minus(ub, ua);
    c.removed_urls = minus(ua, ub);
    c.added_ips = minus(ib, ia);
    c.removed_ips = minus(ia, ib);
    if (!a) {
      c.disposition = "add";
    } else if (!b) {
      c.disposition = "remove";
    } else {
      auto attr = [&](const char* name, const std::string& x, const std::string& y) {
        if (x != y) c.attributes.push_back(AttributeChange{name, x, y});
      };
      auto tf = [](bool v) { return std::string(v ? "true" : "false"); };
      attr("serviceArea", a->service_area, b->service_area);
      attr("category", a->category, b->category);
      attr("required", tf(a->required), tf(b->required));
      attr("expressRoute", tf(a->express_route), tf(b->express_route));
      attr("tcpPorts", a->tcp_ports_text, b->tcp_ports_text);
      attr("udpPorts", a->udp_ports_text, b->udp_ports_text);
      attr("notes", sanitize(a->notes, 300), sanitize(b->notes, 300));
      if (c.added_urls.empty() && c.removed_urls.empty() && c.added_ips.empty() &&
          c.removed_ips.empty() && c.attributes.empty())
        continue;
      c.disposition = "change";
    }
    c.impact = computed_impact(c);
    p.changes.push_back(std::move(c));
  }
  sort_changes(p.changes);
  return p;
}

ChangesResult parse_changes(std::string_view text, const std::string& name, const EndpointList* areas) {
  ChangesResult result;
  Errors errors(result.errors);
  const auto doc = parse_record_list(
      text, name, errors,
      {"a /changes answer must be a JSON list of change records", "change records", kMaxSets * 10},
      [](const json&) { return std::string(); },
      [](const json& first) {
        return std::string(first.is_object() && !first.contains("endpointSetId") &&
                                   first.contains("serviceArea")
                               ? "this is an endpoint list, not a /changes answer (to compare two "
                                 "endpoint lists: 'authbypass m365 diff OLD.json NEW.json')"
                               : "");
      });
  if (!doc) return result;
  Patch p;
  p.to = name;
  for (std::size_t i = 0; i < doc->size(); ++i) {
    const json& rec = (*doc)[i];
    const std::string where = name + ": change record " + std::to_string(i + 1);
    if (!object_record(rec, where, "", errors)) continue;
    Fields f(rec, where, errors);
    SetChange c;
    if (auto id = f.integer("id", true)) {
      c.change_id = *id;
      f.set_where(where + " (id " + std::to_string(*id) + ")");
    }
    if (auto v = f.integer("endpointSetId", true)) c.endpoint_set_id = *v;
    if (auto v = f.string("disposition", true)) {
      c.disposition = text::to_lower(*v);
      if (c.disposition != "add" && c.disposition != "remove" && c.disposition != "change")
        f.error("disposition '" + sanitize(*v, 40) + "' is not Add, Remove or Change");
    }
    if (auto v = f.string("version", true)) {
      if (!valid_version(*v)) f.error("'" + sanitize(*v, 40) + "' is not a version");
      c.version = *v;
    }
    if (auto v = f.string("impact", false)) c.impact = sanitize(*v, 64);
    for (auto [key, urls, ips] : {std::tuple{"add", &c.added_urls, &c.added_ips},
                                  std::tuple{"remove", &c.removed_urls, &c.removed_ips}}) {
      const json* part = f.get(key);
      if (!part) continue;
      if (!part->is_object()) {
        f.error("'" + std::string(key) + "' must be an object, not " + type_name(*part));
        continue;
      }
      Fields pf(*part, f.where() + ": " + key, errors);
      *urls = parse_url_list(pf, "urls");
      for (const Cidr& ip : parse_ip_list(pf, "ips")) ips->push_back(ip.to_string());
      if (std::string_view(key) == "add")
        if (auto d = pf.string("effectiveDate", false)) c.effective_date = sanitize(*d, 16);
      if (pf.failed()) f.mark_failed();
    }
    const json* prev = f.get("previous");
    const json* cur = f.get("current");
    for (auto [key, obj] : {std::pair{"previous", prev}, std::pair{"current", cur}}) {
      if (obj && !obj->is_object()) f.error("'" + std::string(key) + "' must be an object");
    }
    std::set<std::string> attr_names;
    for (const json* obj : {prev, cur})
      if (obj && obj->is_object())
        for (auto it = obj->begin(); it != obj->end(); ++it) attr_names.insert(it.key());
    for (const std::string& k : attr_names) {
      auto get = [&](const json* obj) {
        if (!obj || !obj->is_object() || !obj->contains(k)) return std::string();
        return sanitize(scalar_text((*obj)[k]), 300);
      };
      std::string a = get(prev), b = get(cur);
      if (k == "serviceArea") {
        c.service_area = !b.empty() ? b : a;
        if (a == b || a.empty()) continue;  // a new set's area is not a change of area
      }
      // previous/current of an added or removed set describe it; only a change changes them.
      if (a != b && c.disposition == "change")
        c.attributes.push_back(AttributeChange{sanitize(k, 64), a, b});
    }
    if (c.service_area.empty() && areas)
      if (const EndpointSet* s = areas->find(c.endpoint_set_id)) c.service_area = s->service_area;
    if (c.impact.empty()) c.impact = computed_impact(c);
    if (!f.failed()) {
      if (c.version > p.to_version) p.to_version = c.version;
      if (p.from_version.empty() || c.version < p.from_version) p.from_version = c.version;
      p.changes.push_back(std::move(c));
    }
  }
  if (errors.any()) {
    errors.finish();
    return result;
  }
  sort_changes(p.changes);
  result.patch = std::move(p);
  return result;
}

ChangesResult load_changes_file(const std::string& path, const EndpointList* areas) {
  ChangesResult r;
  std::string text, err;
  if (!read_whole_file(path, &text, &err)) {
    r.errors.push_back(err);
    return r;
  }
  return parse_changes(text, path, areas);
}

namespace {

struct Summary {
  std::size_t added = 0, removed = 0, changed = 0;
  std::size_t urls_added = 0, urls_removed = 0, ips_added = 0, ips_removed = 0;
  std::vector<int> revocation;  // revocation sets touched
};

Summary summarize(const Patch& p, const std::vector<int>& revocation_ids) {
  Summary s;
  for (const auto& c : p.changes) {
    (c.disposition == "add" ? s.added : c.disposition == "remove" ? s.removed : s.changed)++;
    s.urls_added += c.added_urls.size();
    s.urls_removed += c.removed_urls.size();
    s.ips_added += c.added_ips.size();
    s.ips_removed += c.removed_ips.size();
    if (contains(revocation_ids, c.endpoint_set_id) && !contains(s.revocation, c.endpoint_set_id))
      s.revocation.push_back(c.endpoint_set_id);
  }
  std::sort(s.revocation.begin(), s.revocation.end());
  return s;
}

std::string plural(std::size_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

}  // namespace

std::string patch_text(const Patch& p, const std::vector<int>& revocation_ids) {
  std::ostringstream out;
  const bool changes_answer = p.from.empty();
  if (changes_answer) {
    out << "Microsoft 365 endpoint changes in " << sanitize(p.to, 200);
    if (!p.to_version.empty())
      out << " (version" << (p.from_version == p.to_version ? " " + p.to_version
                                                             : "s " + p.from_version + " .. " + p.to_version)
          << ")";
    out << "\n";
  } else {
    out << "Microsoft 365 endpoint changes: " << sanitize(p.from, 200)
        << (p.from_version.empty() ? "" : " (version " + p.from_version + ")") << " -> "
        << sanitize(p.to, 200) << (p.to_version.empty() ? "" : " (version " + p.to_version + ")")
        << "\n";
  }
  if (p.changes.empty()) {
    out << "no changes\n";
    return out.str();
  }
  std::string area = "\x01";
  for (const SetChange& c : p.changes) {
    if (c.service_area != area) {
      area = c.service_area;
      out << "\n" << (area.empty() ? "(service area not given)" : sanitize(area, 64)) << ":\n";
    }
    out << "  set " << c.endpoint_set_id << " "
        << (c.disposition == "add" ? "added" : c.disposition == "remove" ? "removed" : "changed");
    std::vector<std::string> info;
    if (c.change_id) info.push_back("change " + std::to_string(c.change_id));
    if (!c.version.empty()) info.push_back("version " + c.version);
    if (!c.impact.empty()) info.push_back("impact " + c.impact);
    if (!c.effective_date.empty()) info.push_back("effective " + c.effective_date);
    if (!info.empty()) out << " (" << join(info, ", ") << ")";
    if (contains(revocation_ids, c.endpoint_set_id))
      out << "  [revocation set: re-run 'authbypass m365 import', review, 'authbypass check']";
    out << "\n";
    for (const auto& u : c.added_urls) out << "    + url  " << u << "\n";
    for (const auto& u : c.removed_urls) out << "    - url  " << u << "\n";
    for (const auto& i : c.added_ips) out << "    + ip   " << i << "\n";
    for (const auto& i : c.removed_ips) out << "    - ip   " << i << "\n";
    for (const auto& a : c.attributes)
      out << "    ~ " << a.name << ": " << (a.previous.empty() ? "(none)" : a.previous) << " -> "
          << (a.current.empty() ? "(none)" : a.current) << "\n";
  }
  Summary s = summarize(p, revocation_ids);
  out << "\nSummary: " << plural(s.added, "set", "sets") << " added, " << s.removed << " removed, "
      << s.changed << " changed; " << plural(s.urls_added, "URL", "URLs") << " added, "
      << s.urls_removed << " removed; " << plural(s.ips_added, "IP range", "IP ranges") << " added, "
      << s.ips_removed << " removed\n";
  if (!s.revocation.empty())
    out << "Revocation sets changed: " << join_ids(s.revocation)
        << " (the generated bypass policy needs a new import)\n";
  if (s.ips_added + s.ips_removed > 0)
    out << "Firewall lists changed: regenerate them with 'authbypass m365 ips'\n";
  return out.str();
}

std::string patch_json(const Patch& p, const std::vector<int>& revocation_ids) {
  ordered_json j;
  if (!p.from.empty())
    j["from"] = ordered_json{{"file", p.from}, {"version", p.from_version}};
  j["to"] = ordered_json{{"file", p.to}, {"version", p.to_version}};
  Summary s = summarize(p, revocation_ids);
  j["summary"] = ordered_json{{"setsAdded", s.added},          {"setsRemoved", s.removed},
                              {"setsChanged", s.changed},      {"urlsAdded", s.urls_added},
                              {"urlsRemoved", s.urls_removed}, {"ipsAdded", s.ips_added},
                              {"ipsRemoved", s.ips_removed},   {"revocationSetsChanged", s.revocation}};
  ordered_json changes = ordered_json::array();
  for (const SetChange& c : p.changes) {
    ordered_json e;
    if (c.change_id) e["id"] = c.change_id;
    e["endpointSetId"] = c.endpoint_set_id;
    e["serviceArea"] = c.service_area;
    e["disposition"] = c.disposition;
    if (!c.version.empty()) e["version"] = c.version;
    e["impact"] = c.impact;
    e["revocationSet"] = contains(revocation_ids, c.endpoint_set_id);
    if (!c.added_urls.empty() || !c.added_ips.empty() || !c.effective_date.empty()) {
      ordered_json add;
      if (!c.effective_date.empty()) add["effectiveDate"] = c.effective_date;
      add["urls"] = c.added_urls;
      add["ips"] = c.added_ips;
      e["add"] = add;
    }
    if (!c.removed_urls.empty() || !c.removed_ips.empty())
      e["remove"] = ordered_json{{"urls", c.removed_urls}, {"ips", c.removed_ips}};
    if (!c.attributes.empty()) {
      ordered_json prev = ordered_json::object(), cur = ordered_json::object();
      for (const auto& a : c.attributes) {
        prev[a.name] = a.previous;
        cur[a.name] = a.current;
      }
      e["previous"] = prev;
      e["current"] = cur;
    }
    changes.push_back(std::move(e));
  }
  j["changes"] = std::move(changes);
  // error_handler replace: names and texts were sanitized, but never throw on output.
  return j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

}  // namespace authbypass::m365
