//! The generated `/etc/hosts` and `/etc/resolv.conf`, byte for byte as BuildKit writes them
//! (`executor/oci/hosts.go`, `executor/oci/resolvconf.go`, `util/resolvconf`).

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use crate::{DEFAULT_HOSTNAME, HostEntry, Network};

/// BuildKit's `initHostsFile` plus one `IP<TAB>HOST` line per extra host.
pub(crate) fn hosts(hostname: &str, extra: &[HostEntry]) -> String {
    let hostname = if hostname.is_empty() {
        DEFAULT_HOSTNAME
    } else {
        hostname
    };
    let mut out =
        format!("127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for h in extra {
        // Infallible: writing to a String.
        let _ = writeln!(out, "{}\t{}", h.ip, h.host);
    }
    out
}

/// Where BuildKit reads the host's resolver configuration from: `/etc/resolv.conf`, except that
/// without any network a systemd-resolved stub (`nameserver 127.0.0.53` alone, unreachable
/// from another network namespace) is replaced by the file resolved maintains.
pub(crate) fn resolv_conf_source(network: Network) -> &'static Path {
    const DEFAULT: &str = "/etc/resolv.conf";
    const RESOLVED: &str = "/run/systemd/resolve/resolv.conf";
    // The sandbox takes only the search domains and options: its nameserver is the stack's.
    if network != Network::None {
        return Path::new(DEFAULT);
    }
    match std::fs::read_to_string(DEFAULT) {
        Ok(text) => {
            let conf = ResolvConf::parse(&text);
            if conf.nameservers.len() == 1
                && conf.nameservers[0].ip == IpAddr::V4(Ipv4Addr::new(127, 0, 0, 53))
            {
                Path::new(RESOLVED)
            } else {
                Path::new(DEFAULT)
            }
        }
        Err(_) => Path::new(DEFAULT),
    }
}

/// BuildKit's generated resolv.conf from the host's (`None` when the host has none): regenerated
/// in canonical form, loopback nameservers dropped when the command is not on the host network
/// (they would point into another namespace), Google's public servers when none are left. In
/// the sandbox, the stack's DNS forwarder is the one nameserver, as rootlesskit writes it for a
/// rootless BuildKit: it asks the host's resolvers, loopback ones included.
pub(crate) fn resolv_conf(host: Option<&str>, network: Network) -> String {
    let mut conf = ResolvConf::parse(host.unwrap_or(""));
    if network == Network::Sandbox {
        conf.nameservers = vec![Nameserver {
            ip: SANDBOX_DNS,
            zone: None,
        }];
    } else if network == Network::None || conf.nameservers.is_empty() {
        // `TransformForLegacyNw(ipv6 = true)`.
        conf.nameservers.retain(|ns| !is_loopback(ns.ip));
        if conf.nameservers.is_empty() {
            conf.nameservers = [
                IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8)),
                IpAddr::V4(Ipv4Addr::new(8, 8, 4, 4)),
                IpAddr::V6(Ipv6Addr::new(0x2001, 0x4860, 0x4860, 0, 0, 0, 0, 0x8888)),
                IpAddr::V6(Ipv6Addr::new(0x2001, 0x4860, 0x4860, 0, 0, 0, 0, 0x8844)),
            ]
            .into_iter()
            .map(|ip| Nameserver { ip, zone: None })
            .collect();
        }
    }
    conf.generate()
}

/// Go's `netip.Addr.IsLoopback`, which unmaps IPv4-mapped IPv6 addresses first.
fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(v6.is_loopback(), |v4| v4.is_loopback()),
    }
}

/// A nameserver address, with the IPv6 zone Go's `netip` keeps (`fe80::1%eth0`).
struct Nameserver {
    ip: IpAddr,
    zone: Option<String>,
}

impl Nameserver {
    fn parse(text: &str) -> Option<Self> {
        match text.split_once('%') {
            Some((addr, zone)) if !zone.is_empty() => Some(Nameserver {
                ip: IpAddr::V6(addr.parse().ok()?),
                zone: Some(zone.to_owned()),
            }),
            Some(_) => None,
            None => Some(Nameserver {
                ip: text.parse().ok()?,
                zone: None,
            }),
        }
    }
}

/// BuildKit's `util/resolvconf.ResolvConf`, the parts that reach the generated file.
#[derive(Default)]
struct ResolvConf {
    nameservers: Vec<Nameserver>,
    search: Vec<String>,
    options: Vec<String>,
    /// Unrecognised lines, copied verbatim.
    other: Vec<String>,
}

