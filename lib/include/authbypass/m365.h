// Microsoft 365 endpoint lists (Microsoft's "IP Address and URL web service"): parsing,
// selection, import into a bypass policy, aggregated firewall lists, and change reports.
//
// The engine never fetches anything: callers hand it files fetched by other means
// (docs/m365.md shows a cron job with curl through the proxy). Three documents of the
// web service are understood:
//   /endpoints/<instance>  a JSON array of endpoint sets (id, serviceArea, urls, ips, ...)
//   /version/<instance>    {"instance": "Worldwide", "latest": "2024053100"} (or a list)
//   /changes/<instance>/V  a JSON array of change records (endpointSetId, disposition, ...)
// Unknown keys are ignored (Microsoft adds fields); missing or mistyped known fields,
// duplicate keys, duplicate set ids, bad or absurd CIDRs and bad ports are errors, and a
// file with any error yields nothing (all or nothing, like a policy).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "authbypass/ip.h"
#include "authbypass/policy.h"

namespace authbypass::m365 {

// Limits: larger files, or more sets / entries, are errors (the real list is ~100 KB).
inline constexpr std::size_t kMaxFileBytes = 16u << 20;
inline constexpr std::size_t kMaxSets = 10000;
inline constexpr std::size_t kMaxEntriesPerSet = 10000;
inline constexpr int kMaxJsonDepth = 16;
// A published block wider than this is refused as absurd (Microsoft's widest are /13
// and /38): a corrupted or tampered list must not open a firewall to a large part of
// the Internet.
inline constexpr unsigned kMinPrefixV4 = 8;
inline constexpr unsigned kMinPrefixV6 = 16;

// The endpoint sets that carry the CRL / OCSP / CA-certificate hosts (service area
// Common): 84 and 125 in the worldwide list. The only sets `import` turns into
// plain-HTTP bypass rules (GET/HEAD on port 80, verify: revocation). Other instances
// number their sets differently: there the revocation sets are named by the caller.
inline const std::vector<int> kRevocationSetIds = {84, 125};

// The web service's instances, as spelled in its URLs and /version answers.
inline constexpr std::string_view kWorldwide = "Worldwide";
inline constexpr std::string_view kInstances[] = {"Worldwide", "USGovDoD", "USGovGCCHigh", "China"};
// The instance's canonical spelling (case-insensitive match), or nullopt.
std::optional<std::string> canonical_instance(std::string_view name);

struct PortRange {
  std::uint16_t first = 0;
  std::uint16_t last = 0;  // inclusive; == first for a single port
  bool single() const { return first == last; }
};

// One record of the endpoint list ("endpoint set").
struct EndpointSet {
  int id = 0;
  std::string service_area;               // Exchange | SharePoint | Skype | Common | ...
  std::string service_area_display_name;  // may be empty
  std::string category;                   // Optimize | Allow | Default
  bool required = false;
  bool express_route = false;
  std::vector<std::string> urls;  // as published, lower-cased ("*.lync.com", "crl.microsoft.com")
  std::vector<Cidr> ips;          // parsed, in published order
  std::string tcp_ports_text;     // as published ("80,443"); empty when absent
  std::string udp_ports_text;
  std::vector<PortRange> tcp_ports;
  std::vector<PortRange> udp_ports;
  std::string notes;
  std::size_t index = 0;  // 1-based position in the file
};

struct EndpointList {
  std::string file;
  std::string sha256;  // hex digest of the file bytes
  std::vector<EndpointSet> sets;  // in file order
  const EndpointSet* find(int id) const;
};

// Parse results: a value, or every error found ("FILE: record 3 (id 84): message").
struct EndpointsResult {
  std::optional<EndpointList> list;
  std::vector<std::string> errors;
  bool ok() const { return list.has_value(); }
};

EndpointsResult parse_endpoints(std::string_view text, const std::string& name);
EndpointsResult load_endpoints_file(const std::string& path);

// Parses a ports field: "80,443", "3478-3481", " 80, 443 ". nullopt (and *error) for
// anything else: empty items, 0, > 65535, reversed ranges, signs, junk.
std::optional<std::vector<PortRange>> parse_ports(std::string_view text, std::string* error);

// Checks one published IP block: strict CIDR syntax (Cidr::parse), not wider than
// kMinPrefixV4 / kMinPrefixV6, and not overlapping private, loopback, link-local,
// multicast, documentation or other special-purpose space.
std::optional<Cidr> parse_published_block(std::string_view text, std::string* error);

// An endpoint-list version as the service publishes it ("2024053100"): 1-32 characters
// of [A-Za-z0-9._-].
bool valid_version(std::string_view version);

// The /version answer: {"instance": "Worldwide", "latest": "2024053100", ...}, or a list of
// such objects (the entry for `instance` is taken). The answer must name `instance`: an
// answer for another instance, an object without "instance", a bare version string, an
// endpoint list or a /changes answer is nullopt with *error saying which it is.
std::optional<std::string> parse_version_answer(std::string_view text, const std::string& name,
                                                std::string* error,
                                                std::string_view instance = kWorldwide);
std::optional<std::string> load_version_file(const std::string& path, std::string* error,
                                             std::string_view instance = kWorldwide);

// Checks that an endpoint list belongs to `instance` (a canonical instance name), judged
// by the Microsoft domains its hosts use: US Government lists (USGovDoD, USGovGCCHigh)
// name hosts under office365.us, microsoft.us, ...; China's under outlook.cn,
// chinacloudapi.cn, ...; the Worldwide list under office.com, office365.com, .... The
// family with the most hosts decides. Empty when it fits, else the error.
std::string check_list_instance(const EndpointList& list, std::string_view instance);

// Which sets a command works on. Every non-empty criterion must hold (AND); a list holds
// if any entry holds. Service areas and categories compare case-insensitively.
struct Selection {
  std::vector<std::string> service_areas;
  std::vector<int> ids;
  std::vector<std::string> categories;  // Optimize, Allow, Default
  bool required_only = false;
  bool empty() const {
    return service_areas.empty() && ids.empty() && categories.empty() && !required_only;
  }
};

// The chosen sets, in file order. A service area, id or category that matches no set of
// the list is an error (a typo must not shrink a firewall list silently).
std::vector<const EndpointSet*> select_sets(const EndpointList& list, const Selection& sel,
                                            std::vector<std::string>* errors);

// A published `urls` entry as a policy `hosts` entry: "crl.microsoft.com" as is,
// "*.digicert.com" as ".digicert.com" (note: also matches digicert.com itself). Anything
// else — a wildcard inside a name ("*-files.sharepoint.com", "autodiscover.*.onmicrosoft.com"),
// a bare "*" or "*.com", an IP literal, a non-ASCII or malformed name — is nullopt with
// *reason: such entries are reported, never guessed.
std::optional<std::string> policy_host(std::string_view url, std::string* reason);

// A host (or ".suffix") that looks like a CA's revocation endpoint: a label containing
// "crl" or "ocsp", or a label "cacerts". Only a sanity check and a hint, never a reason
// to bypass on its own.
bool looks_like_revocation_host(std::string_view host);
// An OCSP responder by name: a label containing "ocsp" (ocsp.digicert.com,
// isrg.trustid.ocsp.identrust.com). Gets POST as well as GET/HEAD.
bool looks_like_ocsp_host(std::string_view host);

// What a set holds, judged by its named hosts (exact names that can be policy hosts;
// wildcards and www.* web sites are not counted): those that look like revocation
// endpoints (looks_like_revocation_host) and the others.
struct RevocationContent {
  bool common = false;  // service area Common
  std::vector<std::string> revocation_hosts;
  std::vector<std::string> other_hosts;
  // A revocation set by content: service area Common, and at least two of every three
  // named hosts are revocation endpoints. A set that lists crl.microsoft.com among the
  // Office client's hosts (go.microsoft.com, officecdn.microsoft.com, ...) is not one.
  bool revocation_set() const {
    return common && !revocation_hosts.empty() && revocation_hosts.size() >= 2 * other_hosts.size();
  }
  // What the set holds, for messages: "2 of 2 named hosts are CRL/OCSP/CA-certificate
  // hosts (crl.microsoft.com, mscrl.microsoft.com)", "1 of 4 named hosts is a
  // CRL/OCSP/CA-certificate host (crl.microsoft.com), beside go.microsoft.com, ...".
  std::string describe() const;
};
RevocationContent revocation_content(const EndpointSet& set);

// ---------------------------------------------------------------------------------------
// `authbypass m365 import`: chosen sets -> policy YAML (docs/architecture.md "Policy").
//
// Per revocation set (which must be one by content, RevocationContent::revocation_set):
// rule m365-<id>-ocsp (its OCSP responders by name: GET, HEAD, POST, port 80, verify:
// ocsp), rule m365-<id> (its other hosts and its wildcards: GET, HEAD, port 80, verify:
// revocation) and rule m365-<id>-ocsp-post (its wildcards, whose OCSP responders are not
// named, e.g. sr.symcd.com under *.symcd.com: POST only, port 80, verify: ocsp); no two of
// them match the same request. A wildcard beside listed hosts of its domain is narrowed
// to them (the CA's web site stays out) unless keep_wildcards. With `connect`, also
// m365-<id>-connect (CONNECT to port 443, verify: none) for every chosen set that lists
// TCP 443 and is required or named in selection.ids. Other sets get no plain-HTTP rule at
// all (their traffic cannot be verified). Never imported, each reported in `notes`:
// hosts named www.* (general web sites, e.g. www.microsoft.com) and hosts in or above a
// customer-hosting domain (authbypass/customer_hosting.h) that no entry of
// allow_customer_domains covers. The list must belong to `instance`
// (check_list_instance). The generated text is loaded and its tests run before it is
// returned.
struct ImportOptions {
  Selection selection;  // empty: the revocation sets
  // nullopt: the instance's known revocation sets (Worldwide: kRevocationSetIds; other
  // instances: none known, so an import without a selection is an error naming the sets
  // that are revocation sets by content).
  std::optional<std::vector<int>> revocation_ids;
  std::string instance{kWorldwide};  // the endpoint list's instance (canonical name)
  // Hosts in customer-hosting domains to import all the same: policy host entries
  // ("mlccdn.blob.core.windows.net", ".sharepoint.com"; "*.x" is taken as ".x"). An entry
  // covers a host equal to it or, for ".x", any host under x (a wildcard host only when
  // the entry is that wildcard or above it).
  std::vector<std::string> allow_customer_domains;
  std::string version;  // the endpoint-list version (required)
  std::string owner;
  std::string ticket;
  bool connect = false;  // also CONNECT rules for TCP 443 (required sets, or named in --ids)
  bool shadow = false;   // every rule in mode: shadow (no tests are generated then)
  // Revocation sets: a "*.domain" wildcard beside hosts listed under that domain is
  // dropped (the listed hosts stay), unless this is set. Reported either way.
  bool keep_wildcards = false;
  std::optional<Date> expires;
  std::string output_name = "m365.yaml";  // for messages of the self-check
  Date today{};                           // for the self-check's tests and `expires`
};

struct ImportResult {
  std::string policy;                 // the YAML text (empty on error)
  std::vector<std::string> rule_ids;  // in file order
  std::vector<std::string> notes;     // what was not imported and why (also in the header)
  std::vector<std::string> errors;
  bool ok() const { return errors.empty() && !policy.empty(); }
};

ImportResult import_policy(const EndpointList& list, const ImportOptions& options);

// ---------------------------------------------------------------------------------------
// `authbypass m365 ips`: aggregated firewall lists.
enum class IpFormat : std::uint8_t { kPlain, kNft, kIptablesRestore, kSquidAcl };
std::optional<IpFormat> parse_ip_format(std::string_view name);

struct IpsOptions {
  Selection selection;  // empty: every set with ips
  bool ipv4 = true;
  bool ipv6 = true;
  IpFormat format = IpFormat::kPlain;
  std::string name;     // nft set / iptables chain / squid acl name; empty: m365 / M365
  std::string version;  // optional, for the header comment
};

struct IpsResult {
  std::string text;
  std::vector<Cidr> blocks;  // aggregated, IPv4 first, ascending
  std::size_t input_blocks = 0;
  std::vector<std::string> errors;
  bool ok() const { return errors.empty(); }
};

// Names for sets, chains and ACLs: [A-Za-z][A-Za-z0-9_-]{0,27}.
bool valid_list_name(std::string_view name);

IpsResult firewall_list(const EndpointList& list, const IpsOptions& options);

// ---------------------------------------------------------------------------------------
// `authbypass m365 diff`: what changed, per endpoint set, from two endpoint lists or from
// a /changes answer; as text for a change ticket and as a JSON patch.
struct AttributeChange {
  std::string name;  // tcpPorts, udpPorts, category, required, expressRoute, serviceArea, notes
  std::string previous;
  std::string current;
};

struct SetChange {
  int endpoint_set_id = 0;
  int change_id = 0;          // the /changes record's id (0 when computed from two lists)
  std::string service_area;   // empty when unknown (a /changes record without it)
  std::string disposition;    // add | remove | change
  std::string version;        // the /changes record's version (or the new list's)
  std::string impact;         // as published, or computed (AddedUrl, RemovedIpOrUrl, ...)
  std::string effective_date; // /changes add.effectiveDate
  std::vector<std::string> added_urls, removed_urls;
  std::vector<std::string> added_ips, removed_ips;  // canonical CIDR text
  std::vector<AttributeChange> attributes;
};

struct Patch {
  std::string from;  // file names (from is empty for a /changes answer)
  std::string to;
  std::string from_version;
  std::string to_version;
  std::vector<SetChange> changes;  // by service area, then set id, then version
};

// Two endpoint lists: every set added, removed or changed (urls, ips, attributes).
Patch diff_endpoints(const EndpointList& old_list, const EndpointList& new_list);

struct ChangesResult {
  std::optional<Patch> patch;
  std::vector<std::string> errors;
  bool ok() const { return patch.has_value(); }
};

// A /changes answer. Service areas come from the records' current/previous objects, or
// else from `areas` (an endpoint list) when given.
ChangesResult parse_changes(std::string_view text, const std::string& name,
                            const EndpointList* areas = nullptr);
ChangesResult load_changes_file(const std::string& path, const EndpointList* areas = nullptr);

// Text for people (grouped by service area; revocation sets flagged) and the JSON patch
// ({"from":..,"to":..,"summary":..,"changes":[{"endpointSetId",..,"add":{"urls","ips"},
// "remove":{..}}]}).
std::string patch_text(const Patch& patch, const std::vector<int>& revocation_ids = kRevocationSetIds);
std::string patch_json(const Patch& patch, const std::vector<int>& revocation_ids = kRevocationSetIds);

}  // namespace authbypass::m365
