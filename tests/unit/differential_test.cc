// Differential property test: random policies and random requests; the engine's
// Policy::decide must agree with a deliberately naive reference matcher written here from the
// policy semantics (docs/architecture.md "Policy") — a linear scan over the rules in file order
// with straightforward checks.
//
// The reference works from the generator's own description of each rule (not from the
// loaded Policy): it applies the defaults (GET/HEAD, port 80), upper-cases methods,
// lower-cases and strips one trailing dot from host entries, tells names from IP/CIDR
// entries, does label-boundary suffix matching and CIDR containment bit by bit, CONNECT
// (no path: path criteria never hold), expiry, shadow (reported, never deciding) and the
// 1024-byte regex subject bound (docs/architecture.md "Regex cost bound"). It reuses the request's
// parsed, normalized fields (host, host_kind, host_ip, port, method, match_path, user agent, src):
// URL normalization has its own tests (request_test.cc).
//
// Fixed seed by default; AUTHBYPASS_DIFF_SEED=N picks another, AUTHBYPASS_DIFF_POLICIES=N
// changes how many random policies are tried (each gets AUTHBYPASS_DIFF_REQUESTS requests).
// A mismatch prints the seed, the policy YAML, the request and both decisions.

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "authbypass/decision.h"
#include "authbypass/policy.h"
#include "authbypass/request.h"

