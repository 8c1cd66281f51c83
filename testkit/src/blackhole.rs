//! A TCP proxy that can cut a path without closing anything: while cut, no
//! byte moves in either direction and new connections wait, as across a
//! network partition (the peers see silence, not a reset); once healed, the
//! bytes held back flow on in order (TCP would retransmit them across a
//! real partition shorter than its retransmission timeout). `partition-etcd`
//! routes one worker's etcd traffic through it to cut that worker off from
//! etcd alone.

use std::{io, net::SocketAddr};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        TcpListener, TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    sync::watch,
    task::{JoinHandle, JoinSet},
};

pub struct Blackhole {
    addr: SocketAddr,
    open: watch::Sender<bool>,
    severed: watch::Sender<u64>,
    task: JoinHandle<()>,
}

impl Blackhole {
    /// Listens on a free loopback port and forwards each connection to the
    /// first of `upstreams` (`host:port`, e.g. the etcd members) that
    /// accepts it.
    pub async fn start(upstreams: Vec<String>) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (open, watcher) = watch::channel(true);
        let (severed, severings) = watch::channel(0);
        let task = tokio::spawn(accept(listener, upstreams, watcher, severings));
        Ok(Self {
            addr,
            open,
            severed,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn cut(&self) {
        self.open.send_replace(false);
    }

    pub fn heal(&self) {
        self.open.send_replace(true);
    }

    /// Drops every connection through the proxy, with the bytes it held
    /// back: as when the server's node dies, what was in flight is lost.
    pub fn sever(&self) {
        self.severed.send_modify(|count| *count += 1);
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        // Dropping the accept task's JoinSet aborts every connection too.
        self.task.abort();
    }
}

async fn accept(
    listener: TcpListener,
    upstreams: Vec<String>,
    open: watch::Receiver<bool>,
    mut severings: watch::Receiver<u64>,
) {
    let upstreams = std::sync::Arc::new(upstreams);
    let mut connections = JoinSet::new();
    loop {
        let client = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => client,
                Err(_) => return,
            },
            changed = severings.changed() => {
                if changed.is_err() {
                    return;
                }
                connections.abort_all();
                continue;
            }
        };
        let (upstreams, mut open) = (upstreams.clone(), open.clone());
        connections.spawn(async move {
            if open.wait_for(|open| *open).await.is_err() {
                return;
            }
            let Some(server) = connect_any(&upstreams).await else {
                return;
            };
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::join!(
                pipe(client_read, server_write, open.clone()),
                pipe(server_read, client_write, open),
            );
        });
    }
}

/// The first of `upstreams` that accepts a connection (a member may be
/// down).
async fn connect_any(upstreams: &[String]) -> Option<TcpStream> {
    for upstream in upstreams {
        if let Ok(server) = TcpStream::connect(upstream).await {
            return Some(server);
        }
    }
    None
}

/// Copies `from` to `to`, holding bytes back while the path is cut.
async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut open: watch::Receiver<bool>) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        if open.wait_for(|open| *open).await.is_err() {
            return;
        }
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if open.wait_for(|open| *open).await.is_err() || to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
    // An end of stream read while the path was open but noticed after a
    // cut must not cross it either.
    if open.wait_for(|open| *open).await.is_ok() {
        to.shutdown().await.ok();
    }
}

/// The `host:port` of a `scheme://[user:password@]host:port[/…]` URL.
pub fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    rest.split(['/', '?']).next().unwrap_or(rest)
}

/// `url` with its `host:port` replaced by `addr`, to route it through a
/// proxy.
pub fn via(url: &str, addr: SocketAddr) -> String {
    url.replacen(authority(url), &addr.to_string(), 1)
}

impl Blackhole {
    /// A proxy in front of the server of `url`, and `url` routed through it.
    pub async fn in_front_of(url: &str) -> io::Result<(Self, String)> {
        let proxy = Self::start(vec![authority(url).to_owned()]).await?;
        let routed = via(url, proxy.addr());
        Ok((proxy, routed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_any_url_through_the_proxy() {
        let proxy: SocketAddr = "127.0.0.1:9".parse().unwrap();
        for (url, want) in [
            (
                "mysql://u:p@127.0.0.1:13306/db",
                "mysql://u:p@127.0.0.1:9/db",
            ),
            ("redis://127.0.0.1:16379", "redis://127.0.0.1:9"),
            (
                "amqp://g:g@localhost:5750/%2f",
                "amqp://g:g@127.0.0.1:9/%2f",
            ),
        ] {
            assert_eq!(via(url, proxy), want);
        }
    }
}
