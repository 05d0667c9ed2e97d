//! Real clients through a fleet's load balancer, from a client address of their own: lftp, and
//! the ftplib script in every mode.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

use ftpgate_test_support::fleet::{Fleet, PASSWORD, USER};

use super::python_client;

/// Which node's passive range `port` is in.
pub fn node_of_port(fleet: &Fleet, port: u16) -> usize {
    fleet
        .nodes
        .iter()
        .position(|n| n.passive.contains(&port))
        .unwrap_or_else(|| panic!("port {port} is in no node's range"))
}

/// Downloads `remote` into `out` with lftp through the load balancer, from `client`, plain or
/// with TLS on both connections; asserts that lftp succeeded.
pub fn lftp_get(fleet: &Fleet, client: Ipv4Addr, remote: &str, out: &Path, tls: bool) {
    let script = format!(
        "set net:socket-bind-ipv4 {client}; set ftp:ssl-allow {tls}; set ftp:ssl-force {tls}; \
         set ftp:ssl-protect-data {tls}; set ssl:verify-certificate no; \
         set net:max-retries 1; set net:timeout 20; \
         open -u {USER},{PASSWORD} -p {port} {host}; get {remote} -o {out}; bye",
        port = fleet.lb.port(),
        host = fleet.lb.ip(),
        out = out.display(),
    );
    let result = Command::new("lftp").args(["-c", &script]).output().unwrap();
    assert!(
        result.status.success(),
        "lftp tls={tls}: {}",
        String::from_utf8_lossy(&result.stderr)
    );
}

/// Runs the ftplib script's session (a STOR then a RETR) through the load balancer from
/// `client`, plain and TLS, PASV and EPSV, `rounds` times; each data connection must reach the
/// node of its control connection. Returns how many sessions each node served.
pub fn ftplib_sessions(fleet: &Fleet, client: Ipv4Addr, rounds: usize) -> [usize; 2] {
    let mut nodes_seen = [0usize; 2];
    for round in 0..rounds {
        for mode in ["plain", "tls"] {
            for passive in ["pasv", "epsv"] {
                let name = format!("py-{round}-{mode}-{passive}.bin");
                let out = Command::new("python3")
                    .arg(python_client())
                    .args(["session", &fleet.lb.ip().to_string()])
                    .arg(fleet.lb.port().to_string())
                    .args([USER, PASSWORD, &client.to_string(), mode, passive, &name])
                    .output()
                    .unwrap();
                let stdout = String::from_utf8_lossy(&out.stdout);
                assert!(
                    out.status.success(),
                    "ftplib {mode} {passive}: {stdout} {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let port: u16 = stdout.trim().strip_prefix("ok ").unwrap().parse().unwrap();
                nodes_seen[node_of_port(fleet, port)] += 1;
            }
        }
    }
    nodes_seen
}