namespace authbypass {
namespace {

// ------------------------------------------------------------------------------------------
// Vocabulary

// Host entries as written in a policy, with what the reference expects them to mean.
// Non-ASCII entries carry their punycode form (the only normalization the reference
// does not compute itself).
struct HostWord {
  const char* text;
  const char* idn = nullptr;  // normalized form of a non-ASCII name
};
const HostWord kPolicyHosts[] = {
    {"crl.example.com"},   {".example.com"},      {"Example.ORG"},        {".Sub.Example.Net."},
    {"example.net"},       {"a.b.c.test"},        {".c.test"},            {".test"},
    {"localhost"},         {"CRL.Example.Com."},  {"www.example.org"},    {".ocsp.example.com"},
    {"xn--bcher-kva.example"}, {"bücher.example", "xn--bcher-kva.example"},
    {".bücher.example", "xn--bcher-kva.example"},
    {"192.0.2.7"},         {"192.0.2.0/24"},      {"10.0.0.0/8"},         {"13.107.0.0/16"},
    {"0.0.0.0/0"},         {"2001:db8::/32"},     {"2001:db8::7"},        {"::ffff:192.0.2.7"},
    {"::/0"},              {"198.51.100.128/25"}, {"10.1.2.3"},           {"2001:DB8:0:0::8/127"},
    {"192.0.2.6/31"},      {"172.16.0.0/12"},
};

const char* const kRequestHosts[] = {
    "crl.example.com", "CRL.EXAMPLE.COM.", "www.example.com", "example.com", "evilexample.com",
    "example.com.evil.test", "sub.example.net", "a.sub.example.net", "Sub.Example.Net.",
    "example.net", "notsub.example.net", "example.org", "EXAMPLE.org.", "www.example.org",
    "a.b.c.test", "b.c.test", "c.test", "xc.test", "x.test", "test", "localhost",
    "ocsp.example.com", "a.ocsp.example.com", "xocsp.example.com", "bücher.example",
    "www.bücher.example", "BÜCHER.example", "xn--bcher-kva.example", "192.0.2.7", "192.0.2.6",
    "192.0.2.200", "10.1.2.3", "13.107.5.6", "198.51.100.200", "198.51.100.1", "172.31.255.255",
    "[2001:db8::7]", "[2001:DB8:0:0::7]", "[2001:db8::8]", "[2001:db8::9]", "[::ffff:192.0.2.7]",
    "[2001:db9::1]", "[::1]", "3221225991", "0300.0.2.7", "0xc0.0.2.7", "192.0.2",
    "example.com..", "-", "ex_ample.com", "a..b.test",
};

const char* const kMethodsPolicy[] = {"GET", "HEAD", "POST", "CONNECT", "get", "Put", "OPTIONS"};
const char* const kMethodsRequest[] = {"GET", "GET", "GET", "HEAD", "POST", "CONNECT",
                                       "PUT", "get", "OPTIONS", "head"};
const int kPorts[] = {80, 443, 8080, 8443, 81};

const char* const kPathPrefix[] = {"/pki/", "/PKI/", "/ocsp", "/", "/msdownload/update/",
                                   "/a/b", "/crl"};
const char* const kPathSuffix[] = {".crl", ".CRT", ".cab", "/", ".crl.", "x.crl", ".p7c"};
const char* const kPathRegex[] = {
    R"(^/pki/[^/]+\.crl$)", R"(.*\.crl)", R"(/ocsp(/.*)?)", R"(^/a.*|^/p.*)", R"(/PKI/.*)",
    R"([a-z0-9/]+\.crt)", R"(/msdownload/update/v3/static/trustedr/en/[a-z]+\.cab)",
    R"(^/crl/\d+\.crl$)", R"(/(pki|crl)/.*)",
};
const char* const kUaLiteral[] = {"MSOIDCRL", "cryptoapi", "Mozilla/4.0 (compatible", "curl",
                                  "Ünï"};
const char* const kUaRegex[] = {
    R"(^Microsoft-CryptoAPI/(6\.[0-3]|10\.0)$)", R"(MSOIDCRL [0-9]+)", R"(^curl/)",
    R"(msie|firefox)", R"(^Mozilla/4\.0 \(compatible)", R"(cryptoapi/10)",
};
const char* const kSrcPolicy[] = {"10.0.0.0/8", "192.0.2.0/24", "2001:db8::/32", "0.0.0.0/0",
                                  "::/0", "10.1.2.3", "::ffff:10.1.2.3"};
const char* const kSrcRequest[] = {"", "", "10.1.2.3", "10.200.0.1", "192.0.2.7", "2001:db8::1",
                                   "::ffff:10.1.2.3", "172.16.0.1", "2001:db9::1"};
const char* const kExpires[] = {"2026-11-24", "2026-11-25", "2026-11-26", "2030-01-01",
                                "2020-02-29"};
const char* const kDates[] = {"2026-11-25", "2026-11-25", "2026-11-25", "2026-11-24",
                              "2026-11-26", "2031-01-01"};

const char* const kPathStart[] = {"",        "/",          "/pki/",   "/PKI/",     "/pki/sub/",
                                  "/ocsp/",  "/ocsp",      "/a/b/",   "/crl/",     "/a/./pki/",
                                  "/pki/../", "/x/../pki/", "/%2e%2e/pki/", "/pki%2f", "/%70ki/",
                                  "/msdownload/update/v3/static/trustedr/en/", "//pki/",
                                  "/pki/./", "/ab", "/CRL/"};
const char* const kPathEnd[] = {"x.crl", "X.CRL", "x.crl.", "x.exe", "x.crt", "ca.CRT",
                                "authrootstl.cab", "123.crl", "%78.crl", "x%2ecrl", "x.crl%00",
                                "x%zz.crl", "x.crl%3f", "x.crl%3B", "x%5c.crl", "x\\.crl", "",
                                "..", ".", "MFEwTzBN", "a.p7c", "x.crl%", "x%2Fy.crl", "ü.crl",
                                "%C3%BC.crl"};
const char* const kParams[] = {"", "", "", "", ";jsessionid=1", ";.crl", ";"};
const char* const kQueries[] = {"", "", "", "", "?x=.crl", "?", "?a=b&c=/pki/x.crl", "#frag",
                                "?q#f.crl"};
const char* const kUserinfo[] = {"", "", "", "", "", "user:pw@", "crl.example.com@",
                                 "a@b@", "@"};
const char* const kPortSuffix[] = {"", "", "", "", ":80", ":8080", ":443", ":81", ":0",
                                   ":65536", ":", ":080"};
const char* const kSchemes[] = {"http", "http", "http", "http", "HTTP", "https", "Http", "ftp"};

std::string AsciiUpperForGen(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return out;
}

std::string LongUa() {
  std::string s = "Mozilla/4.0 (compatible; MSIE 6.0; MSOIDCRL 7.250; ";
  s.append(1100, 'x');
  return s + ")";
}

const std::vector<std::string>& Uas() {
  static const std::vector<std::string> uas = {
      "",
      "Microsoft-CryptoAPI/10.0",
      "Microsoft-CryptoAPI/6.1",
      "microsoft-cryptoapi/6.1",
      "Microsoft-CryptoAPI/6.4",
      "Microsoft-CryptoAPI/10.0 extra",
      "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 6.1; MSOIDCRL 7.250.4303.0)",
      "Mozilla/4.0 (compatible; MSIE 6.0; MSOIDCRL)",
      "msoidcrl 1",
      "curl/8.1",
      "xcurl/8.1",
      "Mozilla/5.0 Firefox/121.0",
      "Mozilla/5.0",
      "ÜNÏcode agent MSOIDCRL 9",
      "Ünïcode agent",
      LongUa(),
  };
  return uas;
}

// ------------------------------------------------------------------------------------------
// Random policies

struct GenRule {
  std::string id;
  bool shadow = false;
  bool mode_written = false;
  std::optional<std::string> expires;
  std::optional<std::vector<std::string>> methods;  // as written
  std::optional<std::vector<int>> ports;
  std::vector<HostWord> hosts;
  std::vector<std::string> path_prefix, path_suffix, path_regex, user_agent, user_agent_regex,
      src;
  bool flow = false;  // `match` written as a YAML flow mapping
  std::string verify;
  std::string description;
};

class Rng {
 public:
  explicit Rng(std::uint64_t seed) : g_(seed) {}
  std::size_t below(std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(g_); }
  bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(g_) < p; }
  template <typename T, std::size_t N>
  const T& pick(const T (&a)[N]) {
    return a[below(N)];
  }
  template <typename T>
  const T& pick(const std::vector<T>& v) {
    return v[below(v.size())];
  }

