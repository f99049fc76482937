//! The Azure clouds the crate knows, as one table: each cloud's Entra authority host, the
//! audience Entra recommends there for a federated identity credential (the projected token's
//! `aud`), and its Azure Storage hosts. The configuration picks the default audience from it,
//! error messages name the other clouds from it.
//!
//! | cloud | authority host | exchange audience | blob endpoint |
//! |---|---|---|---|
//! | public | `https://login.microsoftonline.com` | `api://AzureADTokenExchange` | `<account>.blob.core.windows.net` |
//! | US Government | `https://login.microsoftonline.us` | `api://AzureADTokenExchangeUSGov` | `<account>.blob.core.usgovcloudapi.net` |
//! | China (21Vianet) | `https://login.chinacloudapi.cn`, `https://login.partner.microsoftonline.cn` | `api://AzureADTokenExchangeChina` | `<account>.blob.core.chinacloudapi.cn` |
//!
//! Azure Storage's own scope, [`STORAGE_SCOPE`], is the same in every cloud.

use azure_core::cloud::CloudConfiguration;
use azure_core::http::Url;

/// One Azure cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Cloud {
    /// Its name in messages: `public cloud`, `US Government`, `China`.
    pub name: &'static str,
    /// The Entra ID authority host, e.g. `https://login.microsoftonline.com`.
    pub authority_host: &'static str,
    /// Its other Entra ID authority hosts, recognised as this cloud's (China's
    /// `https://login.partner.microsoftonline.cn`).
    pub other_authority_hosts: &'static [&'static str],
    /// The audience Entra recommends for a federated identity credential in this cloud, e.g.
    /// `api://AzureADTokenExchange`.
    pub exchange_audience: &'static str,
    /// The domain of a storage account's blob endpoint, `https://<account>.<blob_domain>`.
    pub blob_domain: &'static str,
}

/// The public (global) Azure cloud.
pub const PUBLIC: Cloud = Cloud {
    name: "public cloud",
    authority_host: "https://login.microsoftonline.com",
    other_authority_hosts: &[],
    exchange_audience: "api://AzureADTokenExchange",
    blob_domain: "blob.core.windows.net",
};
/// Azure US Government.
pub const US_GOVERNMENT: Cloud = Cloud {
    name: "US Government",
    authority_host: "https://login.microsoftonline.us",
    other_authority_hosts: &[],
    exchange_audience: "api://AzureADTokenExchangeUSGov",
    blob_domain: "blob.core.usgovcloudapi.net",
};
/// Azure operated by 21Vianet (China).
pub const CHINA: Cloud = Cloud {
    name: "China",
    authority_host: "https://login.chinacloudapi.cn",
    other_authority_hosts: &["https://login.partner.microsoftonline.cn"],
    exchange_audience: "api://AzureADTokenExchangeChina",
    blob_domain: "blob.core.chinacloudapi.cn",
};
/// Every cloud, the public one first.
pub const CLOUDS: [Cloud; 3] = [PUBLIC, US_GOVERNMENT, CHINA];

/// Azure Storage, every account the identity has a role on, in every cloud:
/// `https://storage.azure.com/.default`.
pub const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";

impl Cloud {
    /// The cloud of azure_core's configuration; `None` for a custom one (or one azure_core adds).
    pub fn of_configuration(cloud: &CloudConfiguration) -> Option<Self> {
        match cloud {
            CloudConfiguration::AzurePublic => Some(PUBLIC),
            CloudConfiguration::AzureGovernment => Some(US_GOVERNMENT),
            CloudConfiguration::AzureChina => Some(CHINA),
            _ => None,
        }
    }

    /// The cloud whose Entra ID answers at `authority`: its host is in the domain of one of a
    /// cloud's authority hosts (`login.microsoftonline.us`, or any `…microsoftonline.us`). `None`
    /// for another host (a gateway, an emulator).
    pub fn of_authority(authority: &Url) -> Option<Self> {
        let host = authority.host_str()?;
        CLOUDS.into_iter().find(|c| {
            let mut hosts = c.other_authority_hosts.iter().chain([&c.authority_host]);
            hosts.any(|h| host.ends_with(h.trim_start_matches("https://login.")))
        })
    }

