//! The SSRF guard: which addresses a delivery may reach (`[webhooks]` in config).
//!
//! The target is resolved when the delivery is sent, and every address it resolves to is
//! checked; one refused address refuses the delivery, which is recorded as a failed attempt and
//! sends nothing. The HTTP client resolves through the same check ([`GuardedResolver`]), so a
//! name that resolves differently a moment later (DNS rebinding) is still refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use crate::config::WebhooksConfig;

/// The policy, from config.
#[derive(Clone, Debug)]
pub struct Policy {
    cfg: WebhooksConfig,
}

fn v4_special(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        // 169.254.0.0/16 holds the cloud metadata service (169.254.169.254).
        Some("link-local (cloud metadata)")
    } else if ip.is_unspecified() || o[0] == 0 {
        Some("unspecified")
    } else if o[0] == 100 && (64..128).contains(&o[1]) {
        Some("shared address space (CGNAT)")
    } else if ip.is_multicast() || ip.is_broadcast() || o[0] >= 240 {
        Some("multicast, broadcast or reserved")
    } else if ip.is_documentation() || (o[0] == 198 && (o[1] == 18 || o[1] == 19)) {
        Some("documentation or benchmarking")
    } else if o[0] == 192 && o[1] == 0 && o[2] == 0 {
        Some("IETF protocol assignments")
    } else {
        None
    }
}

fn v6_special(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_special(v4);
    }
    let s = ip.segments();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if (s[0] & 0xfe00) == 0xfc00 {
        Some("unique local (private)")
    } else if (s[0] & 0xffc0) == 0xfe80 {
        Some("link-local")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if s[0] == 0x2001 && s[1] == 0x0db8 {
        Some("documentation")
    } else if s[0] == 0x0064 && s[1] == 0xff9b {
        // NAT64 can reach any IPv4 address, private ones included.
        Some("NAT64")
    } else {
        None
    }
}

/// Why `ip` is not a public address, if it is not.
pub fn special(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_special(v4),
        IpAddr::V6(v6) => v6_special(v6),
    }
}

impl Policy {
    /// The policy of `cfg`.
    pub fn new(cfg: &WebhooksConfig) -> Policy {
        Policy { cfg: cfg.clone() }
    }

    fn in_any(nets: &[ipnet::IpNet], ip: IpAddr) -> bool {
        nets.iter().any(|n| n.contains(&ip))
    }

    /// May an `http` (when `plain`) or `https` delivery reach `ip`? `Err` says why not.
    pub fn check(&self, ip: IpAddr, plain: bool) -> Result<(), String> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if !self.cfg.restrict_to.is_empty() && !Self::in_any(&self.cfg.restrict_to, ip) {
            return Err(format!(
                "{ip} is outside [webhooks] restrict_to: refused by the SSRF guard"
            ));
        }
        let http_ok = Self::in_any(&self.cfg.allow_http, ip);
        if plain {
            return if http_ok {
                Ok(())
            } else {
                Err(format!(
                    "plain http to {ip} is refused: only addresses in [webhooks] allow_http take http"
                ))
            };
        }
        match special(ip) {
            Some(why) if !http_ok && !Self::in_any(&self.cfg.allow_private, ip) => Err(format!(
                "{ip} is a {why} address: refused by the SSRF guard (allow it in [webhooks] allow_private)"
            )),
            _ => Ok(()),
        }
    }

    /// Does config let a plain `http` endpoint be created for `url`'s host (an address in
    /// `allow_http`, or `localhost` when loopback is allowed)?
    pub fn http_allowed_for(&self, url: &str) -> bool {
        let Ok(u) = url::Url::parse(url.trim()) else {
            return false;
        };
        match u.host() {
            Some(url::Host::Ipv4(ip)) => Self::in_any(&self.cfg.allow_http, IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Self::in_any(&self.cfg.allow_http, IpAddr::V6(ip)),
            Some(url::Host::Domain(d)) => {
                d.eq_ignore_ascii_case("localhost")
                    && Self::in_any(&self.cfg.allow_http, IpAddr::V4(Ipv4Addr::LOCALHOST))
            }
            None => false,
        }
    }

    /// Resolves `url`'s host now and checks every address: the addresses on success, else why
    /// the delivery is refused (nothing is sent then).
    pub async fn resolve(&self, url: &str) -> Result<Vec<SocketAddr>, String> {
        let u = url::Url::parse(url).map_err(|e| format!("bad url: {e}"))?;
        let plain = u.scheme() == "http";
        let port = u
            .port_or_known_default()
            .ok_or_else(|| "the url has no port".to_string())?;
        let addrs: Vec<SocketAddr> = match u.host() {
            Some(url::Host::Ipv4(ip)) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
            Some(url::Host::Ipv6(ip)) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
            Some(url::Host::Domain(d)) => self.lookup(d, port).await?,
            None => return Err("the url has no host".into()),
        };
        for a in &addrs {
            self.check(a.ip(), plain)?;
        }
        Ok(addrs)
    }

    async fn lookup(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        if !self.cfg.restrict_to.is_empty() && !host.eq_ignore_ascii_case("localhost") {
            return Err(format!(
                "host '{host}' is not resolved: [webhooks] restrict_to allows only addresses and localhost"
            ));
        }
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| format!("resolving '{host}' failed: {e}"))?
            .collect();
        if addrs.is_empty() {
            return Err(format!("'{host}' resolves to no address"));
        }
        Ok(addrs)
    }
}

