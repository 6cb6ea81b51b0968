//! The default bridges of private daemons, made by the harness: `mk8s-test-N` with the
//! first address of the `/29` number N of `10.250.0.0/16` (outside the `10.X.0.0/16`
//! cluster ranges of the test nodes, which stop below `10.250`).
//!
//! No two bridges get one slot, in one process or across processes: the kernel refuses a
//! second interface of a name, so `ip link add mk8s-test-N` claims slot N, and a slot
//! taken goes to the next. Slots whose range a route of this machine covers already
//! (a network of its own in `10.250`, say) are skipped. Each bridge carries its owner's
//! pid in its alias, so that [`sweep_dead`] removes the bridges of test processes that
//! died before they could, and never one of a live process. (The kernel takes no alias
//! with a new link: it is set right after, and a bridge without one is left alone.)

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use anyhow::{Context, bail};

/// Names are `PREFIX` and the slot: at most 15 characters, the kernel's limit.
const PREFIX: &str = "mk8s-test-";
const SUBNETS: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 0);
const SUBNETS_LEN: u8 = 16;
const LEN: u8 = 29;
const SLOTS: u32 = 1 << (LEN - SUBNETS_LEN);
/// The alias of every such bridge: `OWNER <pid>`.
const OWNER: &str = "minik8s-test-dockerd";

/// A bridge with an address, for one private daemon's default network; deleted when
/// dropped.
pub struct Bridge {
    name: String,
    network: u32,
}

impl Bridge {
    pub fn create() -> anyhow::Result<Bridge> {
        let routed = routed_prefixes()?;
        let owner = format!("{OWNER} {}", std::process::id());
        for slot in 0..SLOTS {
            let network = u32::from(SUBNETS) + (slot << (32 - LEN));
            if routed.iter().any(|&r| overlaps(r, (network, LEN))) {
                continue;
            }
            let name = format!("{PREFIX}{slot}");
            let out = ip(&["link", "add", &name, "type", "bridge"])?;
            if !out.status.success() {
                let err = String::from_utf8_lossy(&out.stderr);
                if err.contains("File exists") {
                    continue;
                }
                bail!("ip link add {name} type bridge: {}", err.trim());
            }
            let bridge = Bridge { name, network };
            run_ip(&["link", "set", &bridge.name, "alias", &owner])?;
            let address = format!("{}/{LEN}", bridge.gateway());
            run_ip(&["addr", "add", &address, "dev", &bridge.name])?;
            run_ip(&["link", "set", &bridge.name, "up"])?;
            return Ok(bridge);
        }
        bail!("every /{LEN} of {SUBNETS}/{SUBNETS_LEN} is routed or has a test bridge already")
    }

    /// The interface's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its network, `10.250.x.y/29`.
    pub fn subnet(&self) -> String {
        format!("{}/{LEN}", Ipv4Addr::from(self.network))
    }

    /// Its own address: the default network's gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network + 1)
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.name]);
    }
}

/// Deletes the bridges of test processes that are gone.
pub fn sweep_dead() {
    let Ok(entries) = std::fs::read_dir("/sys/class/net") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(PREFIX) {
            continue;
        }
        let alias = std::fs::read_to_string(entry.path().join("ifalias")).unwrap_or_default();
        let mut words = alias.split_whitespace();
        if words.next() != Some(OWNER) {
            continue;
        }
        if let Some(pid) = words.next()
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = ip(&["link", "del", &name]);
        }
    }
}

fn ip(args: &[&str]) -> anyhow::Result<Output> {
    Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running ip (iproute2; deploy/install-deps.sh installs it)")
}

fn run_ip(args: &[&str]) -> anyhow::Result<String> {
    let out = ip(args)?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The destinations of every IPv4 route of this machine, in every table.
fn routed_prefixes() -> anyhow::Result<Vec<(u32, u8)>> {
    let routes = run_ip(&["-4", "-o", "route", "show", "table", "all"])?;
    Ok(routes.lines().filter_map(route_destination).collect())
}

/// `10.1.2.0/24 dev …`, `local 10.1.2.3 dev … table local …`: the destination; `None`
/// for the default route.
fn route_destination(line: &str) -> Option<(u32, u8)> {
    const TYPES: &[&str] = &[
        "unicast",
        "local",
        "broadcast",
        "multicast",
        "anycast",
        "unreachable",
        "blackhole",
        "prohibit",
        "throw",
        "nat",
    ];
    let dst = line.split_whitespace().find(|w| !TYPES.contains(w))?;
    let (addr, len) = dst.split_once('/').unwrap_or((dst, "32"));
    Some((u32::from(addr.parse::<Ipv4Addr>().ok()?), len.parse().ok()?))
}

fn overlaps(a: (u32, u8), b: (u32, u8)) -> bool {
    let len = a.1.min(b.1);
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    a.0 & mask == b.0 & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_the_kernel_limit() {
        assert!(format!("{PREFIX}{}", SLOTS - 1).len() <= 15);
    }

    #[test]
    fn route_destinations() {
        let net = |s: &str| u32::from(s.parse::<Ipv4Addr>().unwrap());
        assert_eq!(
            route_destination("10.250.0.0/29 dev mk8s-test-0 proto kernel scope link"),
            Some((net("10.250.0.0"), 29))
        );
        assert_eq!(
            route_destination("local 192.0.2.2 dev eth0 table local proto kernel"),
            Some((net("192.0.2.2"), 32))
        );
        assert_eq!(route_destination("default via 192.0.2.1 dev eth0"), None);
        assert!(overlaps((net("10.0.0.0"), 8), (net("10.250.0.8"), 29)));
        assert!(!overlaps((net("10.250.0.0"), 29), (net("10.250.0.8"), 29)));
        assert!(overlaps((0, 0), (net("10.250.0.8"), 29)));
    }
}