 private:
  std::mt19937_64 g_;
};

template <typename T, std::size_t N>
std::vector<std::string> SomeOf(Rng& rng, const T (&a)[N], std::size_t max = 3) {
  std::vector<std::string> out;
  const std::size_t n = 1 + rng.below(max);
  for (std::size_t i = 0; i < n; ++i) out.emplace_back(rng.pick(a));
  return out;
}

GenRule RandomRule(Rng& rng, std::size_t index) {
  GenRule r;
  r.id = "r" + std::to_string(index);
  if (rng.chance(0.3)) {
    r.shadow = true;
    r.mode_written = true;
  } else if (rng.chance(0.2)) {
    r.mode_written = true;  // "mode: enforce" written out
  }
  if (rng.chance(0.25)) r.expires = rng.pick(kExpires);
  if (rng.chance(0.35)) r.methods = SomeOf(rng, kMethodsPolicy, 3);
  if (rng.chance(0.3)) {
    std::vector<int> p;
    const std::size_t n = 1 + rng.below(2);
    for (std::size_t i = 0; i < n; ++i) p.push_back(rng.pick(kPorts));
    r.ports = p;
  }
  // At least one narrowing criterion (the loader rejects a match without one).
  bool narrowed = false;
  while (!narrowed) {
    if (rng.chance(0.75)) {
      const std::size_t n = 1 + rng.below(3);
      for (std::size_t i = 0; i < n; ++i) r.hosts.push_back(rng.pick(kPolicyHosts));
      narrowed = true;
    }
    if (rng.chance(0.25)) r.path_prefix = SomeOf(rng, kPathPrefix, 2), narrowed = true;
    if (rng.chance(0.3)) r.path_suffix = SomeOf(rng, kPathSuffix, 2), narrowed = true;
    if (rng.chance(0.12)) r.path_regex = SomeOf(rng, kPathRegex, 2), narrowed = true;
    if (rng.chance(0.15)) r.user_agent = SomeOf(rng, kUaLiteral, 2), narrowed = true;
    if (rng.chance(0.12)) r.user_agent_regex = SomeOf(rng, kUaRegex, 2), narrowed = true;
    if (rng.chance(0.15)) r.src = SomeOf(rng, kSrcPolicy, 2), narrowed = true;
  }
  r.flow = rng.chance(0.4);
  static const char* const kVerify[] = {"", "", "none", "crl", "revocation"};
  r.verify = rng.pick(kVerify);
  if (rng.chance(0.3)) r.description = "generated rule " + std::to_string(index);
  return r;
}

// YAML single-quoted scalar.
std::string Q(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

std::string ListYaml(const std::vector<std::string>& v, bool quote = true) {
  std::string out = "[";
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) out += ", ";
    out += quote ? Q(v[i]) : v[i];
  }
  return out + "]";
}

std::string ToYaml(const std::vector<GenRule>& rules) {
  std::string y = "version: 1\nrules:\n";
  for (const GenRule& r : rules) {
    y += "  - id: " + r.id + "\n";
    if (!r.description.empty()) y += "    description: " + Q(r.description) + "\n";
    if (r.mode_written) y += std::string("    mode: ") + (r.shadow ? "shadow" : "enforce") + "\n";
    if (r.expires) y += "    expires: " + *r.expires + "\n";
    std::vector<std::pair<std::string, std::string>> keys;
    if (r.methods) keys.emplace_back("methods", ListYaml(*r.methods, false));
    if (r.ports) {
      std::vector<std::string> p;
      for (int x : *r.ports) p.push_back(std::to_string(x));
      keys.emplace_back("ports", ListYaml(p, false));
    }
    if (!r.hosts.empty()) {
      std::vector<std::string> h;
      for (const HostWord& w : r.hosts) h.emplace_back(w.text);
      keys.emplace_back("hosts", ListYaml(h));
    }
    if (!r.path_prefix.empty()) keys.emplace_back("path_prefix", ListYaml(r.path_prefix));
    if (!r.path_suffix.empty()) keys.emplace_back("path_suffix", ListYaml(r.path_suffix));
    if (!r.path_regex.empty()) keys.emplace_back("path_regex", ListYaml(r.path_regex));
    if (!r.user_agent.empty()) keys.emplace_back("user_agent", ListYaml(r.user_agent));
    if (!r.user_agent_regex.empty())
      keys.emplace_back("user_agent_regex", ListYaml(r.user_agent_regex));
    if (!r.src.empty()) keys.emplace_back("src", ListYaml(r.src));
    if (r.flow) {
      y += "    match: {";
      for (std::size_t i = 0; i < keys.size(); ++i) {
        if (i) y += ", ";
        y += keys[i].first + ": " + keys[i].second;
      }
      y += "}\n";
    } else {
      y += "    match:\n";
      for (const auto& [k, v] : keys) y += "      " + k + ": " + v + "\n";
    }
    if (!r.verify.empty()) y += "    verify: " + r.verify + "\n";
  }
  return y;
}

// ------------------------------------------------------------------------------------------
// Random requests

struct GenRequest {
  std::string method, url, ua, src;
  std::string date;
};

