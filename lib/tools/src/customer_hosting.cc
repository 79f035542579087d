// The customer-hosting domains (see authbypass/customer_hosting.h for what qualifies).
// Each entry is a zone where the provider's documentation shows customers' resources
// named <customer-chosen-name>.<zone> (or <name>.<region>.<zone>); the service text says
// which product hands the names out.
#include "authbypass/customer_hosting.h"

namespace authbypass {

namespace {

constexpr CustomerHostingDomain kDomains[] = {
    // Microsoft Azure (worldwide)
    {"core.windows.net",
     "Azure Storage accounts: blobs, files, tables, queues and static web sites"},
    {"azurewebsites.net", "Azure App Service web apps"},
    {"cloudapp.net", "Azure Cloud Services (classic)"},
    {"cloudapp.azure.com", "Azure virtual machines' public DNS names"},
    {"trafficmanager.net", "Azure Traffic Manager profiles"},
    {"azureedge.net", "Azure CDN endpoints"},
    {"vo.msecnd.net", "Azure CDN (classic) endpoints"},
    {"azurefd.net", "Azure Front Door endpoints"},
    {"azure-api.net", "Azure API Management instances"},
    {"azurestaticapps.net", "Azure Static Web Apps"},
    {"azurecontainer.io", "Azure Container Instances"},
    {"azurecontainerapps.io", "Azure Container Apps"},
    {"azurecr.io", "Azure Container Registry"},
    {"servicebus.windows.net", "Azure Service Bus, Event Hubs and Relay namespaces"},
    {"mediaservices.windows.net", "Azure Media Services accounts"},
    {"media.azure.net", "Azure Media Services streaming endpoints"},
    {"database.windows.net", "Azure SQL Database servers"},
    {"documents.azure.com", "Azure Cosmos DB accounts"},
    {"vault.azure.net", "Azure Key Vault vaults"},
    {"azure-devices.net", "Azure IoT Hub hubs"},
    {"azurehdinsight.net", "Azure HDInsight clusters"},
    // Microsoft 365 tenants (worldwide)
    {"sharepoint.com", "SharePoint Online and OneDrive sites of every tenant"},
    {"onmicrosoft.com", "Microsoft 365 tenants' initial domains"},
    // Azure Government, Microsoft 365 GCC High and DoD
    {"core.usgovcloudapi.net", "Azure Government Storage accounts"},
    {"cloudapp.usgovcloudapi.net", "Azure Government virtual machines' public DNS names"},
    {"usgovcloudapp.net", "Azure Government Cloud Services (classic)"},
    {"azurewebsites.us", "Azure Government App Service web apps"},
    {"usgovtrafficmanager.net", "Azure Government Traffic Manager profiles"},
    {"sharepoint.us", "SharePoint Online sites of GCC High tenants"},
    {"sharepoint-mil.us", "SharePoint Online sites of DoD tenants"},
    {"onmicrosoft.us", "Microsoft 365 GCC High and DoD tenants' initial domains"},
    // Azure and Microsoft 365 operated by 21Vianet (China)
    {"core.chinacloudapi.cn", "Azure China Storage accounts"},
    {"chinacloudapp.cn", "Azure China Cloud Services and virtual machines"},
    {"chinacloudsites.cn", "Azure China App Service web apps"},
    {"sharepoint.cn", "SharePoint Online sites of 21Vianet tenants"},
    {"partner.onmschina.cn", "Microsoft 365 (21Vianet) tenants' initial domains"},
    // Other providers: shared CDN and hosting front ends
    {"cloudfront.net", "Amazon CloudFront distributions"},
    {"amazonaws.com", "Amazon Web Services: S3 buckets, EC2 and load balancer names"},
    {"akamaihd.net", "Akamai customers' properties"},
    {"akamaized.net", "Akamai customers' properties"},
    {"edgesuite.net", "Akamai customers' properties"},
    {"edgekey.net", "Akamai customers' properties"},
    {"fastly.net", "Fastly customers' services"},
    {"appspot.com", "Google App Engine apps"},
    {"storage.googleapis.com", "Google Cloud Storage buckets"},
    {"github.io", "GitHub Pages sites"},
};

// `name` is strictly inside `zone` (a subdomain, at a label boundary).
bool strictly_inside(std::string_view name, std::string_view zone) {
  return name.size() > zone.size() + 1 && name.ends_with(zone) &&
         name[name.size() - zone.size() - 1] == '.';
}

}  // namespace

std::span<const CustomerHostingDomain> customer_hosting_domains() {
  return kDomains;
}

std::vector<const CustomerHostingDomain*> customer_hosting_zones(std::string_view host,
                                                                 bool wildcard) {
  std::vector<const CustomerHostingDomain*> out;
  for (const CustomerHostingDomain& d : kDomains) {
    const bool inside = strictly_inside(host, d.domain);
    const bool reaches =
        wildcard ? inside || host == d.domain || strictly_inside(d.domain, host) : inside;
    if (reaches) out.push_back(&d);
  }
  return out;
}

}  // namespace authbypass