impl ResolvConf {
    /// BuildKit's `Parse`/`processLine`.
    fn parse(text: &str) -> Self {
        let mut conf = ResolvConf::default();
        // Go's bufio.ScanLines also drops a trailing '\r'.
        for line in text.lines().map(|l| l.strip_suffix('\r').unwrap_or(l)) {
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.first().copied() {
                None => {}
                Some("nameserver") => {
                    // Invalid addresses are dropped (BuildKit only notes them in a comment).
                    if let Some(ns) = fields.get(1).and_then(|f| Nameserver::parse(f)) {
                        conf.nameservers.push(ns);
                    }
                }
                // `domain` is the obsolete name of `search`; the last one wins.
                Some("domain" | "search") if fields.len() >= 2 => {
                    conf.search = fields[1..].iter().map(|s| s.to_string()).collect();
                }
                Some("domain" | "search") => {}
                Some("options") => conf
                    .options
                    .extend(fields[1..].iter().map(|s| s.to_string())),
                Some(_) => conf.other.push(line.to_owned()),
            }
        }
        conf
    }

    /// BuildKit's `Generate(false)` (no comments).
    fn generate(&self) -> String {
        let mut out = String::new();
        for ns in &self.nameservers {
            let _ = match &ns.zone {
                Some(zone) => writeln!(out, "nameserver {}%{zone}", ns.ip),
                None => writeln!(out, "nameserver {}", ns.ip),
            };
        }
        if !self.search.is_empty() {
            let _ = writeln!(out, "search {}", self.search.join(" "));
        }
        if !self.options.is_empty() {
            let _ = writeln!(out, "options {}", self.options.join(" "));
        }
        for line in &self.other {
            let _ = writeln!(out, "{line}");
        }
        out
    }
}

/// The stack's DNS forwarder, as seen from the namespace (slirp4netns' default network).
pub(crate) const SANDBOX_DNS: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 2, 3));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_file_matches_buildkit() {
        assert_eq!(
            hosts("", &[]),
            "127.0.0.1\tlocalhost buildkitsandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        );
        let extra = [
            HostEntry {
                host: "db".into(),
                ip: "10.0.0.2".parse().unwrap(),
            },
            HostEntry {
                host: "v6".into(),
                ip: "fd00::1".parse().unwrap(),
            },
        ];
        assert_eq!(
            hosts("box", &extra),
            "127.0.0.1\tlocalhost box\n::1\tlocalhost ip6-localhost ip6-loopback\n\
             10.0.0.2\tdb\nfd00::1\tv6\n"
        );
    }

    const HOST: &str = "# generated\nnameserver 127.0.0.53\nnameserver 10.0.0.1\n\
                        nameserver bogus\ndomain a.example\nsearch b.example c.example\n\
                        options ndots:2\noptions edns0\nsortlist 10.0.0.0\n";

    #[test]
    fn host_network_keeps_loopback_nameservers() {
        assert_eq!(
            resolv_conf(Some(HOST), Network::Host),
            "nameserver 127.0.0.53\nnameserver 10.0.0.1\nsearch b.example c.example\n\
             options ndots:2 edns0\nsortlist 10.0.0.0\n"
        );
    }

    #[test]
    fn other_networks_drop_loopback_nameservers() {
        assert_eq!(
            resolv_conf(Some(HOST), Network::None),
            "nameserver 10.0.0.1\nsearch b.example c.example\noptions ndots:2 edns0\n\
             sortlist 10.0.0.0\n"
        );
        assert_eq!(
            resolv_conf(
                Some("nameserver ::1\nnameserver ::ffff:127.0.0.1\n"),
                Network::None
            ),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\nnameserver 2001:4860:4860::8888\n\
             nameserver 2001:4860:4860::8844\n"
        );
    }

    #[test]
    fn the_sandbox_asks_the_stacks_dns_forwarder() {
        assert_eq!(
            resolv_conf(Some(HOST), Network::Sandbox),
            "nameserver 10.0.2.3\nsearch b.example c.example\noptions ndots:2 edns0\n\
             sortlist 10.0.0.0\n"
        );
        assert_eq!(resolv_conf(None, Network::Sandbox), "nameserver 10.0.2.3\n");
    }

    #[test]
    fn no_nameservers_means_public_defaults_even_on_host_network() {
        assert_eq!(
            resolv_conf(None, Network::Host),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\nnameserver 2001:4860:4860::8888\n\
             nameserver 2001:4860:4860::8844\n"
        );
    }

    #[test]
    fn ipv6_zones_survive() {
        assert_eq!(
            resolv_conf(Some("nameserver fe80::1%eth0\n"), Network::None),
            "nameserver fe80::1%eth0\n"
        );
    }
}