// A request from the whole vocabulary, tricky forms included.
GenRequest RandomRequest(Rng& rng) {
  GenRequest q;
  q.method = rng.pick(kMethodsRequest);
  const std::string host = rng.pick(kRequestHosts);
  if (q.method == "CONNECT") {
    static const char* const kConnectPorts[] = {":443", ":443", ":80", ":8443", "", ":0", ":"};
    q.url = host + rng.pick(kConnectPorts);
    if (rng.chance(0.05)) q.url = "http://" + q.url + "/";  // absolute-form CONNECT: malformed
  } else {
    std::string path = std::string(rng.pick(kPathStart)) + rng.pick(kPathEnd);
    if (rng.chance(0.03)) path = "/pki/" + std::string(1100, 'a') + ".crl";  // regex bound
    const bool odd = rng.chance(0.3);
    q.url = std::string(odd ? rng.pick(kSchemes) : "http") + "://" +
            (odd ? rng.pick(kUserinfo) : "") + host + (odd ? rng.pick(kPortSuffix) : "") + path +
            rng.pick(kParams) + rng.pick(kQueries);
  }
  q.ua = rng.pick(Uas());
  q.src = rng.pick(kSrcRequest);
  q.date = rng.pick(kDates);
  return q;
}

std::string RandomCase(Rng& rng, std::string s) {
  if (rng.chance(0.7)) return s;
  for (char& c : s) {
    if (rng.chance(0.5) && c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return s;
}

// A request aimed at one rule of the policy (so that a good share of the requests
// matches something), then roughened with the same tricky forms.
GenRequest AimedRequest(Rng& rng, const GenRule& r) {
  GenRequest q = RandomRequest(rng);
  if (r.methods && rng.chance(0.8)) {
    q.method = AsciiUpperForGen(rng.pick(*r.methods));
  } else if (rng.chance(0.8)) {
    q.method = rng.chance(0.8) ? "GET" : "HEAD";
  }
  int port = 80;
  if (r.ports && rng.chance(0.8)) port = rng.pick(*r.ports);
  std::string host = rng.pick(kRequestHosts);
  if (!r.hosts.empty() && rng.chance(0.85)) {
    const HostWord& w = rng.pick(r.hosts);
    std::string t = w.text;
    if (t.find(':') != std::string::npos) {
      t = "[" + t.substr(0, t.find('/')) + "]";
    } else if (t.find('/') != std::string::npos) {
      t = t.substr(0, t.find('/'));
    } else if (t[0] == '.') {
      static const char* const kSub[] = {"", "www.", "a.b.", "x", "crl."};
      t = rng.pick(kSub) + t.substr(1);
    }
    host = RandomCase(rng, t);
    if (rng.chance(0.1) && host.back() != '.' && host.back() != ']') host += '.';
  }
  std::string path;
  if (!r.path_prefix.empty() && rng.chance(0.8)) path = rng.pick(r.path_prefix);
  if (path.empty() || path.back() != '/') path += rng.chance(0.5) ? "/" : "";
  if (path.empty()) path = "/";
  path += rng.chance(0.5) ? "sub/" : "";
  path += rng.chance(0.5) ? "name" : "";
  if (!r.path_suffix.empty() && rng.chance(0.8)) {
    path += rng.pick(r.path_suffix);
  } else {
    path += rng.pick(kPathEnd);
  }
  if (rng.chance(0.15)) path = std::string(rng.pick(kPathStart)) + rng.pick(kPathEnd);
  if (q.method == "CONNECT") {
    q.url = host + ":" + std::to_string(port);
  } else {
    const bool odd = rng.chance(0.2);
    const bool https = port == 443 && rng.chance(0.5);
    std::string port_text = (port == 80 || (https && port == 443)) && rng.chance(0.7)
                                ? ""
                                : ":" + std::to_string(port);
    q.url = std::string(https ? "https" : odd ? rng.pick(kSchemes) : "http") + "://" +
            (odd ? rng.pick(kUserinfo) : "") + host + port_text + RandomCase(rng, path) +
            (odd ? rng.pick(kParams) : "") + (odd ? rng.pick(kQueries) : "");
  }
  if (!r.user_agent.empty() && rng.chance(0.7)) {
    q.ua = "Agent " + RandomCase(rng, rng.pick(r.user_agent)) + " 7";
  }
  if (rng.chance(0.05)) {
    // Arbitrary bytes around a literal: every ASCII case pair and some non-ASCII bytes.
    std::string ua;
    const std::size_t n = rng.below(40);
    for (std::size_t i = 0; i < n; ++i) ua += static_cast<char>(0x20 + rng.below(0xE0));
    if (!r.user_agent.empty()) ua += RandomCase(rng, rng.pick(r.user_agent));
    for (std::size_t i = 0; i < n; ++i) ua += static_cast<char>(0x20 + rng.below(0xE0));
    if (rng.chance(0.1)) ua.append(4097, 'u');  // over the 4096-byte bound: malformed
    q.ua = ua;
  }
  if (!r.src.empty() && rng.chance(0.7)) {
    std::string s = rng.pick(r.src);
    q.src = s.substr(0, s.find('/'));
  }
  if (rng.chance(0.6)) q.date = "2026-11-25";
  return q;
}

// ------------------------------------------------------------------------------------------
// The reference matcher

std::string AsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}
std::string AsciiUpper(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return out;
}

std::vector<std::string> Labels(std::string_view name) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : name) {
    if (c == '.') {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

// An address as 128 bits (IPv4 in the first 32) and its family.
struct RefAddr {
  bool v6 = false;
  std::array<std::uint8_t, 16> b{};
};

std::optional<RefAddr> RefParseAddr(const std::string& text) {
  RefAddr a;
  if (text.find(':') != std::string::npos) {
    a.v6 = true;
    if (inet_pton(AF_INET6, text.c_str(), a.b.data()) != 1) return std::nullopt;
  } else {
    if (inet_pton(AF_INET, text.c_str(), a.b.data()) != 1) return std::nullopt;
  }
  return a;
}

bool Bit(const std::array<std::uint8_t, 16>& b, int i) { return (b[i / 8] >> (7 - i % 8)) & 1; }

// "ADDR[/N]" contains `addr`: same family, first N bits equal.
bool RefCidrContains(const std::string& cidr, bool v6, const std::array<std::uint8_t, 16>& addr) {
  const std::size_t slash = cidr.find('/');
  const auto base = RefParseAddr(cidr.substr(0, slash));
  if (!base) {
    ADD_FAILURE() << "vocabulary CIDR does not parse: " << cidr;
    return false;
  }
  if (base->v6 != v6) return false;
  const int bits = slash == std::string::npos ? (v6 ? 128 : 32) : std::stoi(cidr.substr(slash + 1));
  for (int i = 0; i < bits; ++i)
    if (Bit(base->b, i) != Bit(addr, i)) return false;
  return true;
}

bool RefHostMatches(const HostWord& w, const Request& q) {
  const std::string text = w.text;
  const bool is_ip = text.find(':') != std::string::npos || text.find('/') != std::string::npos ||
                     text.find_first_not_of("0123456789.") == std::string::npos;
  if (is_ip) {
    if (q.host_kind == HostKind::kName) return false;
    return RefCidrContains(text, q.host_kind == HostKind::kIpv6, q.host_ip.bytes);
  }
  if (q.host_kind != HostKind::kName) return false;
  std::string name = text;
  const bool suffix = name[0] == '.';
  if (suffix) name.erase(0, 1);
  if (w.idn != nullptr) {
    name = w.idn;
  } else {
    name = AsciiLower(name);
    if (!name.empty() && name.back() == '.') name.pop_back();
  }
  if (!suffix) return q.host == name;
  // Label boundaries: the entry's labels are the host's last labels.
  const auto hl = Labels(q.host);
  const auto nl = Labels(name);
  if (nl.size() > hl.size()) return false;
  return std::equal(nl.rbegin(), nl.rend(), hl.rbegin());
}

constexpr std::size_t kRegexSubjectMax = 1024;

bool RefRegex(const std::string& pattern, const std::string& subject, bool whole) {
  if (subject.size() > kRegexSubjectMax) return false;  // a fault: no match
  static std::map<std::string, std::regex> cache;
  auto it = cache.find(pattern);
  if (it == cache.end()) {
    it = cache.emplace(pattern, std::regex(pattern, std::regex::ECMAScript | std::regex::icase))
             .first;
  }
  return whole ? std::regex_match(subject, it->second) : std::regex_search(subject, it->second);
}

// Why the rule does not match (empty when it matches).
std::string RefRuleMismatch(const GenRule& r, const Request& q, Date today) {
  if (r.expires && !(today < *parse_date(*r.expires))) return "expired";
  std::vector<std::string> methods = {"GET", "HEAD"};
  if (r.methods) {
    methods.clear();
    for (const auto& m : *r.methods) methods.push_back(AsciiUpper(m));
  }
  if (std::find(methods.begin(), methods.end(), q.method) == methods.end()) return "method";
  std::vector<int> ports = r.ports.value_or(std::vector<int>{80});
  if (std::find(ports.begin(), ports.end(), q.port) == ports.end()) return "port";
  if (!r.hosts.empty() && std::none_of(r.hosts.begin(), r.hosts.end(), [&](const HostWord& w) {
        return RefHostMatches(w, q);
      }))
    return "host";
  const bool connect = q.method == "CONNECT";
  const bool has_path = !r.path_prefix.empty() || !r.path_suffix.empty() || !r.path_regex.empty();
  if (has_path) {
    if (connect) return "path (CONNECT has none)";
    if (!q.match_path_ok) return "path (unmatchable)";
    const std::string p(q.match_path);
    if (!r.path_prefix.empty() &&
        std::none_of(r.path_prefix.begin(), r.path_prefix.end(), [&](const std::string& s) {
          const std::string l = AsciiLower(s);
          return p.size() >= l.size() && p.compare(0, l.size(), l) == 0;
        }))
      return "path_prefix";
    if (!r.path_suffix.empty() &&
        std::none_of(r.path_suffix.begin(), r.path_suffix.end(), [&](const std::string& s) {
          const std::string l = AsciiLower(s);
          return p.size() >= l.size() && p.compare(p.size() - l.size(), l.size(), l) == 0;
        }))
      return "path_suffix";
    if (!r.path_regex.empty() &&
        std::none_of(r.path_regex.begin(), r.path_regex.end(),
                     [&](const std::string& re) { return RefRegex(re, p, true); }))
      return "path_regex";
  }
  if (!r.user_agent.empty() &&
      std::none_of(r.user_agent.begin(), r.user_agent.end(), [&](const std::string& s) {
        return AsciiLower(q.user_agent).find(AsciiLower(s)) != std::string::npos;
      }))
    return "user_agent";
  if (!r.user_agent_regex.empty() &&
      std::none_of(r.user_agent_regex.begin(), r.user_agent_regex.end(),
                   [&](const std::string& re) { return RefRegex(re, std::string(q.user_agent), false); }))
    return "user_agent_regex";
  if (!r.src.empty()) {
    if (!q.src) return "src (none given)";
    if (std::none_of(r.src.begin(), r.src.end(), [&](const std::string& c) {
          return RefCidrContains(c, q.src->v6, q.src->bytes);
        }))
      return "src";
  }
  return {};
}

struct RefDecision {
  bool bypass = false;
  std::string rule;
  std::vector<std::string> shadow;  // every matching active shadow rule, file order
  std::vector<std::string> why;     // per rule
};

RefDecision RefDecide(const std::vector<GenRule>& rules, const Request& q, Date today) {
  RefDecision d;
  if (!q.ok()) return d;  // malformed: never matches
  for (const GenRule& r : rules) {
    std::string why = RefRuleMismatch(r, q, today);
    d.why.push_back(r.id + (r.shadow ? "(shadow)" : "") + ": " + (why.empty() ? "MATCH" : why));
    if (!why.empty()) continue;
    if (r.shadow) {
      d.shadow.push_back(r.id);
    } else if (!d.bypass) {
      d.bypass = true;
      d.rule = r.id;
    }
  }
  return d;
}

// ------------------------------------------------------------------------------------------

std::uint64_t EnvOr(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return std::strtoull(v, nullptr, 0);
}

std::string Show(const Decision& d) {
  std::string s = d.bypass() ? "bypass by " + (d.rule ? d.rule->id : std::string("?"))
                             : "authenticate";
  s += ", shadow [";
  for (std::size_t i = 0; i < d.shadow_count; ++i) s += (i ? "," : "") + d.shadow[i]->id;
  s += "]";
  if (d.shadow_truncated) s += " (truncated)";
  return s;
}

std::string Show(const RefDecision& d) {
  std::string s = d.bypass ? "bypass by " + d.rule : "authenticate";
  s += ", shadow [";
  for (std::size_t i = 0; i < d.shadow.size(); ++i) s += (i ? "," : "") + d.shadow[i];
  return s + "]";
}

// Empty when the engine's decision equals the reference's.
std::string Compare(const Decision& e, const RefDecision& r) {
  if (e.bypass() != r.bypass) return "verdict";
  if (e.bypass() && (e.rule == nullptr || e.rule->id != r.rule)) return "deciding rule";
  if (!e.bypass() && e.rule != nullptr) return "rule set without bypass";
  const std::size_t want = std::min<std::size_t>(r.shadow.size(), Decision::kMaxShadow);
  if (e.shadow_count != want) return "shadow count";
  for (std::size_t i = 0; i < want; ++i)
    if (e.shadow[i] == nullptr || e.shadow[i]->id != r.shadow[i]) return "shadow list";
  if (e.shadow_truncated != (r.shadow.size() > Decision::kMaxShadow)) return "shadow_truncated";
  return {};
}

struct Stats {
  std::size_t decisions = 0, bypass = 0, shadowed = 0, malformed = 0, scan_all = 0;
};

class Differential : public ::testing::Test {
 protected:
  // Checks one request against one policy, with a fresh Request and with a long-lived one
  // (the engine keeps per-Request memos of user_agent_regex outcomes).
  void Check(const std::vector<GenRule>& rules, const std::string& yaml, const Policy& policy,
             const GenRequest& g, Request& warm, std::uint64_t seed, Stats& st) {
    const RequestInput in{.method = g.method, .url = g.url, .user_agent = g.ua, .src = g.src};
    Request fresh;
    fresh.parse(in);
    warm.parse(in);
    const Date today = *parse_date(g.date);
    const RefDecision ref = RefDecide(rules, fresh, today);
    ++st.decisions;
    st.bypass += ref.bypass;
    st.shadowed += !ref.shadow.empty();
    st.malformed += !fresh.ok();
    for (Request* q : {&fresh, &warm}) {
      const Decision d = policy.decide(*q, today);
      const std::string diff = Compare(d, ref);
      if (diff.empty()) continue;
      if (++failures_ <= 5) {
        std::string why;
        for (const auto& w : ref.why) why += "    " + w + "\n";
        ADD_FAILURE() << "engine and reference disagree (" << diff << ", "
                      << (q == &fresh ? "fresh" : "reused") << " Request)\n"
                      << "  seed: AUTHBYPASS_DIFF_SEED=" << seed << "\n"
                      << "  request: " << g.method << " " << g.url << "\n"
                      << "  user_agent: '" << g.ua << "'  src: '" << g.src
                      << "'  date: " << g.date << "\n"
                      << "  parsed: " << (q->ok() ? "ok" : "malformed: " + std::string(q->error()))
                      << " host='" << q->host << "' port=" << q->port << " match_path='"
                      << q->match_path << "' ok=" << q->match_path_ok << "\n"
                      << "  engine:    " << Show(d) << "\n"
                      << "  reference: " << Show(ref) << "\n"
                      << "  reference per rule:\n"
                      << why << "  policy:\n"
                      << yaml;
      }
    }
  }

  std::size_t failures_ = 0;
};

TEST_F(Differential, EngineAgreesWithNaiveReference) {
  const std::uint64_t seed = EnvOr("AUTHBYPASS_DIFF_SEED", 20261125);
  const std::size_t n_policies = EnvOr("AUTHBYPASS_DIFF_POLICIES", 2000);
  const std::size_t n_requests = EnvOr("AUTHBYPASS_DIFF_REQUESTS", 40);
  Rng rng(seed);
  Stats st;
  Request warm;  // reused across every policy and request
  const auto t0 = std::chrono::steady_clock::now();
  for (std::size_t p = 0; p < n_policies && failures_ < 5; ++p) {
    std::vector<GenRule> rules;
    const std::size_t shape = rng.below(100);
    std::size_t n_rules = 1 + rng.below(12);
    if (shape < 2) n_rules = 20 + rng.below(10);  // many shadow rules: truncation at 16
    for (std::size_t i = 0; i < n_rules; ++i) {
      rules.push_back(RandomRule(rng, i));
      if (shape < 2) {
        rules.back().shadow = rules.back().mode_written = rng.chance(0.85);
        rules.back().expires.reset();
      }
    }
    if (shape == 2) {
      // More than 256 rules listing one host: the engine's fallback to checking every rule.
      ++st.scan_all;
      for (std::size_t i = 0; i < 300; ++i) {
        GenRule r;
        r.id = "bulk" + std::to_string(i);
        r.hosts = {HostWord{i % 2 ? ".example.com" : "crl.example.com"}};
        r.path_suffix = {i % 3 ? ".crl" : ".crt"};
        r.shadow = r.mode_written = i % 7 == 0;
        if (i % 11 == 0) r.expires = "2026-11-25";
        rules.insert(rules.begin() + static_cast<std::ptrdiff_t>(rng.below(rules.size() + 1)), r);
      }
    }
    const std::string yaml = ToYaml(rules);
    LoadResult loaded = load_policy_text(yaml, "differential.yaml");
    if (!loaded.ok()) {
      std::string errors;
      for (const auto& e : loaded.errors) errors += e + "\n";
      ADD_FAILURE() << "generated policy did not load (seed " << seed << "):\n"
                    << errors << yaml;
      ++failures_;
      continue;
    }
    for (std::size_t k = 0; k < n_requests; ++k) {
      const GenRequest g = rng.chance(0.6) ? AimedRequest(rng, rng.pick(rules)) : RandomRequest(rng);
      Check(rules, yaml, *loaded.policy, g, warm, seed, st);
    }
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf(
      "differential: seed %llu, %zu policies (%zu with >256 rules per host), %zu decisions "
      "(x2: fresh and reused Request): %zu bypass, %zu with shadow hits, %zu malformed; %.2f s\n",
      static_cast<unsigned long long>(seed), n_policies, st.scan_all, st.decisions, st.bypass,
      st.shadowed, st.malformed, secs);
  EXPECT_EQ(failures_, 0u);
  // The generator must exercise both outcomes substantially, or the test proves little.
  EXPECT_GT(st.bypass, st.decisions / 20);
  EXPECT_GT(st.decisions - st.bypass - st.malformed, st.decisions / 5);
  EXPECT_GT(st.shadowed, st.decisions / 50);
}


// ------------------------------------------------------------------------------------------
// The matching form of the path, against a naive normalization: refuse what readers may
// resolve differently (an empty segment, a raw backslash or non-ASCII byte, a malformed
// escape, an encoded control byte, non-ASCII byte, '/', '\\', '?', '#', ';' or '%', a
// segment of dots and spaces other than a plain "." or ".."), decode once, remove
// dot-segments with RFC 3986 §5.2.4's algorithm written out literally, lower-case.

std::optional<std::string> RefMatchPath(const std::string& raw) {
  if (raw.find("//") != std::string::npos) return std::nullopt;
  for (char c : raw)
    if (c == '\\' || static_cast<unsigned char>(c) >= 0x80) return std::nullopt;
  // Segment by segment (the raw '/'s), each decoded on its own.
  std::size_t start = 1;
  while (start <= raw.size()) {
    std::size_t end = raw.find('/', start);
    if (end == std::string::npos) end = raw.size();
    const std::string seg = raw.substr(start, end - start);
    std::string dseg;
    for (std::size_t i = 0; i < seg.size(); ++i) {
      if (seg[i] != '%') {
        dseg += seg[i];
        continue;
      }
      if (i + 2 >= seg.size() || !std::isxdigit(static_cast<unsigned char>(seg[i + 1])) ||
          !std::isxdigit(static_cast<unsigned char>(seg[i + 2])))
        return std::nullopt;
      const int v = std::stoi(seg.substr(i + 1, 2), nullptr, 16);
      if (v < 0x20 || v >= 0x7f ||
          std::string_view("/\\?#;%").find(static_cast<char>(v)) != std::string_view::npos)
        return std::nullopt;
      dseg += static_cast<char>(v);
      i += 2;
    }
    if (!dseg.empty() && dseg.find_first_not_of(". ") == std::string::npos && seg != "." &&
        seg != "..")
      return std::nullopt;
    start = end + 1;
  }
  std::string dec;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '%') {
      dec += raw[i];
      continue;
    }
    if (i + 2 >= raw.size() || !std::isxdigit(static_cast<unsigned char>(raw[i + 1])) ||
        !std::isxdigit(static_cast<unsigned char>(raw[i + 2])))
      return std::nullopt;
    const char c = static_cast<char>(std::stoi(raw.substr(i + 1, 2), nullptr, 16));
    if (c == '\0') return std::nullopt;
    dec += c;
    i += 2;
  }
  for (char c : dec) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == '?' || c == '#' || c == ';' || c == '\\') return std::nullopt;
  }
  std::string in = dec, out;
  auto starts = [&](const char* p) { return in.rfind(p, 0) == 0; };
  auto drop_last_segment = [&] {
    const std::size_t slash = out.rfind('/');
    out.erase(slash == std::string::npos ? 0 : slash);
  };
  while (!in.empty()) {
    if (starts("../")) {
      in.erase(0, 3);
    } else if (starts("./")) {
      in.erase(0, 2);
    } else if (starts("/./")) {
      in.replace(0, 3, "/");
    } else if (in == "/.") {
      in = "/";
    } else if (starts("/../")) {
      in.replace(0, 4, "/");
      drop_last_segment();
    } else if (in == "/..") {
      in = "/";
      drop_last_segment();
    } else if (in == "." || in == "..") {
      in.clear();
    } else {
      std::size_t next = in.find('/', 1);
      if (next == std::string::npos) next = in.size();
      out += in.substr(0, next);
      in.erase(0, next);
    }
  }
  if (out.empty()) out = "/";
  return AsciiLower(out);
}

