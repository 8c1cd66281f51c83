//! The server processes behind the deployment under test (MariaDB,
//! RabbitMQ, etcd, Redis), found by the port each listens on, so that the
//! cost table can say what one reservation costs each engine too: that is
//! what a capacity plan needs to tell which engine saturates first.

use std::collections::HashSet;

/// A server of the stack, by the environment variable holding its URL.
pub const SERVERS: [(&str, &str); 4] = [
    ("MySQL", "DATABASE_URL"),
    ("RabbitMQ", "AMQP_URL"),
    ("etcd", "ETCD_ENDPOINTS"),
    ("Redis", "REDIS_URL"),
];

/// The pid of the process listening on the port of `url` on this machine,
/// if it can be seen (it must run as a user whose `/proc/<pid>/fd` this
/// process may read).
pub fn listener_of(url: &str) -> Option<u32> {
    let port = port_of(url)?;
    let inodes = listening_inodes(port);
    if inodes.is_empty() {
        return None;
    }
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let fds = std::fs::read_dir(entry.path().join("fd")).ok()?;
            fds.flatten()
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .filter_map(|target| socket_inode(target.to_str()?))
                .any(|inode| inodes.contains(&inode))
                .then_some(pid)
        })
}

/// The port of the first endpoint of a URL (`scheme://[user@]host:port/…`,
/// endpoints separated by commas).
fn port_of(url: &str) -> Option<u16> {
    let first = url.split(',').next()?;
    let rest = first.split_once("://").map_or(first, |(_, rest)| rest);
    let authority = rest.split('/').next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    host_port.rsplit_once(':')?.1.parse().ok()
}

/// Inodes of the sockets listening on `port` (IPv4 and IPv6).
fn listening_inodes(port: u16) -> HashSet<u64> {
    let local = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|table| {
            table
                .lines()
                .skip(1)
                .filter_map(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    // local address, remote, state (0A = LISTEN), …, inode
                    let listening = fields.get(3) == Some(&"0A");
                    (listening && fields.get(1)?.ends_with(&local))
                        .then(|| fields.get(9)?.parse().ok())
                        .flatten()
                })
                .collect::<Vec<u64>>()
        })
        .collect()
}

fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_is_read_from_every_kind_of_url_the_stack_uses() {
        assert_eq!(port_of("mysql://u:p@127.0.0.1:23306/db"), Some(23306));
        assert_eq!(port_of("amqp://guest:guest@127.0.0.1:5700/%2f"), Some(5700));
        assert_eq!(
            port_of("http://127.0.0.1:22379,http://127.0.0.1:22381"),
            Some(22379)
        );
        assert_eq!(port_of("redis://127.0.0.1:26379"), Some(26379));
        assert_eq!(port_of("redis://127.0.0.1"), None);
    }

    #[test]
    fn a_listening_socket_of_this_process_is_found() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        assert_eq!(
            listener_of(&format!("http://127.0.0.1:{port}")),
            Some(std::process::id())
        );
    }
}
