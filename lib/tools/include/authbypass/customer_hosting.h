// Customer-hosting domains: DNS zones in which a cloud or CDN provider gives each of its
// customers a host name, so that what is served there is whatever that customer puts
// there. The one list used both by `authbypass m365 import` (which never writes a rule
// for such a host unless told to, domain by domain) and by `authbypass check` (which
// names every CONNECT or unchecked rule that reaches one).
//
// What qualifies: any customer of the service (an Azure subscription, a Microsoft 365
// tenant, a CDN or hosting account), at no cost and without review by the provider,
// gets names in the zone (<account>.blob.core.windows.net, <tenant>.sharepoint.com,
// <endpoint>.azureedge.net) and decides what they serve. A host name in such a zone
// names a customer's server, not the provider's, even when the provider itself is the
// customer (mlccdn.blob.core.windows.net): the names resolve to front ends shared by
// every customer of the service, a tunnel opened to one of them can ask for any other
// (the TLS server name and the Host header are chosen inside the tunnel), and a name
// given up by its owner can be taken by anyone. Multi-tenant services at the provider's
// own names (outlook.office365.com) do not qualify: the name is the provider's, though
// a tenant's data still passes there (docs/m365.md, "CONNECT rules").
#pragma once

#include <span>
#include <string_view>
#include <vector>

namespace authbypass {

struct CustomerHostingDomain {
  std::string_view domain;   // the zone, without a leading dot: "core.windows.net"
  std::string_view service;  // what customers get there, for messages
};

// The list, in a fixed order (Microsoft's clouds first, then other providers).
std::span<const CustomerHostingDomain> customer_hosting_domains();

// The customer-hosting zones a policy host entry reaches. `host` is lower-case ASCII
// without a trailing dot; `wildcard` is true for a ".domain" entry (given without its
// dot). An exact name reaches a zone when it is strictly inside it (a customer's name;
// the zone's own apex is the provider's). A wildcard reaches every zone it is inside of,
// equal to, or above (".windows.net" reaches "core.windows.net"). Empty: none.
std::vector<const CustomerHostingDomain*> customer_hosting_zones(std::string_view host,
                                                                 bool wildcard);

}  // namespace authbypass