TEST(DifferentialMatchPath, AgreesWithNaiveNormalization) {
  const std::uint64_t seed = EnvOr("AUTHBYPASS_DIFF_SEED", 20261125);
  const std::size_t n = EnvOr("AUTHBYPASS_DIFF_PATHS", 50000);
  static const char* const kTokens[] = {
      "/", "/", "/", "/", "a", "B", ".", ".", "..", "..", "%2e", "%2E", "%2e%2e", "%2f", "%2F",
      "%41", "x.crl", "%25", "%252e", "ü", "%C3%BC", "~", "-", "%20", ":", "@", "!", "./", "../",
      "/.", "/.."};
  static const char* const kBad[] = {"%", "%zz", "%0", "%00", "%3f", "%23", "%3b", "%5c", "%5C",
                                     "\\", "%09", "%7f"};
  Rng rng(seed ^ 0x9e3779b97f4a7c15ull);
  Request req;
  std::size_t failures = 0, unmatchable = 0, dotted = 0;
  for (std::size_t i = 0; i < n && failures < 5; ++i) {
    std::string path = "/";
    const std::size_t len = 1 + rng.below(12);
    for (std::size_t k = 0; k < len; ++k) path += rng.chance(0.03) ? rng.pick(kBad) : rng.pick(kTokens);
    // Most paths without empty segments, so that normalization itself is compared too.
    if (rng.chance(0.7))
      for (std::size_t at; (at = path.find("//")) != std::string::npos;) path.erase(at, 1);
    const std::string url = "http://h.test" + path;
    ASSERT_TRUE(req.parse({.method = "GET", .url = url, .user_agent = {}, .src = {}})) << url << ": " << req.error();
    ASSERT_EQ(req.path, path) << url;
    const auto want = RefMatchPath(std::string(req.path));
    unmatchable += !want;
    dotted += want && path.find("/.") != std::string::npos;
    const bool same = want ? (req.match_path_ok && req.match_path == *want) : !req.match_path_ok;
    if (!same) {
      ++failures;
      ADD_FAILURE() << "match_path differs (AUTHBYPASS_DIFF_SEED=" << seed << ")\n  url: " << url
                    << "\n  engine:    " << (req.match_path_ok ? "'" + std::string(req.match_path) + "'" : "unmatchable")
                    << "\n  reference: " << (want ? "'" + *want + "'" : "unmatchable");
    }
  }
  std::printf("differential match_path: %zu paths, %zu unmatchable, %zu with dot-segments\n", n,
              unmatchable, dotted);
  EXPECT_EQ(failures, 0u);
}

}  // namespace
}  // namespace authbypass
