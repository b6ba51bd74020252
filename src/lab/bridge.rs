//! The lab's bridge in the root namespace (the lab's only link to the host, holding the gateway
//! address), and the check that a new lab's subnet is free on this machine.

use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

use super::cmd::{run_args, run_tolerant};
use super::LabError;

pub fn create(bridge: &str, gateway: Ipv4Addr, subnet: Ipv4Network) -> Result<(), LabError> {
    // A set address stays put; by default a bridge takes its ports' lowest MAC, which changes as
    // nodes come and go and leaves the nodes' ARP entries for the gateway stale.
    let mac = mac_for(gateway);
    run_args(
        "ip",
        &["link", "add", bridge, "address", &mac, "type", "bridge"],
    )?;
    let addr = format!("{gateway}/{}", subnet.prefix());
    run_args("ip", &["addr", "add", &addr, "dev", bridge])?;
    run_args("ip", &["link", "set", bridge, "up"])?;
    Ok(())
}

/// A bridge with no address in the root namespace: the segment behind a lab's bastion.
pub fn create_internal(bridge: &str) -> Result<(), LabError> {
    run_args("ip", &["link", "add", bridge, "type", "bridge"])?;
    run_args("ip", &["link", "set", bridge, "up"])?;
    Ok(())
}

/// A stable, locally administered MAC for a lab address (0a:58 + the IPv4 address, the
/// convention of the CNI bridge plugin).
pub fn mac_for(addr: Ipv4Addr) -> String {
    let o = addr.octets();
    format!("0a:58:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
}

pub fn delete(bridge: &str) -> Result<(), LabError> {
    run_tolerant(
        "ip",
        &["link", "del", bridge],
        &["Cannot find device", "does not exist", "No such device"],
    )
}

pub fn exists(link: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(link).exists()
}

/// Refuse a subnet that overlaps any IPv4 address or (non-default) route on the host: another
/// lab's bridge, the host's own networks. Returns what it collides with.
pub fn subnet_conflict(subnet: Ipv4Network) -> Result<Option<String>, LabError> {
    let addrs: serde_json::Value = serde_json::from_str(&run_args("ip", &["-j", "-4", "addr"])?)
        .map_err(|e| LabError::Failed(format!("cannot parse `ip -j -4 addr`: {e}")))?;
    for link in addrs.as_array().into_iter().flatten() {
        let ifname = link["ifname"].as_str().unwrap_or("?");
        for a in link["addr_info"].as_array().into_iter().flatten() {
            let (Some(local), Some(prefix)) = (a["local"].as_str(), a["prefixlen"].as_u64()) else {
                continue;
            };
            let Ok(net) = format!("{local}/{prefix}").parse::<Ipv4Network>() else {
                continue;
            };
            if overlaps(net, subnet) {
                return Ok(Some(format!("{local}/{prefix} on {ifname}")));
            }
        }
    }
    let routes: serde_json::Value = serde_json::from_str(&run_args(
        "ip",
        &["-j", "-4", "route", "show", "table", "all"],
    )?)
    .map_err(|e| LabError::Failed(format!("cannot parse `ip -j route`: {e}")))?;
    for r in routes.as_array().into_iter().flatten() {
        let Some(dst) = r["dst"].as_str() else {
            continue;
        };
        if dst == "default" {
            continue;
        }
        let dst_net = if dst.contains('/') {
            dst.parse::<Ipv4Network>()
        } else {
            format!("{dst}/32").parse::<Ipv4Network>()
        };
        // Local/broadcast entries in table local duplicate the addresses checked above.
        if r["type"].as_str().is_some_and(|t| t != "unicast") {
            continue;
        }
        if let Ok(net) = dst_net {
            if overlaps(net, subnet) {
                return Ok(Some(format!(
                    "route {dst} via {}",
                    r["dev"].as_str().unwrap_or("?")
                )));
            }
        }
    }
    Ok(None)
}

pub fn overlaps(a: Ipv4Network, b: Ipv4Network) -> bool {
    a.contains(b.network()) || b.contains(a.network())
}