    /// The cloud whose recommended exchange audience is `audience`.
    pub fn of_audience(audience: &str) -> Option<Self> {
        CLOUDS.into_iter().find(|c| c.exchange_audience == audience)
    }

    /// The scope of one storage account in this cloud,
    /// `https://<account>.<blob_domain>/.default`: a token limited to that account.
    pub fn account_storage_scope(&self, account: &str) -> String {
        format!("https://{account}.{}/.default", self.blob_domain)
    }
}

/// The audience the credential expects by default for `authority`: its cloud's, and the public
/// cloud's for a host of no known cloud.
pub(crate) fn default_audience_for(authority: &Url) -> &'static str {
    Cloud::of_authority(authority)
        .unwrap_or(PUBLIC)
        .exchange_audience
}

/// A token minted for another cloud's exchange audience than `authority`'s (see
/// [`default_audience_for`]): that cloud, e.g. US Government for a token with
/// `api://AzureADTokenExchangeUSGov` sent to the public cloud. `None` when `audiences` hold the
/// authority's own.
pub(crate) fn other_cloud(audiences: &[String], authority: &Url) -> Option<Cloud> {
    let own = default_audience_for(authority);
    if audiences.iter().any(|a| a == own) {
        return None;
    }
    CLOUDS
        .into_iter()
        .find(|c| audiences.iter().any(|a| a == c.exchange_audience))
}

/// The clouds' authority hosts for a fix: `https://login.microsoftonline.com (public cloud),
/// https://login.microsoftonline.us (US Government) or https://login.chinacloudapi.cn (China)`.
pub(crate) fn authority_hosts() -> String {
    let [a, b, c] = CLOUDS.map(|c| format!("{} ({})", c.authority_host, c.name));
    format!("{a}, {b} or {c}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clouds_are_found_by_authority_audience_and_configuration() {
        let url = |s: &str| Url::parse(s).unwrap();
        for (authority, want) in [
            ("https://login.microsoftonline.com", Some(PUBLIC)),
            ("https://login.microsoftonline.us/", Some(US_GOVERNMENT)),
            ("https://login.chinacloudapi.cn:443", Some(CHINA)),
            ("https://login.partner.microsoftonline.cn", Some(CHINA)),
            ("https://127.0.0.1:8443", None),
        ] {
            assert_eq!(Cloud::of_authority(&url(authority)), want, "{authority}");
        }
        assert_eq!(
            default_audience_for(&url("https://127.0.0.1:8443")),
            "api://AzureADTokenExchange"
        );
        for c in CLOUDS {
            assert_eq!(Cloud::of_audience(c.exchange_audience), Some(c));
        }
        assert_eq!(
            Cloud::of_configuration(&CloudConfiguration::AzureChina),
            Some(CHINA)
        );
        let gov = vec!["api://AzureADTokenExchangeUSGov".to_string()];
        assert_eq!(
            other_cloud(&gov, &url("https://login.microsoftonline.com")),
            Some(US_GOVERNMENT)
        );
        assert_eq!(
            other_cloud(&gov, &url("https://login.microsoftonline.us")),
            None
        );
        // China's partner host: China's default audience; a China token is not another cloud's.
        let partner = url("https://login.partner.microsoftonline.cn");
        assert_eq!(default_audience_for(&partner), CHINA.exchange_audience);
        let china = vec![CHINA.exchange_audience.to_string()];
        assert_eq!(other_cloud(&china, &partner), None);
        assert_eq!(other_cloud(&gov, &partner), Some(US_GOVERNMENT));
        assert_eq!(
            CHINA.account_storage_scope("acct"),
            "https://acct.blob.core.chinacloudapi.cn/.default"
        );
        assert!(authority_hosts().ends_with("or https://login.chinacloudapi.cn (China)"));
    }
}