/// The HTTP client's resolver: resolves and checks like [`Policy::resolve`], so the connection
/// goes only to addresses the guard allows.
pub struct GuardedResolver {
    /// The policy.
    pub policy: Arc<Policy>,
    /// Whether the client sends plain http (a client per scheme is not needed: https checks
    /// apply to both, http's stricter list is checked before sending).
    pub plain: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let plain = self.plain;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = policy.lookup(&host, 0).await?;
            for a in &addrs {
                policy.check(a.ip(), plain)?;
            }
            let it: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(it)
        })
    }
}

/// The two HTTP clients (plain http and https), each resolving through the SSRF guard.
#[derive(Clone, Debug)]
pub struct Clients {
    plain: reqwest::Client,
    tls: reqwest::Client,
}

impl Clients {
    /// The client for `url`: the plain-http one for `http:`, else the TLS one (notification
    /// channels send through the same guarded clients).
    pub fn for_url(&self, url: &str) -> &reqwest::Client {
        if url.starts_with("http:") {
            &self.plain
        } else {
            &self.tls
        }
    }

    /// Clients with the configured timeout, no redirects, no proxy, and the guarded resolver.
    ///
    /// Errors: the TLS backend could not be set up.
    pub fn new(cfg: &WebhooksConfig, policy: &Arc<Policy>) -> Result<Clients, String> {
        let make = |plain: bool| {
            reqwest::Client::builder()
                .user_agent(concat!("tenantry-webhooks/", env!("CARGO_PKG_VERSION")))
                .timeout(std::time::Duration::from_secs(cfg.timeout_secs))
                .connect_timeout(std::time::Duration::from_secs(cfg.timeout_secs))
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .pool_max_idle_per_host(cfg.per_endpoint)
                .dns_resolver(Arc::new(GuardedResolver {
                    policy: policy.clone(),
                    plain,
                }))
                .build()
                .map_err(|e| format!("cannot build the webhook HTTP client: {e}"))
        };
        Ok(Clients {
            plain: make(true)?,
            tls: make(false)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow_http: &[&str]) -> Policy {
        Policy::new(&WebhooksConfig {
            allow_http: allow_http.iter().filter_map(|s| s.parse().ok()).collect(),
            ..WebhooksConfig::default()
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn private_loopback_link_local_and_metadata_addresses_are_refused() {
        let p = policy(&[]);
        for a in [
            "169.254.169.254",
            "10.0.0.1",
            "172.16.3.4",
            "192.168.1.1",
            "127.0.0.1",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(p.check(ip(a), false).is_err(), "{a}");
        }
        assert!(p.check(ip("93.184.216.34"), false).is_ok());
        assert!(p.check(ip("2606:4700::1111"), false).is_ok());
    }

    #[test]
    fn allow_http_admits_plain_http_and_its_private_addresses_only() {
        let p = policy(&["127.0.0.1/8"]);
        assert!(p.check(ip("127.0.0.1"), true).is_ok());
        assert!(p.check(ip("127.0.0.1"), false).is_ok());
        assert!(p.check(ip("10.0.0.1"), true).is_err());
        assert!(p.check(ip("93.184.216.34"), true).is_err());
        assert!(p.http_allowed_for("http://127.0.0.1:9/x"));
        assert!(p.http_allowed_for("http://localhost:9/x"));
        assert!(!p.http_allowed_for("http://10.0.0.1/x"));
    }
}
